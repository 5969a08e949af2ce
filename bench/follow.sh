#!/usr/bin/env bash
# Benchmark (not a test): following the source under a fixed write rate, then
# cutting over: supamigrate (`copy --follow`, `follow`, `cutover`) and
# pgcopydb (`clone --follow`, then the end position set), on the same kind
# of source, in one run, on this machine.
#
#   bash bench/follow.sh [SCALE] [RATE] [SECONDS] [JOBS]
#       (defaults: scale 10, 200 transactions/s, 40 s, jobs = cores;
#        PGCOPYDB=0 runs supamigrate alone)
#
# The target server runs with fsync on (as RDS does): the follow's cost is
# mostly its commits.
#
# 1. Starts a sandbox and builds a plain database on its source server (the
#    one with wal_level = logical): pgbench's tables at SCALE (100,000
#    account rows per unit; pgbench_history, which has no key, dropped) and a
#    table the workload writes to.
# 2. For each tool, into a fresh database on the target server: pgbench on
#    the source at RATE transactions/s for SECONDS (each inserts one row and
#    updates another: two rows), the tool's copy started while it writes,
#    then its follow. Once a second, the rows the target is behind (the
#    workload's table counted on both sides). When the workload stops, the
#    "cutover": supamigrate's `cutover --yes`; for pgcopydb, the end position
#    set to the source's current LSN and the wait until it exits. Downtime is
#    from the last write to the cutover's end.
# 3. Compares the workload's table on both sides (rows lost, rows twice).
#
# The last line reads (supamigrate's numbers; pgcopydb's line is above it):
#   follow: source S rows/s, applied A rows/s, max lag L s, cutover downtime D s, lost N, duplicated M
# where L is the largest lag once the follow has caught up with the changes
# made during the copy; the follow's own summary above it gives the time
# that backlog took and its lag.
scale=${1:-10}
rate=${2:-200}
seconds=${3:-40}
jobs=${4:-$(nproc)}
. "$(dirname "$0")/../scripts/common.sh"
with_pgcopydb=${PGCOPYDB:-1}
if [ "$with_pgcopydb" != 0 ] && ! command -v pgcopydb >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "bench: installing pgcopydb" >&2
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pgcopydb >/dev/null
fi
start_sandbox follow 1
state="$base/sandbox/sandbox.json"
field() { python3 -c "import json,sys; print(json.load(open('$state'))['$1']['$2'])"; }
src_port=$(field source port); src_pw=$(field source superuser_password)
tgt_port=$(field target port); tgt_pw=$(field target superuser_password)
# Passwords stay out of argv: libpq tools read them from this passfile.
export PGPASSFILE="$base/pgpass"
printf '127.0.0.1:%s:*:supabase_admin:%s\n127.0.0.1:%s:*:rdsadmin:%s\n' "$src_port" "$src_pw" "$tgt_port" "$tgt_pw" > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
src="postgresql://supabase_admin@127.0.0.1:$src_port/follow_plain"
tgt_admin="postgresql://rdsadmin@127.0.0.1:$tgt_port"
pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench | head -1)
# Commits cost what they cost on RDS: the target flushes every commit
# (the sandbox turns fsync and synchronous_commit off for its tests; both
# tools then commit as on RDS).
psql "$tgt_admin/postgres" -XAtq -c "alter system set fsync = on" -c "alter system set synchronous_commit = on" -c "select pg_reload_conf()" >/dev/null
echo "target: fsync = $(psql "$tgt_admin/postgres" -XAtc 'show fsync'), synchronous_commit = $(psql "$tgt_admin/postgres" -XAtc 'show synchronous_commit')"

echo "== the plain source: pgbench scale $scale on the source server =="
psql "postgresql://supabase_admin@127.0.0.1:$src_port/postgres" -XAtq -c "create database follow_plain"
"$pgbench" -q -i -s "$scale" "$src" >/dev/null 2>&1
psql "$src" -XAtq -v ON_ERROR_STOP=1 <<'SQL'
drop table public.pgbench_history;
create table public.bench_events (id bigserial primary key, payload text not null, hits int not null default 0, at timestamptz not null default now());
insert into public.bench_events (payload) select md5(g::text) from generate_series(1, 1000) g;
SQL
cat >"$base/workload.sql" <<'SQL'
\set k random(1, 1000)
begin;
insert into public.bench_events (payload) values (md5(random()::text));
update public.bench_events set hits = hits + 1 where id = :k;
commit;
SQL
count() { psql "$1" -XAtc "select count(*) from public.bench_events"; }

# Rows behind, once a second, while the workload (pid $1) runs; into $2.
sample_lag() {
  local pid=$1 out=$2 dst=$3 t0; t0=$(date +%s.%N)
  : >"$out"
  while kill -0 "$pid" 2>/dev/null; do
    local s t
    s=$(count "$src"); t=$(count "$dst" 2>/dev/null || echo 0)
    # (Before the copy has put the table in, there is nothing to compare.)
    [ "$t" -gt 0 ] || { sleep 1; continue; }
    printf '%.1f %s\n' "$(python3 -c "print($(date +%s.%N) - $t0)")" "$((s - t))" >>"$out"
    sleep 1
  done
}

# The workload's table on both sides: lost, duplicated, same content.
compare() { # target url → "lost dup same"
  local s t td ss ts
  s=$(count "$src")
  read -r t td < <(psql "$1" -XAtF' ' -c "select count(*), count(distinct id) from public.bench_events")
  ss=$(psql "$src" -XAtc "select md5(string_agg(id || ':' || hits, ',' order by id)) from public.bench_events")
  ts=$(psql "$1" -XAtc "select md5(string_agg(id || ':' || hits, ',' order by id)) from public.bench_events")
  echo "$(( s > td ? s - td : 0 )) $(( t - td )) $([ "$ss" = "$ts" ] && echo same || echo differs)"
}

# Waits until the target has every row of the workload's table.
caught_up() {
  local want; want=$(count "$src")
  for _ in $(seq 1 1200); do
    [ "$(count "$1")" = "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

# `… max-behind-rows seconds-to-catch-up` from a lag file.
lag_summary() { awk 'BEGIN{m=0} {if ($2>m) m=$2} END{print m}' "$1"; }

workload() { "$pgbench" -n -f "$base/workload.sql" -R "$rate" -T "$seconds" -c 2 -j 1 "$src" >"$base/pgbench-$1.log" 2>&1; }
tps_of() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$base/pgbench-$1.log" | head -1; }

echo "== supamigrate: workload $rate tx/s for $seconds s, copy --follow, follow, cutover =="
dst="$tgt_admin/dst_supamigrate"
psql "$tgt_admin/postgres" -XAtq -c "create database dst_supamigrate"
cat >"$base/smig.sh" <<'SH'
set -e
export SUPABASE_DB_URL="$BENCH_SOURCE" RDS_URL="$BENCH_TARGET" APP_DB_USER=bench_app
exec "$BENCH_BIN" --plain-source --state-dir "$BENCH_STATE" "$@"
SH
export BENCH_BIN="$bin" BENCH_STATE="$base/state"
export BENCH_SOURCE="postgresql://supabase_admin:$src_pw@127.0.0.1:$src_port/follow_plain"
export BENCH_TARGET="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/dst_supamigrate"
smig() { bash "$base/smig.sh" "$@"; }
# (provision makes the target database itself.)
psql "$tgt_admin/postgres" -XAtq -c "drop database dst_supamigrate"
smig -q provision --yes --secrets-dir "$base/state/secrets" >/dev/null
smig -q schema apply --section pre-data >/dev/null
workload smig & bench_pid=$!
sample_lag "$bench_pid" "$base/lag-smig" "$dst" &
t0=$(date +%s.%N)
smig -q copy --follow --jobs "$jobs" >"$base/copy.log" 2>&1 || { cat "$base/copy.log"; exit 1; }
echo "copy --follow: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s"
smig follow >"$base/follow.out" 2>"$base/follow.log" & follow_pid=$!
t_follow=$(date +%s.%N)
wait "$bench_pid" || { cat "$base/pgbench-smig.log"; exit 1; }
t_last_write=$(date +%s.%N)
caught_up "$dst" || { echo "supamigrate never caught up"; tail "$base/follow.log"; exit 1; }
t_caught=$(date +%s.%N)
t_cut_start=$(date +%s.%N)
smig -q cutover --yes >"$base/cutover.log" 2>&1 || { cat "$base/cutover.log"; exit 1; }
t_cut=$(date +%s.%N)
wait "$follow_pid" || { tail -5 "$base/follow.log"; exit 1; }
summary=$(grep '^follow: applied' "$base/follow.out")
applied_rows=$(sed -n 's/^follow: applied [0-9]* transactions (\([0-9]*\) rows).*/\1/p' <<<"$summary")
# The last line's lag is the lag once the follow has caught up with the
# changes made during the copy (the backlog's own lag is printed above it).
max_lag=$(sed -n 's/.*then max lag \([0-9.]*\) s.*/\1/p' <<<"$summary")
[ -n "$max_lag" ] || max_lag=$(sed -n 's/.*max lag \([0-9.]*\) s.*/\1/p' <<<"$summary")
own_downtime=$(sed -n 's/.*cutover done in \([0-9.]*\) s.*/\1/p' "$base/cutover.log")
read -r s_lost s_dup s_same < <(compare "$dst")
grep -E 'following:' "$base/follow.log" | tail -4 || true
echo "$summary"
grep -E 'cutover done|downtime by part|compared: ' "$base/cutover.log" || true
echo "rows behind (max, sampled each second): $(lag_summary "$base/lag-smig"); content on both sides: $s_same"

if [ "$with_pgcopydb" != 0 ]; then
  echo "== pgcopydb: workload $rate tx/s for $seconds s, clone --follow, endpos =="
  dstp="$tgt_admin/dst_pgcopydb"
  psql "$tgt_admin/postgres" -XAtq -c "create database dst_pgcopydb"
  workload pgcopydb & bench_pid=$!
  sample_lag "$bench_pid" "$base/lag-pgcopydb" "$dstp" &
  tp0=$(date +%s.%N)
  setsid --wait pgcopydb clone --follow --source "$src" --target "$dstp" --dir "$base/pgcopydb" \
    --table-jobs "$jobs" --index-jobs "$jobs" --no-owner --no-acl --slot-name pgcopydb_bench \
    >"$base/pgcopydb.log" 2>&1 & clone_pid=$!
  wait "$bench_pid" || { cat "$base/pgbench-pgcopydb.log"; exit 1; }
  tp_last_write=$(date +%s.%N)
  if caught_up "$dstp"; then tp_caught=$(date +%s.%N); else tp_caught=""; fi
  tp_sentinel=$(date +%s.%N)
  [ -n "$tp_caught" ] || echo "pgcopydb had not applied the workload's rows 120 s after the last write; setting its end position anyway"
  pgcopydb stream sentinel set endpos --current --source "$src" >"$base/pgcopydb-sentinel.log" 2>&1 \
    || { echo "pgcopydb stream sentinel set endpos failed:"; cat "$base/pgcopydb-sentinel.log"; kill "$clone_pid"; exit 1; }
  wait "$clone_pid" || { echo "pgcopydb clone --follow failed:"; grep -v 'Report write_lsn' "$base/pgcopydb.log" | tail -20; exit 1; }
  tp_end=$(date +%s.%N)
  read -r p_lost p_dup p_same < <(compare "$dstp")
  echo "rows behind (max, sampled each second): $(lag_summary "$base/lag-pgcopydb"); content on both sides: $p_same"
else
  tp_last_write=0 tp_caught=0 tp_sentinel=0 tp_end=0 p_lost=- p_dup=-
fi

python3 - "$(tps_of smig)" "$applied_rows" "$t_follow" "$t_caught" "$max_lag" "$t_last_write" "$t_cut_start" "$t_cut" "$own_downtime" "$s_lost" "$s_dup" \
  "$(tps_of pgcopydb)" "$tp_last_write" "${tp_caught:-0}" "$tp_sentinel" "$tp_end" "$p_lost" "$p_dup" <<'PY'
import sys
a = sys.argv[1:]
tps, rows, tf, tc, lag, tlw, tcs, tcut, own, lost, dup = a[:11]
ptps, plw, pc, psent, pend, plost, pdup = a[11:]
src_rate = 2 * float(tps)
applied = float(rows) / max(float(tc) - float(tf), 1e-3)
# The cutover, for both tools: from the moment it is asked for (the target
# has caught up with the last write) to the tool's end: supamigrate's
# `cutover` command (roles read-only, sentinel, sequences, counts, slot
# dropped), pgcopydb's end position set and its exit.
down = float(tcut) - float(tcs)
pdown = float(pend) - float(psent)
caught = ('%.2f s' % (float(pc) - float(plw))) if float(pc) else 'never'
if not ptps:
    print("pgcopydb: not run (PGCOPYDB=0)")
else:
  print(f"pgcopydb: source {2 * float(ptps):.0f} rows/s, caught up {caught} after the last write, "
        f"cutover (endpos set to exit) {pdown:.2f} s, lost {plost}, duplicated {pdup}")
print(f"supamigrate: caught up {float(tc) - float(tlw):.2f} s after the last write; cutover command {down:.2f} s "
      f"(first refused write to done, by its own count: {own} s)")
print(f"follow: source {src_rate:.0f} rows/s, applied {applied:.0f} rows/s, max lag {float(lag):.2f} s, "
      f"cutover downtime {down:.2f} s, lost {lost}, duplicated {dup}")
PY
