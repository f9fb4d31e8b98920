#!/usr/bin/env bash
# Builds cainjector/main.go (cert-manager's CA injector packages, cert-manager v1.21.2 from Go
# modules) once, into a cache outside the repo keyed by the version and a hash of main.go, like
# tests/e2e/control_plane/build.sh. Prints the bin directory on its last line. ~2.5-4.5 min cold.
# cert-manager's controller is not built: its cmd/ modules are not on the Go module proxy.
set -euo pipefail

CM_VERSION="${CM_VERSION:-v1.21.2}"
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
hash=$(sha256sum "$HERE/cainjector/main.go" | cut -c1-12)
BIN="$CACHE_ROOT/cert-manager-$CM_VERSION-$hash/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export CGO_ENABLED=0

if [ -x "$BIN/cainjector" ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is required to build cainjector (install Go >= 1.26)" >&2; exit 3; }
mkdir -p "$BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "build.sh: building cert-manager $CM_VERSION cainjector from Go modules (first time: ~3-5 min)" >&2
cp "$HERE/cainjector/main.go" "$work/"
cd "$work"
go mod init e2e.local/cainjector >/dev/null 2>&1
go get "github.com/cert-manager/cert-manager@$CM_VERSION" >&2
go mod tidy >&2
go build -p 2 -trimpath -ldflags "-s -w" -o "$BIN/cainjector.tmp" . >&2
mv "$BIN/cainjector.tmp" "$BIN/cainjector"
echo "$BIN"
