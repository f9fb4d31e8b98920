#!/usr/bin/env bash
# `deno task dev`: a throw-away dev CA + leaf cert in .dev/ (git-ignored), then serve on 127.0.0.1:8443.
# Extra arguments are passed on; a later `--port N` overrides the default.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -s .dev/tls.crt ] || ! [ -s .dev/tls.key ]; then
  bash k8s/gen-certs.sh --out .dev --san IP:127.0.0.1 --san DNS:localhost >&2
fi
if command -v deno >/dev/null 2>&1; then deno=(deno); else deno=(npx -y deno@2.9.6); fi
exec "${deno[@]}" task serve --host 127.0.0.1 --port 8443 \
  --cert .dev/tls.crt --key .dev/tls.key --drain-delay-ms 0 "$@"
