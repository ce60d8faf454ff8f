#!/usr/bin/env bash
# SCAN over a large keyspace: loads N keys into `cairn serve` (redis-benchmark -r), then times
# `redis-cli --scan` (COUNT 10 a step) and checks it returned every key once.
# Usage: make release && Benchmarks/scan-keyspace.sh [N]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
CAIRN=${CAIRN:-.build/release/cairn}
PORT=${PORT:-7393}
[ -x "$CAIRN" ] || { echo "build it first: make release" >&2; exit 2; }
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || { echo "needs redis-tools (scripts/install-deps)" >&2; exit 2; }
work=$(mktemp -d /tmp/cairn-scan-XXXXXX)
"$CAIRN" serve --dir "$work/data" --resp-port "$PORT" --zk-port off --appendfsync no >"$work/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q ready "$work/log" && break; sleep 0.1; done
redis-benchmark -p "$PORT" -t set -r "$N" -n $((N * 5)) -P 64 -q >/dev/null
keys=$(redis-cli -p "$PORT" dbsize)
start=$(date +%s.%N)
timeout 600 redis-cli -p "$PORT" --scan >"$work/seen"
end=$(date +%s.%N)
seen=$(wc -l <"$work/seen")
distinct=$(sort -u "$work/seen" | wc -l)
echo "dbsize $keys: redis-cli --scan returned $seen keys ($distinct distinct) in $(echo "$end - $start" | bc) s"
[ "$distinct" -eq "$keys" ] || { echo "SCAN missed keys" >&2; exit 1; }
