#!/usr/bin/env bash
# Two builds side by side: runs one `cairn bench store` row with OLD and NEW alternately, ROUNDS
# times, and prints each build's median ops/s (how this project's write-path changes were
# measured on a noisy machine). Usage:
#   cp .build/release/cairn /tmp/cairn-old; <change>; make release
#   Benchmarks/ab-store.sh /tmp/cairn-old .build/release/cairn
# Environment: OPS (set), MODE (no), CLIENTS (1), ROUNDS (7), SECONDS_PER_ROW (0.7).
set -euo pipefail
old=$1 new=$2
for op in ${OPS:-set}; do
  for who in old new; do : >"/tmp/ab-store-$who"; done
  for _ in $(seq 1 "${ROUNDS:-7}"); do
    for who in old new; do
      bin=$old; [ "$who" = new ] && bin=$new
      "$bin" bench store --modes "${MODE:-no}" --ops "$op" --clients "${CLIENTS:-1}" --seconds "${SECONDS_PER_ROW:-0.7}" \
        --reopen-keys 0 --json | sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p' >>"/tmp/ab-store-$who"
    done
  done
  for who in old new; do
    sort -g "/tmp/ab-store-$who" | awk -v who=$who -v op=$op '{ v[NR] = $1 } END { printf "%s %s: median %.0f ops/s (min %.0f, max %.0f, %d runs)\n", op, who, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
  done
done
