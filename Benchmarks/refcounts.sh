#!/usr/bin/env bash
# Counts what a request costs the server in reference counting and allocation, exactly: uprobes
# on the Swift runtime's swift_retain, swift_release and swift_allocObject, recorded on one
# `cairn serve` while a load runs, divided by the requests. Unlike ops/s on a shared machine,
# these counts do not move between runs, so they measure changes of a few percent. Needs perf
# and the right to add uprobes (root). Prints the totals a request and the top callers.
#
#   Benchmarks/refcounts.sh resp .build/release/cairn set        # redis-benchmark -c 50 -P 16
#   Benchmarks/refcounts.sh zk .build/release/cairn setData      # cairn bench zk, 16 × 1
# Environment: POLICY (no for resp, always for zk), N (requests: 200000 resp, 20000 zk), TOP (25),
# P (resp: redis-benchmark -P, 16).
# perf may drop a few percent of the events under load, so compare builds with this script
# rather than its figures with exact counts.
# The server listens on loopback only and is stopped by process id at the end.
set -euo pipefail
kind=${1:?resp or zk}; bin=${2:?a cairn binary}; what=${3:-}
TOP=${TOP:-25}
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 2; }
lib=$(ldd "$bin" | awk '/libswiftCore/ { print $3 }')
[ -n "$lib" ] || { echo "$bin does not link libswiftCore dynamically" >&2; exit 2; }
for symbol in swift_retain swift_release swift_allocObject; do
  perf probe -l 2>/dev/null | grep -q "probe_libswiftCore:$symbol " || perf probe -q -x "$lib" "$symbol" >/dev/null
done
work=$(mktemp -d /tmp/cairn-refcounts-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$work"; }
trap cleanup EXIT
case "$kind" in
  resp)
    what=${what:-set}; N=${N:-200000}; policy=${POLICY:-no}; port=7397
    "$bin" serve --dir "$work/data" --resp-port $port --zk-port off --appendfsync "$policy" >"$work/serve.log" 2>&1 & pid=$!
    for _ in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
    load() { redis-benchmark -p $port -c 50 -n "$1" -t "$what" -P "${P:-16}" -q >/dev/null 2>&1; } ;;
  zk)
    what=${what:-setData}; N=${N:-20000}; policy=${POLICY:-always}; port=24197
    "$bin" serve --dir "$work/data" --resp-port 0 --zk-port $port --appendfsync "$policy" >"$work/serve.log" 2>&1 & pid=$!
    sleep 1.5
    load() { "$bin" bench zk --port $port --ops "$what" --clients 16 --pipeline 1 --count "$1" >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; return 1; }; } ;;
  *) echo "resp or zk" >&2; exit 2 ;;
esac
load $((N / 4))  # warm-up, not counted
perf record -q -o "$work/perf.data" -e 'probe_libswiftCore:swift_retain,probe_libswiftCore:swift_release,probe_libswiftCore:swift_allocObject' -g -p "$pid" >/dev/null 2>&1 &
recorder=$!
sleep 0.5
load "$N"
kill -INT $recorder; wait $recorder 2>/dev/null || true
echo "$kind $what, $N requests, appendfsync $policy: calls a request (caller <- its caller)"
perf script -i "$work/perf.data" -F event,ip,sym 2>/dev/null | awk -v n="$N" -v top="$TOP" '
  BEGIN { RS = "" }
  { split($0, L, "\n"); ev = L[1]; sub(/^ */, "", ev); split(ev, e, ":"); split(L[3], b, " "); split(L[4], d, " ")
    calls[e[2] "  " b[2] " <- " d[2]]++; total[e[2]]++ }
  END { for (k in total) printf "total %-18s %6.1f\n", k, total[k] / n
        for (k in calls) printf "%6.2f %s\n", calls[k] / n, k | "sort -rn | head -" top }' |
  sed 's/\$s[0-9]*\(Cairn[A-Za-z]*\|NIO[A-Za-z]*\)//g' | cut -c1-200
