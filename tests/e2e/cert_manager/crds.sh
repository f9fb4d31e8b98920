#!/usr/bin/env bash
# Prints the directory of cert-manager's CRDs (deploy/crds/*.yaml) from its Go module source,
# downloaded through the Go module proxy (no release download site is reachable here).
set -euo pipefail
CM_VERSION="${CM_VERSION:-v1.21.2}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
command -v go >/dev/null || { echo "crds.sh: Go is required (install Go >= 1.26)" >&2; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init e2e.local/crds >/dev/null 2>&1
dir=$(go mod download -json "github.com/cert-manager/cert-manager@$CM_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
[ -f "$dir/deploy/crds/cert-manager.io_certificates.yaml" ] || { echo "crds.sh: no CRDs in $dir/deploy/crds" >&2; exit 1; }
echo "$dir/deploy/crds"
