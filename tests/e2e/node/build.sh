#!/usr/bin/env bash
# Builds what the one-node cluster adds to the control plane (kubelet, kube-scheduler, containerd,
# its runc shim, ctr, and a static pause binary) once, into a cache outside the repo keyed by
# version, like tests/e2e/control_plane/build.sh. Prints the bin directory on its last line.
# Go modules are the only source here (no binary download site is reachable); runc, the CNI
# plugins, busybox-static and iptables come from Debian (.ci/run installs them).
set -euo pipefail
# shellcheck source=../k8s_cmds.sh
. "$(cd "$(dirname "$0")/.." && pwd)/k8s_cmds.sh"

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.37.2}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.2.9}"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
BIN="$CACHE_ROOT/node-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export CGO_ENABLED=0
ALL="kubelet kube-scheduler containerd containerd-shim-runc-v2 ctr pause"

have_all() {
  for b in $ALL; do [ -x "$BIN/$b" ] || return 1; done
}
if have_all; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "node/build.sh: Go is required to build the node (install Go >= 1.26)" >&2; exit 3; }
mkdir -p "$BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "node/build.sh: $*" >&2; }

if ! [ -x "$BIN/kubelet" ] || ! [ -x "$BIN/kube-scheduler" ] || ! [ -x "$BIN/pause" ]; then
  log "building kubelet, kube-scheduler $K8S_VERSION (~1.5 min with a warm Go cache)"
  build_k8s_cmds "$work/k8s" "$work/out" kubelet kube-scheduler
  # The sandbox ("pause") image's binary, from the same module's source, linked statically.
  pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
  gcc -Os -static -DVERSION="$K8S_VERSION" -o "$work/out/pause" "$pause_c" >&2
  strip "$work/out/pause"
  mv "$work/out/"* "$BIN/"
fi

if ! [ -x "$BIN/containerd" ] || ! [ -x "$BIN/containerd-shim-runc-v2" ] || ! [ -x "$BIN/ctr" ]; then
  log "building containerd $CONTAINERD_VERSION (~1 min)"
  mkdir -p "$work/containerd" && cd "$work/containerd"
  printf 'module e2e.local/containerd\n\ngo 1.24\n' >go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
GO
  go get "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" >&2
  go mod tidy >&2
  mkdir -p "$work/cout"
  go build -p 2 -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    -o "$work/cout/" github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr >&2
  mv "$work/cout/"* "$BIN/"
fi

have_all || { echo "node/build.sh: binaries missing after build in $BIN" >&2; exit 1; }
echo "$BIN"
