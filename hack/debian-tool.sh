#!/usr/bin/env bash
# debian-tool.sh PACKAGE VERSION BINDIR BINARY[=NAME]...
#
# Installs tools that come from a pinned Debian package (prometheus, promtool,
# gnuplot) without root: `apt-get download` fetches the .deb, `dpkg-deb -x`
# unpacks it into a cache outside the repository
# (${XDG_CACHE_HOME:-~/.cache}/eventstream-operator/deb/PACKAGE_VERSION), and
# BINDIR/BINARY is linked to the unpacked usr/bin/BINARY. A cache that is
# already there is reused; nothing is downloaded then. BINARY=NAME links
# BINDIR/NAME to usr/bin/BINARY. LIBS="PKG=VERSION ..." unpacks shared
# libraries the machine lacks into the same cache; BINDIR/NAME is then a
# small script that runs the binary with them on LD_LIBRARY_PATH.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 PACKAGE VERSION BINDIR BINARY..." >&2
  exit 2
fi
pkg=$1 version=$2 bindir=$3
shift 3

cache="${XDG_CACHE_HOME:-$HOME/.cache}/eventstream-operator/deb/${pkg}_${version}"
if [ ! -f "$cache/.complete" ]; then
  echo "Installing Debian package ${pkg}=${version} into ${cache}"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # shellcheck disable=SC2086 # LIBS is a list
  (cd "$tmp" && apt-get download "${pkg}=${version}" ${LIBS:-}) || {
    echo "apt-get download ${pkg}=${version} ${LIBS:-} failed (are the versions in the apt lists? apt-get update)" >&2
    exit 1
  }
  rm -rf "$cache" && mkdir -p "$cache"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$cache"; done
  touch "$cache/.complete"
fi

mkdir -p "$bindir"
for spec in "$@"; do
  b=${spec%%=*} name=${spec#*=}
  target="$cache/usr/bin/$b"
  if [ ! -x "$target" ]; then
    echo "$target is not in ${pkg}=${version}" >&2
    exit 1
  fi
  if [ -z "${LIBS:-}" ]; then
    ln -sfn "$target" "$bindir/$name"
  else
    rm -f "$bindir/$name"
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$cache" "$target" >"$bindir/$name"
    chmod +x "$bindir/$name"
  fi
done
