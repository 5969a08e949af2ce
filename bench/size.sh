#!/usr/bin/env bash
# Benchmark (not a test): `supamigrate run` on sources that are large in
# shape rather than in bytes, with the sandbox's default settings.
#
#   bash bench/size.sh tables [N]   (default 5000 extra tables)
#   bash bench/size.sh value [MB]   (default one 800 MB text value)
#
# Prints the run's exit code, wall time, and supamigrate's own peak RSS
# (VmHWM of its process, read from /proc while it runs: pg_dump and the
# servers are not counted).
mode=${1:-tables}
n=${2:-}
. "$(dirname "$0")/../scripts/common.sh"
start_sandbox size 0
state="$base/sandbox/sandbox.json"
field() { python3 -c "import json,sys; print(json.load(open('$state'))['$1']['$2'])"; }
src_port=$(field source port); src_pw=$(field source superuser_password)
export PGPASSFILE="$base/pgpass"
printf '127.0.0.1:%s:*:supabase_admin:%s\n' "$src_port" "$src_pw" > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
src="postgresql://supabase_admin@127.0.0.1:$src_port/postgres"

case "$mode" in
  tables)
    n=${n:-5000}
    echo "== $n extra tables (key, unique text, check) on the source =="
    psql "$src" -XAtq -v ON_ERROR_STOP=1 -c "create schema wide authorization postgres"
    # 500 a transaction: the source's own lock table would not hold them all.
    for from in $(seq 1 500 "$n"); do
      to=$((from + 499 < n ? from + 499 : n))
      psql "$src" -XAtq -v ON_ERROR_STOP=1 <<SQL
do \$\$ begin
  for i in $from..$to loop
    execute format('create table wide.t%s (id bigint primary key, v text unique, n int check (n > 0))', i);
    execute format('insert into wide.t%s values (1, ''x'', 1)', i);
    execute format('alter table wide.t%s owner to postgres', i);
  end loop;
end \$\$;
SQL
    done
    ;;
  value)
    n=${n:-800}
    echo "== one text value of $n MB on the source =="
    psql "$src" -XAtq -v ON_ERROR_STOP=1 <<SQL
create table public.big_docs (id bigint primary key, body text);
alter table public.big_docs alter column body set storage external;
alter table public.big_docs owner to postgres;
insert into public.big_docs values (1, 'small'), (2, repeat('x', $n * 1024 * 1024));
SQL
    ;;
  *) echo "usage: bench/size.sh tables [N] | value [MB]" >&2; exit 2 ;;
esac

work="$base/run"; mkdir -p "$work"; chmod 755 "$work"
cd "$work"
start=$(date +%s.%N)
"$bin" -q run --yes --dest-dir "$work/s3" >"$work/out.txt" 2>&1 &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ -n "$hwm" ] && [ "$hwm" -gt "$peak" ] && peak=$hwm
  sleep 0.2
done
code=0; wait "$pid" || code=$?
end=$(date +%s.%N)
tail -25 "$work/out.txt"
printf 'size %s %s: exit %s, %.1f s, supamigrate peak RSS %d MB\n' \
  "$mode" "$n" "$code" "$(python3 -c "print($end - $start)")" "$((peak / 1024))"
