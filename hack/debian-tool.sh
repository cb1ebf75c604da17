#!/usr/bin/env bash
# debian-tool.sh PACKAGE VERSION BINDIR BINARY...
#
# Installs tools that come from a pinned Debian package (prometheus, promtool,
# gnuplot) without root: `apt-get download` fetches the .deb, `dpkg-deb -x`
# unpacks it into a cache outside the repository
# (${XDG_CACHE_HOME:-~/.cache}/eventstream-operator/deb/PACKAGE_VERSION), and
# BINDIR/BINARY is linked to the unpacked usr/bin/BINARY. A cache that is
# already there is reused; nothing is downloaded then.
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
  (cd "$tmp" && apt-get download "${pkg}=${version}") || {
    echo "apt-get download ${pkg}=${version} failed (is the version in the apt lists? apt-get update)" >&2
    exit 1
  }
  rm -rf "$cache" && mkdir -p "$cache"
  dpkg-deb -x "$tmp"/"${pkg}"_*.deb "$cache"
  touch "$cache/.complete"
fi

mkdir -p "$bindir"
for b in "$@"; do
  target="$cache/usr/bin/$b"
  if [ ! -x "$target" ]; then
    echo "$target is not in ${pkg}=${version}" >&2
    exit 1
  fi
  ln -sfn "$target" "$bindir/$b"
done
