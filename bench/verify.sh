#!/usr/bin/env bash
# Benchmark (not a test): does verifying take no longer than copying?
#
#   bash bench/verify.sh [SCALE] [JOBS]      (default scale 50, jobs = cores)
#
# Starts a sandbox at SCALE, migrates it with supamigrate (provision, pre-data,
# copy with post-data: the copy is timed), then times `supamigrate verify`
# (counts, every row's checksum, orphans, sequences, Step 5.2 checks, schema
# inventory) on the same data, in the same run, and prints the ratio; then
# `verify --app` (the same plus the application's checks) against it. (No
# anchor tool here: `pgcopydb compare data` needs the same tables on both
# sides, and auth.users became app_users.)
scale=${1:-50}
jobs=${2:-$(nproc)}
. "$(dirname "$0")/../scripts/common.sh"
start_sandbox bench "$scale"
export APP_DB_USER=tms_app
size=$(psql "$SUPABASE_DB_URL" -XAtc "select pg_database_size(current_database())")
echo "source: scale $scale, $(numfmt --to=iec "$size")B database"

"$bin" -q provision --yes --secrets-dir "$base/secrets" >/dev/null
"$bin" -q schema apply --section pre-data >/dev/null

secs() { # command…: prints its wall seconds; its output goes to a log
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$base/last.log" 2>&1 || { echo "failed: $*" >&2; tail -30 "$base/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

echo "== copy =="
copy=$(secs "$bin" -q copy --jobs "$jobs")
echo "== verify =="
verify=$(secs "$bin" -q verify --jobs "$jobs")
tail -1 "$base/last.log"
echo "== verify (second run, warm caches) =="
verify2=$(secs "$bin" -q verify --jobs "$jobs")
echo "== verify --app (logins, each user's access for anon, service_role and 20 users, views, plans) =="
verify_app=$(secs "$bin" -q verify --app --jobs "$jobs")
grep -E '^application|principal|Each user' "$base/last.log" | head -3 || true

echo
echo "== results (scale $scale, $(numfmt --to=iec "$size")B, jobs $jobs, $(nproc) cores) =="
python3 - "$copy" "$verify" "$verify2" "$verify_app" <<'PY'
import sys
copy, v1, v2, va = map(float, sys.argv[1:])
print(f"{'step':<22}{'seconds':>9}{'× copy':>9}")
for name, s in [("copy (+ post-data)", copy), ("verify", v1), ("verify, again", v2), ("verify --app", va)]:
    print(f"{name:<22}{s:>9.1f}{s / copy:>9.2f}")
print("verify took no longer than the copy" if v1 <= copy else "verify took LONGER than the copy")
print(f"verify --app: {va / v2:.2f}× verify (warm); the application's checks add {100 * (va - v2) / v2:.0f}%")
PY
