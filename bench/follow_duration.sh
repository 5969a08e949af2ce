#!/usr/bin/env bash
# Benchmark (not a test): does the cutover grow with the follow's length?
# supamigrate alone (`PGCOPYDB=0 bench/follow.sh`) at the same rate for a
# short and a long follow, each in a fresh sandbox, one after the other;
# prints both cutovers and their ratio.
#
#   bash bench/follow_duration.sh [RATE] [SHORT_SECONDS] [LONG_SECONDS] [SCALE]
#       (defaults: 200 transactions/s, 60 s and 600 s, scale 10)
set -euo pipefail
rate=${1:-200}
short=${2:-60}
long=${3:-600}
scale=${4:-10}
here=$(dirname "$0")
declare -A cut
for secs in "$short" "$long"; do
  echo "== follow for $secs s at $rate tx/s =="
  out=$(PGCOPYDB=0 bash "$here/follow.sh" "$scale" "$rate" "$secs" 2)
  echo "$out" | grep -E '^(target:|follow:|supamigrate:|caught up|cutover done|downtime by part)' || true
  cut[$secs]=$(sed -n 's/^follow: .*cutover downtime \([0-9.]*\) s.*/\1/p' <<<"$out")
  [ -n "${cut[$secs]}" ] || { echo "no cutover line for $secs s:"; echo "$out" | tail -20; exit 1; }
done
python3 - "$short" "${cut[$short]}" "$long" "${cut[$long]}" <<'PY'
import sys
s, cs, l, cl = sys.argv[1:]
print(f"cutover after {s} s of following: {float(cs):.2f} s; after {l} s: {float(cl):.2f} s "
      f"(ratio {float(cl) / float(cs):.2f})")
PY
