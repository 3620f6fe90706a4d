#!/usr/bin/env bash
# make demo: start an ems-node, store and read back verified KV blocks through it (over gRPC
# and over the same-machine shared-memory path), show its metrics, stop it cleanly.
set -euo pipefail
BIN=${1:-build/bin}
WORK=$(mktemp -d /tmp/ems-demo.XXXXXX)
NODE_PID=""
cleanup() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then kill -KILL "$NODE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "starting ems-node (512 MiB arena, free loopback ports, local socket $WORK/ems.sock)"
"$BIN/ems-node" --listen=127.0.0.1:0 --metrics_port=0 --metrics_host=127.0.0.1 \
  --huge_page_num=256 --local_socket="$WORK/ems.sock" --log_level=warn >"$WORK/node.out" 2>"$WORK/node.err" &
NODE_PID=$!
for _ in $(seq 1 100); do grep -q '^METRICS' "$WORK/node.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(awk '/^LISTENING/{print $2}' "$WORK/node.out")
METRICS=$(awk '/^METRICS/{print $2}' "$WORK/node.out")
[ -n "$ADDR" ] || { echo "ems-node did not start:"; cat "$WORK/node.err"; exit 1; }
echo "ems-node pid $NODE_PID serving gRPC on $ADDR, metrics on :$METRICS"
sed 's/^/  node log: /' "$WORK/node.err"

say "storing and reading back 64 KV blocks of 2 MiB over gRPC"
"$BIN/ems-bench" putget --node="$ADDR" --blocks=64 --block_bytes=2097152 --ns=demo/remote

say "the same through shared memory (the node's arena mapped into this process)"
"$BIN/ems-bench" putget --node="$ADDR" --local_socket="$WORK/ems.sock" --blocks=64 \
  --block_bytes=2097152 --ns=demo/local

say "node metrics (Prometheus text at http://127.0.0.1:$METRICS/metrics)"
curl -fsS "http://127.0.0.1:$METRICS/metrics" | grep -E '^ems_(keys|used_bytes|capacity_bytes|hits_total|misses_total|puts_total|evictions_total|hugepages) '
printf 'healthz: %s\n' "$(curl -fsS "http://127.0.0.1:$METRICS/healthz")"

say "stopping ems-node with SIGTERM"
kill -TERM "$NODE_PID"
if wait "$NODE_PID"; then
  echo "ems-node exited cleanly (status 0)"
  NODE_PID=""
else
  echo "ems-node exited with status $?"; exit 1
fi
