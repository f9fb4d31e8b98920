#!/usr/bin/env bash
# Builds cainjector/main.go (cert-manager's CA injector packages, cert-manager v1.21.2 from Go
# modules) once, into a cache outside the repo keyed by the version and a hash of main.go, like
# tests/e2e/control_plane/build.sh. Prints the bin directory on its last line. ~2.5-4.5 min cold.
# cert-manager's controller is not built: its cmd/ modules are not on the Go module proxy.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go_tool.sh
. "$HERE/../go_tool.sh"

CM_VERSION="${CM_VERSION:-v1.21.2}"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
hash=$(sha256sum "$HERE/cainjector/main.go" | cut -c1-12)
BIN="$CACHE_ROOT/cert-manager-$CM_VERSION-$hash/bin"

go_tool_cached "$BIN" cainjector
go_tool_module cainjector "cert-manager $CM_VERSION cainjector (first time: ~3-5 min)"
cp "$HERE/cainjector/main.go" .
go get "github.com/cert-manager/cert-manager@$CM_VERSION" >&2
go mod tidy >&2
go_tool_install "$BIN" cainjector "-s -w" .
