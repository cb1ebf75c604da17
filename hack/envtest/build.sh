#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from the Go module
# proxy into the directory layout setup-envtest uses, so that envtest works on
# machines that cannot download release binaries.
#
#   hack/envtest/build.sh            # prints the assets directory on stdout
#
# Environment:
#   ENVTEST_K8S_VERSION   Kubernetes version (default 1.37.2)
#   KUBEBUILDER_ASSETS    use this directory instead of the setup-envtest one;
#                         assets already there are reused
#
# Progress goes to stderr; only the directory goes to stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s_version=${ENVTEST_K8S_VERSION:-1.37.2}
goos=$(go env GOOS)
goarch=$(go env GOARCH)
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
dest=${KUBEBUILDER_ASSETS:-$data_home/kubebuilder-envtest/k8s/$k8s_version-$goos-$goarch}

log() { printf '[envtest] %s\n' "$*" >&2; }

# want NAME MODULE_DIR PACKAGE LDFLAGS
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [ -x "$dest/$name" ]; then
    log "$name: reusing $dest/$name"
    return
  fi
  log "$name: building $pkg (first build takes a few minutes on 2 cores)..."
  local start=$SECONDS tmp
  tmp=$(mktemp "$dest/.$name.XXXXXX")
  (cd "$here/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
  chmod 0755 "$tmp"
  mv "$tmp" "$dest/$name"
  log "$name: built in $((SECONDS - start))s"
}

mkdir -p "$dest"
major=${k8s_version%%.*}
minor=${k8s_version#*.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
build etcd etcd . "-s -w"
build kube-apiserver apiserver k8s.io/kubernetes/cmd/kube-apiserver \
  "-s -w -X $vpkg.gitVersion=v$k8s_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
echo "$dest"
