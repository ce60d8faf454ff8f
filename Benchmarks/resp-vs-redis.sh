#!/usr/bin/env bash
# Cairn's RESP server against Debian's redis-server, configured the same way (appendonly yes,
# each appendfsync policy), in one interleaved run: redis-benchmark -c 50 -n $N
# -t set,get,incr,lpush with -P 1 and -P 16 against each in turn. Prints a markdown table of
# ops/s and p99 (ms) with Cairn's ratio to Redis.
#
#   make release && Benchmarks/resp-vs-redis.sh            # N=200000, all three policies
#   N=50000 POLICIES="always" Benchmarks/resp-vs-redis.sh
#
# Both servers listen on loopback only and are stopped by process id at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
POLICIES=${POLICIES:-"always everysec no"}
CAIRN=${CAIRN:-.build/release/cairn}
CAIRN_PORT=${CAIRN_PORT:-7379}
REDIS_PORT=${REDIS_PORT:-7380}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "needs redis-server and redis-benchmark: apt-get install redis-server redis-tools" >&2; exit 2; }
[ -x "$CAIRN" ] || { echo "build it first: make release" >&2; exit 2; }
work=$(mktemp -d /tmp/cairn-resp-bench-XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not answer" >&2; exit 1; }

# One redis-benchmark run: prints "TEST rps p99" lines.
run() {
  redis-benchmark -p "$1" -c 50 -n "$N" -t set,get,incr,lpush -P "$2" --csv 2>/dev/null |
    awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $NF); print $1, $2, $7 }'
}

echo "| appendfsync | -P | test | Cairn ops/s | Redis ops/s | ratio | Cairn p99 ms | Redis p99 ms |"
echo "|---|---|---|---|---|---|---|---|"
for policy in $POLICIES; do
  mkdir -p "$work/cairn-$policy" "$work/redis-$policy"
  "$CAIRN" serve --dir "$work/cairn-$policy" --resp-port "$CAIRN_PORT" --zk-port off --appendfsync "$policy" >"$work/cairn-$policy.log" 2>&1 &
  cairn_pid=$!; pids+=("$cairn_pid")
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync "$policy" \
    --dir "$work/redis-$policy" --daemonize no >"$work/redis-$policy.log" 2>&1 &
  redis_pid=$!; pids+=("$redis_pid")
  wait_port "$CAIRN_PORT"; wait_port "$REDIS_PORT"
  for pipeline in 1 16; do
    # Interleaved: Cairn, then Redis, on the same tests.
    cairn_out=$(run "$CAIRN_PORT" "$pipeline")
    redis_out=$(run "$REDIS_PORT" "$pipeline")
    while read -r test rps p99; do
      read -r _ rrps rp99 < <(echo "$redis_out" | awk -v t="$test" '$1 == t')
      ratio=$(awk -v a="$rps" -v b="$rrps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      printf "| %s | %s | %s | %.0f | %.0f | %s | %s | %s |\n" "$policy" "$pipeline" "$test" "$rps" "$rrps" "$ratio" "$p99" "$rp99"
    done <<< "$cairn_out"
  done
  kill -TERM "$cairn_pid" "$redis_pid"; wait "$cairn_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true
done
