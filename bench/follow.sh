#!/usr/bin/env bash
# Benchmark (not a test): supamigrate's follow and cutover under a fixed
# write rate on the source.
#
#   bash bench/follow.sh [SCALE] [RATE] [SECONDS] [JOBS]
#       (defaults: scale 10, 200 transactions/s, 40 s, jobs = cores)
#
# 1. Starts a sandbox at SCALE, adds a table the workload writes to, and
#    provisions the target (schema pre-data).
# 2. Starts pgbench on the source at RATE transactions/s for SECONDS (each
#    transaction inserts one row and updates another: two rows), then runs
#    `copy --follow` while it writes, then `follow` in the background.
# 3. Samples the follow's lag once a second (`follow --status --json`) while
#    the workload runs, waits until the target has caught up, then runs
#    `cutover --yes` and reads its downtime.
# 4. Compares the workload's table on both sides (rows lost, rows twice).
#
# The last line reads:
#   follow: source S rows/s, applied A rows/s, max lag L s, cutover downtime D s, lost N, duplicated M
#
# pgcopydb's `clone --follow` is not run here yet: the sandbox's Supabase-like
# source carries platform schemas and roles its restore cannot take, and the
# plain source bench/copy.sh uses lives on a server without wal_level =
# logical (see docs/benchmarks.md).
scale=${1:-10}
rate=${2:-200}
seconds=${3:-40}
jobs=${4:-$(nproc)}
. "$(dirname "$0")/../scripts/common.sh"
start_sandbox follow "$scale"
state="$base/sandbox/sandbox.json"
field() { python3 -c "import json,sys; print(json.load(open('$state'))['$1']['$2'])"; }
src_port=$(field source port); src_pw=$(field source login_password); src_user=$(field source login_user)
tgt_port=$(field target port); tgt_pw=$(field target superuser_password)
# Passwords stay out of argv: libpq tools read them from this passfile.
export PGPASSFILE="$base/pgpass"
printf '127.0.0.1:%s:*:%s:%s\n127.0.0.1:%s:*:rdsadmin:%s\n' "$src_port" "$src_user" "$src_pw" "$tgt_port" "$tgt_pw" > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
src="postgresql://$src_user@127.0.0.1:$src_port/postgres"
tgt="postgresql://rdsadmin@127.0.0.1:$tgt_port/tms_production"
pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench | head -1)

psql "$src" -XAtq -v ON_ERROR_STOP=1 <<'SQL'
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
"$bin" -q provision --yes --secrets-dir "$base/secrets" >/dev/null
"$bin" -q schema apply --section pre-data >/dev/null

echo "== workload: $rate transactions/s (2 rows each) for $seconds s =="
"$pgbench" -n -f "$base/workload.sql" -R "$rate" -T "$seconds" -c 2 -j 1 "$src" >"$base/pgbench.log" 2>&1 &
bench_pid=$!
t_start=$(date +%s.%N)
"$bin" -q copy --follow --jobs "$jobs" >"$base/copy.log" 2>&1 || { cat "$base/copy.log"; exit 1; }
t_copied=$(date +%s.%N)
echo "copy --follow: $(python3 -c "print(f'{$t_copied - $t_start:.1f}')") s"
"$bin" follow >"$base/follow.out" 2>"$base/follow.log" &
follow_pid=$!
t_follow=$(date +%s.%N)

lag_sample() {
  "$bin" -q follow --status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["lag_bytes"], "%.2f" % s["seconds_since_applied"])' || echo "- -"
}
echo "== lag while the workload runs (bytes of WAL behind, seconds since the last apply) =="
while kill -0 "$bench_pid" 2>/dev/null; do
  printf '%6.1f s  %s\n' "$(python3 -c "print($(date +%s.%N) - $t_start)")" "$(lag_sample)"
  sleep 1
done
wait "$bench_pid" || { cat "$base/pgbench.log"; exit 1; }
t_end=$(date +%s.%N)
# Caught up: the target has every row the workload wrote.
want=$(psql "$src" -XAtc "select count(*) from public.bench_events")
for _ in $(seq 1 600); do
  have=$(psql "$tgt" -XAtc "select count(*) from public.bench_events")
  [ "$have" = "$want" ] && break
  sleep 0.1
done
t_caught=$(date +%s.%N)
"$bin" -q cutover --yes >"$base/cutover.log" 2>&1 || { cat "$base/cutover.log"; exit 1; }
wait "$follow_pid" || { tail -5 "$base/follow.log"; exit 1; }
downtime=$(sed -n 's/.*cutover done in \([0-9.]*\) s.*/\1/p' "$base/cutover.log")
summary=$(grep '^follow: applied' "$base/follow.out")
applied_rows=$(sed -n 's/^follow: applied [0-9]* transactions (\([0-9]*\) rows).*/\1/p' <<<"$summary")
max_lag=$(sed -n 's/.*max lag \([0-9.]*\) s.*/\1/p' <<<"$summary")
tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$base/pgbench.log" | head -1)

src_rows=$(psql "$src" -XAtc "select count(*) from public.bench_events")
read -r tgt_rows tgt_distinct < <(psql "$tgt" -XAtF' ' -c "select count(*), count(distinct id) from public.bench_events")
src_sum=$(psql "$src" -XAtc "select md5(string_agg(id || ':' || hits, ',' order by id)) from public.bench_events")
tgt_sum=$(psql "$tgt" -XAtc "select md5(string_agg(id || ':' || hits, ',' order by id)) from public.bench_events")
lost=$(( src_rows > tgt_rows ? src_rows - tgt_distinct : 0 ))
dup=$(( tgt_rows - tgt_distinct ))
[ "$src_sum" = "$tgt_sum" ] || echo "bench: the workload's table differs between the two sides (rows or hits)"

echo "== follow log (progress lines, every 5 s) =="
grep -E 'following:' "$base/follow.log" || true
# The largest lag sampled by those lines once the backlog of the copy was
# applied (the summary's max lag includes that backlog).
steady=$(grep -E 'following:' "$base/follow.log" | sed -n 's/.*lag \([0-9.]*\) s.*/\1/p' | tail -n +2 | sort -g | tail -1)
echo "steady-state lag (sampled, after the copy's backlog): ${steady:-n/a} s"
echo "$summary"
grep -E 'cutover done|writes stopped|caught up' "$base/cutover.log" || true
python3 - "$tps" "$applied_rows" "$t_follow" "$t_caught" "$max_lag" "$downtime" "$lost" "$dup" <<'PY'
import sys
tps, rows, t0, t1, lag, down, lost, dup = sys.argv[1:]
src_rate = 2 * float(tps)
applied = float(rows) / max(float(t1) - float(t0), 1e-3)
print(f"follow: source {src_rate:.0f} rows/s, applied {applied:.0f} rows/s, max lag {float(lag):.2f} s, "
      f"cutover downtime {float(down):.2f} s, lost {lost}, duplicated {dup}")
PY
