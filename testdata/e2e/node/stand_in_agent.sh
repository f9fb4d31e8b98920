#!/bin/sh
# STAND-IN AGENT for the one-node e2e tests: NOT Fluentd, NOT Fluent Bit. Installed as `fluentd`
# and `fluent-bit` in a busybox image imported under the agent image reference, so the kubelet
# runs exactly the container the webhook rendered (command, args, mounts, user). It checks that
# the config file named by -c is readable, then copies every line of every *.log file under the
# log directory (nested too) to stdout as {"stand_in_agent":true,"file":...,"log":...}, once a
# second, and exits 0 on SIGTERM after a last pass. STAND_IN_CRASH=1 (set in the crashing
# image) makes it exit 1 at once: an agent that cannot start. With AGENT_METRICS_PORT set it
# answers the probes' paths there (busybox httpd, files baked into the image).
set -u
[ "${STAND_IN_CRASH:-0}" = 1 ] && { echo "stand-in agent: crashing on purpose" >&2; exit 1; }
config=""
while [ $# -gt 0 ]; do
  case "$1" in -c) config="$2"; shift ;; esac
  shift
done
[ -r "$config" ] || { echo "stand-in agent: config '$config' not readable" >&2; exit 1; }
if [ -n "${AGENT_METRICS_PORT:-}" ]; then
  httpd -f -p "$AGENT_METRICS_PORT" -h /stand-in-www &
fi
logdir=${STAND_IN_LOG_DIR:-/var/log/app}
state=${TMPDIR:-/tmp}/stand-in-offsets
mkdir -p "$state" 2>/dev/null || state=/tmp/stand-in-offsets && mkdir -p "$state"
echo "stand-in agent: uid $(id -u), config $config ($(wc -c <"$config") bytes), tailing $logdir" >&2

pass() {
  find "$logdir" -name '*.log' -type f 2>/dev/null | while read -r f; do
    key=$(echo "$f" | tr '/' '_')
    done_lines=$(cat "$state/$key" 2>/dev/null || echo 0)
    total=$(wc -l <"$f")
    [ "$total" -gt "$done_lines" ] || continue
    sed -n "$((done_lines + 1)),${total}p" "$f" | while IFS= read -r line; do
      printf '{"stand_in_agent":true,"file":"%s","log":"%s"}\n' "$f" "$line"
    done
    echo "$total" >"$state/$key"
  done
}
stop=0
trap 'stop=1' TERM INT
while [ "$stop" = 0 ]; do
  pass
  sleep 1 &
  wait $!
done
pass
echo "stand-in agent: SIGTERM, flushed, exiting" >&2
exit 0
