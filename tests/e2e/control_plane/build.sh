#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes) and etcd from Go modules,
# once, into a cache outside the repo keyed by version. Prints the bin directory on its last line.
# No binary download site is reachable here, so the Go module proxy is the only source.
set -euo pipefail
# shellcheck source=../k8s_cmds.sh
. "$(cd "$(dirname "$0")/.." && pwd)/k8s_cmds.sh"

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
BIN="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export CGO_ENABLED=0

have_all() {
  for b in kube-apiserver kube-controller-manager kubectl etcd; do [ -x "$BIN/$b" ] || return 1; done
}
if have_all; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is required to build the e2e control plane (install Go >= 1.26)" >&2; exit 3; }
mkdir -p "$BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "build.sh: $*" >&2; }

if ! [ -x "$BIN/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init e2e.local/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -p 2 -trimpath -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

if ! [ -x "$BIN/kube-apiserver" ] || ! [ -x "$BIN/kube-controller-manager" ] || ! [ -x "$BIN/kubectl" ]; then
  log "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION (first time: 15-25 min on 2 cores)"
  build_k8s_cmds "$work/k8s" "$work/out" kube-apiserver kube-controller-manager kubectl
  mv "$work/out/"* "$BIN/"
fi

have_all || { echo "build.sh: binaries missing after build in $BIN" >&2; exit 1; }
echo "$BIN"
