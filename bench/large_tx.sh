#!/usr/bin/env bash
# Benchmark (not a test): one large source transaction through the follow.
#
#   bash bench/large_tx.sh [ROWS]   (default 2,000,000)
#
# A plain database on the sandbox's source server with one table; the
# target's fsync and synchronous_commit on (as on RDS). supamigrate copies it
# under a slot (`copy --follow`), then one transaction inserts ROWS rows on
# the source, and `follow --until-caught-up` applies it. Prints the follow's
# wall time, rows/s and peak RSS (VmHWM of its process, sampled every 0.2 s),
# and checks both sides hold the same rows.
rows=${1:-2000000}
. "$(dirname "$0")/../scripts/common.sh"
start_sandbox largetx 0
state="$base/sandbox/sandbox.json"
field() { python3 -c "import json,sys; print(json.load(open('$state'))['$1']['$2'])"; }
src_port=$(field source port); src_pw=$(field source superuser_password)
tgt_port=$(field target port); tgt_pw=$(field target superuser_password)
export PGPASSFILE="$base/pgpass"
printf '127.0.0.1:%s:*:supabase_admin:%s\n127.0.0.1:%s:*:rdsadmin:%s\n' "$src_port" "$src_pw" "$tgt_port" "$tgt_pw" > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
src="postgresql://supabase_admin@127.0.0.1:$src_port/large_plain"
tgt_admin="postgresql://rdsadmin@127.0.0.1:$tgt_port"
psql "$tgt_admin/postgres" -XAtq -c "alter system set fsync = on" -c "alter system set synchronous_commit = on" -c "select pg_reload_conf()" >/dev/null
echo "target: fsync = $(psql "$tgt_admin/postgres" -XAtc 'show fsync'), synchronous_commit = $(psql "$tgt_admin/postgres" -XAtc 'show synchronous_commit')"
psql "postgresql://supabase_admin@127.0.0.1:$src_port/postgres" -XAtq -c "create database large_plain"
psql "$src" -XAtq -v ON_ERROR_STOP=1 -c "create table public.big_tx (id bigint primary key, payload text not null)"

cat >"$base/smig.sh" <<'SH'
set -e
export SUPABASE_DB_URL="$BENCH_SOURCE" RDS_URL="$BENCH_TARGET" APP_DB_USER=bench_app
exec "$BENCH_BIN" --plain-source --state-dir "$BENCH_STATE" "$@"
SH
export BENCH_BIN="$bin" BENCH_STATE="$base/state"
export BENCH_SOURCE="postgresql://supabase_admin:$src_pw@127.0.0.1:$src_port/large_plain"
export BENCH_TARGET="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/dst_large"
smig() { bash "$base/smig.sh" "$@"; }
smig -q provision --yes --secrets-dir "$base/state/secrets" >/dev/null
smig -q schema apply --section pre-data >/dev/null
smig -q copy --follow >/dev/null
echo "== one transaction of $rows rows on the source =="
psql "$src" -XAtq -c "insert into public.big_tx select g, md5(g::text) from generate_series(1, $rows) g"
t0=$(date +%s.%N)
smig -q follow --until-caught-up >"$base/follow.log" 2>&1 &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  child=$(pgrep -P "$pid" -f supamigrate | head -1); p=${child:-$pid}
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
  [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
  sleep 0.2
done
wait "$pid"; code=$?
secs=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")
s=$(psql "$src" -XAtc "select count(*), md5(string_agg(id || payload, ',' order by id)) from public.big_tx")
t=$(psql "postgresql://rdsadmin@127.0.0.1:$tgt_port/dst_large" -XAtc "select count(*), md5(string_agg(id || payload, ',' order by id)) from public.big_tx")
same=$([ "$s" = "$t" ] && echo same || echo DIFFERS)
echo "large transaction $rows rows: follow exit $code, $secs s ($(python3 -c "print(f'{$rows / $secs:.0f}')") rows/s), peak RSS $((peak / 1024)) MB, content $same"
