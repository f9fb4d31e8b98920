#!/usr/bin/env bash
# Builds Helm (helm.sh/helm/v4) from Go modules, once, into a cache outside the repo keyed by
# version, like tests/e2e/control_plane/build.sh. Prints the bin directory on its last line.
# No binary download site is reachable here, so the Go module proxy is the only source.
# First build: ~5 min on 2 cores.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
BIN="$CACHE_ROOT/helm-$HELM_VERSION/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export CGO_ENABLED=0

if [ -x "$BIN/helm" ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is required to build Helm (install Go >= 1.26)" >&2; exit 3; }
mkdir -p "$BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "build.sh: building helm $HELM_VERSION from Go modules (first time: ~5 min on 2 cores)" >&2
cd "$work"
go mod init e2e.local/helm >/dev/null 2>&1
# The command package, not the bare module: `go get` then records the sums of every module it
# imports (a bare module path leaves them out and `go build` stops at "missing go.sum entry").
go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
ld="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
go build -p 2 -trimpath -ldflags "$ld" -o "$BIN/helm.tmp" helm.sh/helm/v4/cmd/helm >&2
mv "$BIN/helm.tmp" "$BIN/helm"
echo "$BIN"
