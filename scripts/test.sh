#!/usr/bin/env bash
# Runs every check CI runs: set-up, formatting, lints, and the test suite
# (which starts real PostgreSQL clusters on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
# Tests that need ../shared (the seed, the platform kit) skip without it and
# say so here, one line each.
export SUPAMIGRATE_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$SUPAMIGRATE_SKIP_LOG"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
skipped=$(sort -u "$SUPAMIGRATE_SKIP_LOG" | grep -c . || true)
if [ "$skipped" -gt 0 ]; then
  sort -u "$SUPAMIGRATE_SKIP_LOG"
  echo "$skipped test(s) skipped"
  shared=${SUPAMIGRATE_SHARED:-$(pwd)/../shared}
  if [ -d "$shared" ]; then
    echo "error: $shared is here, so nothing may be skipped" >&2
    exit 1
  fi
else
  echo "0 tests skipped"
fi
