#!/usr/bin/env bash
# Two builds of `cairn serve` side by side, as this project's server changes were measured on a
# noisy machine: both servers run at once on loopback; each round drives OLD then NEW (NEW
# first in even rounds) with the same load, and prints each one's ops/s and its server CPU per
# request (user + system, from /proc). Usage:
#   cp .build/release/cairn /tmp/cairn-old; <change>; make release
#   Benchmarks/ab-serve.sh resp /tmp/cairn-old .build/release/cairn   # redis-benchmark -c 50
#   Benchmarks/ab-serve.sh zk /tmp/cairn-old .build/release/cairn     # cairn bench zk
# Environment:
#   resp: POLICY (no), P (16), N (1000000), TESTS ("set get incr lpush"), ARGS (more
#         redis-benchmark arguments, e.g. "-r 1000000" for random keys)
#   zk:   POLICY (always), SHAPES ("16x1 1x1", clients x pipeline), N (60000), OPS ("create setData delete")
#   both: ROUNDS (4)
# Both servers are stopped by process id on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
protocol=${1:?resp or zk}; old=${2:?old cairn}; new=${3:?new cairn}
ROUNDS=${ROUNDS:-4}
work=$(mktemp -d /tmp/cairn-ab-serve-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start BIN NAME PORT: one server on loopback, its RESP or ZooKeeper port PORT.
start() {
  local policy=$4
  if [ "$protocol" = resp ]; then
    "$1" serve --dir "$work/$2" --resp-port "$3" --zk-port off --appendfsync "$policy" >"$work/$2.log" 2>&1 &
  else
    "$1" serve --dir "$work/$2" --resp-port 0 --zk-port "$3" --appendfsync "$policy" >"$work/$2.log" 2>&1 &
  fi
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "ready" "$work/$2.log" && return; sleep 0.1; done
  echo "$2 did not start:" >&2; cat "$work/$2.log" >&2; exit 1
}

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }  # user + system, clock ticks

# once PID PORT LOAD...: prints "ops/s µs-of-server-CPU-a-request" for one run of LOAD.
once() {
  local pid=$1 port=$2 count=$3; shift 3
  local before after rate
  before=$(cpu "$pid")
  rate=$("$@" "$port")
  after=$(cpu "$pid")
  awk -v r="$rate" -v t=$((after - before)) -v n="$count" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f %.3f", r, t / hz * 1e6 / n }'
}

resp_load() { redis-benchmark -p "$2" -c 50 -n "$N" -t "$1" -P "$P" ${ARGS:-} --csv 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'; }
zk_load() { "$new" bench zk --port "$4" --ops "$1" --clients "$2" --pipeline "$3" --count "$N" --json | sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p'; }

if [ "$protocol" = resp ]; then
  command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark: apt-get install redis-tools" >&2; exit 2; }
  POLICY=${POLICY:-no} P=${P:-16} N=${N:-1000000}
  start "$old" old 7391 "$POLICY"; start "$new" new 7392 "$POLICY"
  echo "redis-benchmark -c 50 -P $P -n $N ${ARGS:-}, appendfsync $POLICY: ops/s and server µs a request"
  for test in ${TESTS:-set get incr lpush}; do
    for round in $(seq 1 "$ROUNDS"); do
      if (( round % 2 )); then
        a=$(once "${pids[0]}" 7391 "$N" resp_load "$test"); b=$(once "${pids[1]}" 7392 "$N" resp_load "$test")
      else
        b=$(once "${pids[1]}" 7392 "$N" resp_load "$test"); a=$(once "${pids[0]}" 7391 "$N" resp_load "$test")
      fi
      echo "$test round $round: old $a | new $b"
    done
  done
else
  POLICY=${POLICY:-always} N=${N:-60000}
  start "$old" old 24191 "$POLICY"; start "$new" new 24192 "$POLICY"
  echo "cairn bench zk, $N requests, appendfsync $POLICY: ops/s and server µs a request"
  for shape in ${SHAPES:-16x1 1x1}; do
    clients=${shape%x*}; pipeline=${shape#*x}
    for op in ${OPS:-create setData delete}; do
      for round in $(seq 1 "$ROUNDS"); do
        if (( round % 2 )); then
          a=$(once "${pids[0]}" 24191 "$N" zk_load "$op" "$clients" "$pipeline"); b=$(once "${pids[1]}" 24192 "$N" zk_load "$op" "$clients" "$pipeline")
        else
          b=$(once "${pids[1]}" 24192 "$N" zk_load "$op" "$clients" "$pipeline"); a=$(once "${pids[0]}" 24191 "$N" zk_load "$op" "$clients" "$pipeline")
        fi
        echo "$op $shape round $round: old $a | new $b"
      done
    done
  done
fi
