#!/usr/bin/env bash
# Cairn's ZooKeeper listener against Debian's Apache ZooKeeper 3.8 standalone (forceSync=yes:
# every write is fsynced, group-committed), in one interleaved run with the same clients:
#
#  1. `cairn bench zk` (a Swift load generator that is not client-bound: one thread and one
#     connection per client, each with P requests in flight) for create, setData, getData,
#     exists, getChildren, delete at clients × pipeline = 1×1, 1×32, 16×1, 16×32; each row run
#     ROUNDS times alternating servers; medians of ops/s and p99 ms, and Cairn's ratio.
#  2. Benchmarks/zk_load.py (kazoo, client-bound) sync and async, once per server.
#
#   make release && Benchmarks/zk-vs-zookeeper.sh          # COUNT=20000 requests a row, ROUNDS=3
#   COUNT=5000 ROUNDS=1 Benchmarks/zk-vs-zookeeper.sh      # a quick look
#
# Cairn runs with --appendfsync always (the same promise as forceSync=yes). Both listen on
# loopback only and are stopped by process id at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-20000}
ROUNDS=${ROUNDS:-3}
OPS=${OPS:-"create setData getData exists getChildren delete"}
SHAPES=${SHAPES:-"1x1 1x32 16x1 16x32"}
KAZOO_OPS=${KAZOO_OPS:-2000}
CAIRN=${CAIRN:-.build/release/cairn}
CAIRN_PORT=${CAIRN_PORT:-24181}
ZK_PORT=${ZK_PORT:-24182}
[ -x "$CAIRN" ] || { echo "build it first: make release" >&2; exit 2; }
[ -x /usr/share/zookeeper/bin/zkServer.sh ] || { echo "needs Debian's zookeeper: apt-get install zookeeper (scripts/install-deps)" >&2; exit 2; }
work=$(mktemp -d /tmp/cairn-zk-bench-XXXXXX)
cairn_pid=""
cleanup() {
  [ -n "$cairn_pid" ] && { kill "$cairn_pid" 2>/dev/null || true; wait "$cairn_pid" 2>/dev/null || true; }
  scripts/zookeeper-standalone stop "$work/zookeeper" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$CAIRN" serve --dir "$work/cairn" --resp-port 0 --zk-port "$CAIRN_PORT" --appendfsync always >"$work/cairn.log" 2>&1 &
cairn_pid=$!
scripts/zookeeper-standalone start "$work/zookeeper" "$ZK_PORT" >/dev/null
for _ in $(seq 1 100); do grep -q "ready" "$work/cairn.log" && break; sleep 0.1; done
grep -q "ready" "$work/cairn.log" || { echo "cairn serve did not start:" >&2; cat "$work/cairn.log" >&2; exit 1; }

# Warm-up, untimed: the JVM compiles its hot paths, both servers' logs get going.
for port in "$CAIRN_PORT" "$ZK_PORT"; do
  "$CAIRN" bench zk --port "$port" --ops create,setData,getData,delete --count 20000 --clients 4 --pipeline 32 --json >/dev/null
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

echo "cairn bench zk: $COUNT requests a row, median of $ROUNDS interleaved rounds; Cairn appendfsync always, ZooKeeper forceSync=yes"
echo
echo "| op | clients × pipeline | Cairn ops/s | ZooKeeper ops/s | ratio | Cairn p99 ms | ZooKeeper p99 ms |"
echo "|---|---|---|---|---|---|---|"
for op in $OPS; do
  for shape in $SHAPES; do
    clients=${shape%x*}; pipeline=${shape#*x}
    : >"$work/c"; : >"$work/z"
    for round in $(seq 1 "$ROUNDS"); do
      # Alternate which server goes first, so drift in the machine falls on both.
      if (( round % 2 )); then order="c z"; else order="z c"; fi
      for who in $order; do
        port=$CAIRN_PORT; [ "$who" = z ] && port=$ZK_PORT
        "$CAIRN" bench zk --port "$port" --ops "$op" --count "$COUNT" --clients "$clients" --pipeline "$pipeline" --json >>"$work/$who"
      done
    done
    c_ops=$(field ops_per_sec <"$work/c" | median); z_ops=$(field ops_per_sec <"$work/z" | median)
    c_p99=$(field p99_ms <"$work/c" | median); z_p99=$(field p99_ms <"$work/z" | median)
    ratio=$(awk -v a="$c_ops" -v b="$z_ops" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf "| %s | %s × %s | %.0f | %.0f | %s | %.3f | %.3f |\n" "$op" "$clients" "$pipeline" "$c_ops" "$z_ops" "$ratio" "$c_p99" "$z_p99"
  done
done

if python3 -c 'import kazoo' 2>/dev/null; then
  echo
  echo "kazoo (Benchmarks/zk_load.py, one client, client-bound): $KAZOO_OPS requests a row"
  echo
  echo "| op | mode | Cairn ops/s | ZooKeeper ops/s | ratio | Cairn p99 ms | ZooKeeper p99 ms |"
  echo "|---|---|---|---|---|---|---|"
  kv() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
  for op in $OPS; do
    for mode in sync async; do
      c=$(python3 Benchmarks/zk_load.py "127.0.0.1:$CAIRN_PORT" --op "$op" --ops "$KAZOO_OPS" --mode "$mode")
      z=$(python3 Benchmarks/zk_load.py "127.0.0.1:$ZK_PORT" --op "$op" --ops "$KAZOO_OPS" --mode "$mode")
      c_ops=$(echo "$c" | kv ops_per_sec); z_ops=$(echo "$z" | kv ops_per_sec)
      ratio=$(awk -v a="$c_ops" -v b="$z_ops" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      printf "| %s | %s | %.0f | %.0f | %s | %s | %s |\n" "$op" "$mode" "$c_ops" "$z_ops" "$ratio" "$(echo "$c" | kv p99_ms)" "$(echo "$z" | kv p99_ms)"
    done
  done
else
  echo "(kazoo rows skipped: pip install kazoo)"
fi
