#!/usr/bin/env bash
# Builds Helm (helm.sh/helm/v4) from Go modules, once, into a cache outside the repo keyed by
# version, like tests/e2e/control_plane/build.sh. Prints the bin directory on its last line.
# No binary download site is reachable here, so the Go module proxy is the only source.
# First build: ~5 min on 2 cores.
set -euo pipefail
# shellcheck source=../e2e/go_tool.sh
. "$(cd "$(dirname "$0")/../e2e" && pwd)/go_tool.sh"

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE_ROOT="${SIDECAR_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sidecar-injector-e2e}"
BIN="$CACHE_ROOT/helm-$HELM_VERSION/bin"

go_tool_cached "$BIN" helm
go_tool_module helm "helm $HELM_VERSION (first time: ~5 min on 2 cores)"
# The command package, not the bare module: `go get` then records the sums of every module it
# imports (a bare module path leaves them out and `go build` stops at "missing go.sum entry").
go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
go_tool_install "$BIN" helm "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  helm.sh/helm/v4/cmd/helm
