#!/usr/bin/env bash
# Benchmark (not a test): the data copy of supamigrate against pg_dump | pg_restore
# and pgcopydb clone, on the same data, in one run, on this machine.
#
#   bash bench/copy.sh [SCALE] [JOBS]      (default scale 50, jobs = cores)
#
# 1. Starts a sandbox at SCALE and turns it, with supamigrate itself, into a
#    plain TMS database (the runbook's converted schema + generated data) on the
#    target server: the common starting point (a plain PostgreSQL source, so
#    supamigrate runs with --plain-source).
# 2. Copies that database to three fresh databases on the target server:
#      supamigrate  provision + schema apply --section pre-data + copy (with post-data)
#      pg_dump      pg_dump -Fc | pg_restore (single stream, as the runbook would)
#      pgcopydb     pgcopydb clone --table-jobs JOBS --index-jobs JOBS
# 3. Prints wall time, peak RSS, throughput and ratios, and checks the three
#    results have the same row counts.
scale=${1:-50}
jobs=${2:-$(nproc)}
. "$(dirname "$0")/../scripts/common.sh"
if ! command -v pgcopydb >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "bench: installing pgcopydb" >&2
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pgcopydb >/dev/null
fi
start_sandbox bench "$scale"
state="$base/sandbox/sandbox.json"
field() { python3 -c "import json,sys; print(json.load(open('$state'))['$1']['$2'])"; }
src_port=$(field source port); src_pw=$(field source superuser_password)
tgt_port=$(field target port); tgt_pw=$(field target superuser_password)
src_admin="postgresql://supabase_admin:$src_pw@127.0.0.1:$src_port"
tgt_admin="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port"
# Passwords stay out of argv: libpq tools read them from this passfile.
export PGPASSFILE="$base/pgpass"
printf '127.0.0.1:%s:*:supabase_admin:%s\n127.0.0.1:%s:*:rdsadmin:%s\n' "$src_port" "$src_pw" "$tgt_port" "$tgt_pw" > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
src_admin="postgresql://supabase_admin@127.0.0.1:$src_port"
tgt_admin="postgresql://rdsadmin@127.0.0.1:$tgt_port"

echo "== building the plain TMS source (scale $scale) =="
plain="$tgt_admin/bench_plain"
(
  export RDS_URL="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/bench_plain" APP_DB_USER=tms_app
  "$bin" -q provision --yes --policies drop --secrets-dir "$base/secrets" >/dev/null
  "$bin" -q schema apply --policies drop --section pre-data >/dev/null
  "$bin" -q copy --policies drop --jobs "$jobs" >/dev/null
)
psql "$plain" -XAtq -c "set client_min_messages = warning" -c "drop schema supamigrate cascade" -c "vacuum analyze"
size=$(psql "$plain" -XAtc "select pg_database_size('bench_plain')")
echo "plain source: $(numfmt --to=iec "$size")B in $(psql "$plain" -XAtc "select count(*) from pg_tables where schemaname = 'public'") tables"

measure() { # name, command…: wall seconds and peak RSS (KiB) of the command tree
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$base/$name.rss" "$@" >"$base/$name.log" 2>&1 || { echo "$name failed:"; tail -20 "$base/$name.log"; exit 1; }
  t1=$(date +%s.%N)
  echo "$name $(echo "$t1 - $t0" | bc) $(cat "$base/$name.rss")" >>"$base/results"
}

for db in dst_supamigrate dst_pgdump dst_pgcopydb; do
  psql "$tgt_admin/postgres" -XAtqc "create database $db"
done

echo "== supamigrate =="
measure supamigrate env SUPABASE_DB_URL="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/bench_plain" \
  RDS_URL="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/dst_supamigrate" APP_DB_USER=tms_app \
  bash -c "'$bin' -q --plain-source --state-dir '$base/state2' provision --yes --policies drop --secrets-dir '$base/secrets2' && '$bin' -q --plain-source --state-dir '$base/state2' schema apply --policies drop --section pre-data && '$bin' -q --plain-source --state-dir '$base/state2' copy --policies drop --jobs $jobs"

echo "== pg_dump | pg_restore =="
measure pgdump bash -c "pg_dump -Fc '$plain' | pg_restore --no-owner --no-acl -d '$tgt_admin/dst_pgdump'"

echo "== pgcopydb clone =="
measure pgcopydb setsid --wait pgcopydb clone --source "$plain" --target "$tgt_admin/dst_pgcopydb" \
  --table-jobs "$jobs" --index-jobs "$jobs" --dir "$base/pgcopydb" --no-owner --no-acl

echo "== check: same row counts =="
counts() { psql "$1" -XAtc "select string_agg(relname || '=' || n_live_tup, ',' order by relname) from (select c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from public.%I', c.relname), false, true, '')))[1]::text::bigint as n_live_tup from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r') s"; }
ref=$(counts "$plain")
for db in dst_supamigrate dst_pgdump dst_pgcopydb; do
  [ "$(counts "$tgt_admin/$db")" = "$ref" ] && echo "$db: row counts equal the source" || { echo "$db: row counts DIFFER"; exit 1; }
done

echo
echo "== results (scale $scale, $(numfmt --to=iec "$size")B, jobs $jobs, $(nproc) cores) =="
python3 - "$base/results" "$size" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
t = {n: float(s) for n, s, _ in rows}
print(f"{'tool':<14}{'seconds':>9}{'MB/s':>8}{'peak RSS MB':>13}{'× pgcopydb':>12}")
for n, s, rss in rows:
    s = float(s)
    print(f"{n:<14}{s:>9.1f}{size / 1e6 / s:>8.1f}{int(rss) / 1024:>13.1f}{s / t['pgcopydb']:>12.2f}")
PY
