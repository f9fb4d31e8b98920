# Sourced by tests/helm/build.sh and tests/e2e/cert_manager/build.sh: the shared steps of building
# one command from Go modules, once, into the e2e cache (GOTOOLCHAIN and CGO_ENABLED=0 as the
# control plane's build uses them).
#   go_tool_cached <bin-dir> <name>         prints <bin-dir> and exits when <bin-dir>/<name> exists
#   go_tool_module <name> <what>            a throwaway module e2e.local/<name>, entered (cd)
#   go_tool_install <bin-dir> <name> <ldflags> <pkg>   builds <pkg> to <bin-dir>/<name>, prints <bin-dir>
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export CGO_ENABLED=0

go_tool_cached() {
  if [ -x "$1/$2" ]; then echo "$1"; exit 0; fi
}

go_tool_module() {
  command -v go >/dev/null || { echo "build.sh: Go is required to build $1 (install Go >= 1.26)" >&2; exit 3; }
  go_tool_work=$(mktemp -d)
  trap 'rm -rf "$go_tool_work"' EXIT
  echo "build.sh: building $2 from Go modules" >&2
  cd "$go_tool_work"
  go mod init "e2e.local/$1" >/dev/null 2>&1
}

go_tool_install() {
  mkdir -p "$1"
  # Written under another name and renamed: an interrupted build never looks cached.
  go build -p 2 -trimpath -ldflags "$3" -o "$1/$2.tmp" "$4" >&2
  mv "$1/$2.tmp" "$1/$2"
  echo "$1"
}
