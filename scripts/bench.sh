#!/usr/bin/env bash
# make bench: EMS against what users would pick instead, the runs docs/ quotes.
#   1. put/get GB/s of KV-sized blocks: EMS over its bulk channel, gRPC and shared memory,
#      against Redis and memcached (fresh Debian servers on loopback) and memcpy
#      (docs/zero-copy.md);
#   2. prefix lookups of 64-block prompts over a 3-node cluster against Redis pipelined
#      EXISTS (docs/distributed.md);
#   3. eviction policies on the Mooncake traces if ../shared/traces holds them, else on the
#      built-in multi-turn workload: LRU, S3-FIFO, the prefix policy and Belady's offline
#      bound (docs/replay.md).
# Every byte read back is verified. About a minute on two cores; figures vary with the
# machine's load, so compare targets within one run.
set -euo pipefail
BIN=${1:-build/bin}
TRACES=${EMS_TRACES:-../shared/traces}

say() { printf '\n== %s\n' "$*"; }

say "1. throughput (GB/s): ems, ems-grpc, ems-local vs redis, memcached, memcpy"
"$BIN/ems-bench" throughput --targets ems,ems-grpc,ems-local,redis,memcached,memcpy \
  --sizes 256KiB,2MiB --concurrency 4 --rounds 3

say "2. prefix lookups: MatchPrefix on a 3-node cluster vs Redis pipelined EXISTS"
"$BIN/ems-bench" lookup

say "3. eviction policies: prefix hit ratio by capacity (blocks)"
if [ -f "$TRACES/conversation_trace.jsonl" ]; then
  for trace in conversation synthetic; do
    echo "-- $trace trace"
    "$BIN/ems-bench" replay --simulate --trace "$TRACES/${trace}_trace.jsonl" \
      --policies lru,s3fifo,prefix,belady --capacities 5000,10000,20000
  done
else
  echo "($TRACES has no Mooncake traces: the built-in multi-turn workload instead)"
  "$BIN/ems-bench" replay --simulate --workload multiturn \
    --policies lru,s3fifo,prefix,belady --capacities 500,1000,1500,2000
fi
