#!/usr/bin/env bash
# Cairn's RESP server against Debian's redis-server, configured the same way (appendonly yes,
# each appendfsync policy), in one interleaved run: redis-benchmark -c 50 -n $N
# -t set,get,incr,lpush with -P 1 and -P 16 against each in turn. Prints a markdown table of
# ops/s and p99 (ms) with Cairn's ratio to Redis: medians of ROUNDS (3) interleaved rounds.
#
#   make release && Benchmarks/resp-vs-redis.sh            # N=200000, all three policies
#   N=50000 ROUNDS=1 POLICIES="always" Benchmarks/resp-vs-redis.sh
#   KEYSPACE=1000000 Benchmarks/resp-vs-redis.sh          # random keys (redis-benchmark -r)
#   PIPELINES=1 Benchmarks/resp-vs-redis.sh               # only the -P 1 rows
#
# Without KEYSPACE every request names one key (redis-benchmark's default, the issue's
# figures); with it, keys are drawn from that many, and a large table no longer fits the cache.
#
# Both servers listen on loopback only and are stopped by process id at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
ROUNDS=${ROUNDS:-3}
POLICIES=${POLICIES:-"always everysec no"}
PIPELINES=${PIPELINES:-"1 16"}
CAIRN=${CAIRN:-.build/release/cairn}
CAIRN_PORT=${CAIRN_PORT:-7379}
REDIS_PORT=${REDIS_PORT:-7380}
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  # Debian's packages, as the quick start installs what it needs (the server is only for this).
  echo "installing redis-server and redis-tools (Debian)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; } || true
fi
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "needs redis-server and redis-benchmark, and apt-get could not install them: apt-get install redis-server redis-tools" >&2; exit 2; }
[ -x "$CAIRN" ] || { echo "build it first: make release" >&2; exit 2; }
work=$(mktemp -d /tmp/cairn-resp-bench-XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not answer" >&2; exit 1; }

# One redis-benchmark run: prints "TEST rps p99" lines.
run() {
  redis-benchmark -p "$1" -c 50 -n "$N" -t set,get,incr,lpush -P "$2" ${KEYSPACE:+-r "$KEYSPACE"} --csv 2>/dev/null |
    awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $NF); print $1, $2, $7 }'
}

# The medians of a test's ops/s and p99 over the rounds in "TEST rps p99" lines.
medians() {
  echo "$1" | awk -v t="$2" '$1 == t { r[++n] = $2; p[n] = $3 }
    function median(a, n,   i, j, x) {
      for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END { printf "%s %.3f\n", median(r, n), median(p, n) }'
}

[ -n "${KEYSPACE:-}" ] && echo "keys drawn at random from $KEYSPACE (redis-benchmark -r $KEYSPACE)" && echo
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
  for pipeline in $PIPELINES; do
    # Interleaved rounds, the first server alternating: on this machine a server's -P 1 rate
    # can jump between two levels from one run to the next, so one round says little.
    cairn_out=""; redis_out=""
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) -eq 1 ]; then
        cairn_out+=$(run "$CAIRN_PORT" "$pipeline")$'\n'; redis_out+=$(run "$REDIS_PORT" "$pipeline")$'\n'
      else
        redis_out+=$(run "$REDIS_PORT" "$pipeline")$'\n'; cairn_out+=$(run "$CAIRN_PORT" "$pipeline")$'\n'
      fi
    done
    for test in $(echo "$cairn_out" | awk 'NF { print $1 }' | awk '!seen[$0]++'); do
      read -r rps p99 < <(medians "$cairn_out" "$test")
      read -r rrps rp99 < <(medians "$redis_out" "$test")
      ratio=$(awk -v a="$rps" -v b="$rrps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      printf "| %s | %s | %s | %.0f | %.0f | %s | %s | %s |\n" "$policy" "$pipeline" "$test" "$rps" "$rrps" "$ratio" "$p99" "$rp99"
    done
  done
  kill -TERM "$cairn_pid" "$redis_pid"; wait "$cairn_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true
done
