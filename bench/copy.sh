#!/usr/bin/env bash
# Benchmark (not a test): the data copy of supamigrate against pg_dump | pg_restore
# and pgcopydb clone, on the same data, in one run, on this machine.
#
#   RUNS=3 bash bench/copy.sh [SCALE] [JOBS]   (default scale 50, jobs = cores)
#   BASELINE_BIN=/path/to/an/older/supamigrate bash bench/copy.sh …
#                      (also runs that build, as "baseline": before/after a
#                      change, in the same runs)
#
# 1. Starts a sandbox at SCALE and turns it, with supamigrate itself, into a
#    plain TMS database (the runbook's converted schema + generated data) on the
#    target server: the common starting point (a plain PostgreSQL source, so
#    supamigrate runs with --plain-source).
# 2. Copies that database to fresh databases on the target server, RUNS
#    times (default 3), each tool once per run:
#      supamigrate     provision + schema apply --section pre-data + copy
#                      (post-data, ANALYZE, COPY FREEZE / VACUUM FREEZE included)
#      supamigrate-na  the same with --no-analyze
#      pg_dump         pg_dump -Fc | pg_restore (single stream; no ANALYZE)
#      pgcopydb        pgcopydb clone --table-jobs JOBS --index-jobs JOBS
#                      (Debian's 0.10 runs VACUUM ANALYZE on every table)
#    Right after each tool, times the first run of bench/queries.sql and the
#    fixture's Step 5.2 checks on its target ("ready for traffic").
# 3. Prints the median wall time, peak RSS and ratio to pgcopydb of each
#    tool, the median first-query times, and checks every copy has the
#    source's row counts.
scale=${1:-50}
jobs=${2:-$(nproc)}
runs=${RUNS:-3}
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

here="$(cd "$(dirname "$0")" && pwd)"
# The first queries: bench/queries.sql and the fixture's checks, one per block.
python3 - "$here/queries.sql" "$here/../crates/supamigrate-sandbox/src/fixture/sql/tms_checks.sql" >"$base/queries.tsv" <<'PY'
import sys, re
for path in sys.argv[1:]:
    name, body = None, []
    for line in open(path):
        m = re.match(r"-- (?:query|check): (\S+)", line)
        if m:
            if name and body: print(name + "\t" + " ".join(body))
            name, body = m.group(1), []
        elif name and line.strip() and not line.startswith("--"):
            body.append(line.strip())
    if name and body: print(name + "\t" + " ".join(body))
PY

measure() { # run, name, command…: wall seconds and peak RSS (KiB) of the command tree
  local run=$1 name=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$base/$name.rss" "$@" >"$base/$name.log" 2>&1 || { echo "$name failed:"; tail -20 "$base/$name.log"; exit 1; }
  t1=$(date +%s.%N)
  echo "$run $name $(echo "$t1 - $t0" | bc) $(cat "$base/$name.rss")" >>"$base/results"
}

first_queries() { # run, name, database: each query's first execution (ms)
  local run=$1 name=$2 db=$3 q ms
  while IFS=$'\t' read -r qname q; do
    ms=$(psql "$tgt_admin/$db" -XAtq -c '\timing on' -c "$q" 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    echo "$run $name $qname ${ms:-nan}" >>"$base/queries"
  done <"$base/queries.tsv"
}

counts() { psql "$1" -XAtc "select string_agg(relname || '=' || n_live_tup, ',' order by relname) from (select c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from public.%I', c.relname), false, true, '')))[1]::text::bigint as n_live_tup from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r') s"; }
ref=$(counts "$plain")
: >"$base/results"; : >"$base/queries"
# supamigrate's three commands; URLs (with the password) from the
# environment, never on a command line.
cat >"$base/smig.sh" <<'SH'
set -e
export SUPABASE_DB_URL="$BENCH_SOURCE" RDS_URL="$BENCH_TARGET" APP_DB_USER=tms_app
m() { "$BENCH_BIN" -q --plain-source --state-dir "$BENCH_STATE" "$@"; }
m provision --yes --policies drop $BENCH_FLAGS --secrets-dir "$BENCH_STATE/secrets"
m schema apply --policies drop $BENCH_FLAGS --section pre-data
m copy --policies drop $BENCH_FLAGS --jobs "$BENCH_JOBS"
SH
export BENCH_BIN="$bin" BENCH_JOBS="$jobs" BENCH_SOURCE="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/bench_plain"
smig() { # name, database, state dir, extra flags[, binary]
  export BENCH_BIN="${5:-$bin}"
  export BENCH_TARGET="postgresql://rdsadmin:$tgt_pw@127.0.0.1:$tgt_port/$2" BENCH_STATE="$3" BENCH_FLAGS="$4"
  measure "$run" "$1" bash "$base/smig.sh"
}
dbs="dst_supamigrate dst_supamigrate_na dst_pgdump dst_pgcopydb"
[ -n "${BASELINE_BIN:-}" ] && dbs="$dbs dst_baseline"
for run in $(seq 1 "$runs"); do
  echo "== run $run of $runs =="
  for db in $dbs; do
    psql "$tgt_admin/postgres" -XAtq -c "set client_min_messages = warning" -c "drop database if exists $db" -c "create database $db"
  done
  rm -rf "$base/state-s" "$base/state-na" "$base/state-b" "$base/pgcopydb"
  smig supamigrate dst_supamigrate "$base/state-s" ""
  first_queries "$run" supamigrate dst_supamigrate
  if [ -n "${BASELINE_BIN:-}" ]; then
    smig baseline dst_baseline "$base/state-b" "" "$BASELINE_BIN"
    first_queries "$run" baseline dst_baseline
  fi
  smig supamigrate-na dst_supamigrate_na "$base/state-na" --no-analyze
  first_queries "$run" supamigrate-na dst_supamigrate_na
  measure "$run" pg_dump bash -c "pg_dump -Fc '$plain' | pg_restore --no-owner --no-acl -d '$tgt_admin/dst_pgdump'"
  first_queries "$run" pg_dump dst_pgdump
  measure "$run" pgcopydb setsid --wait pgcopydb clone --source "$plain" --target "$tgt_admin/dst_pgcopydb" \
    --table-jobs "$jobs" --index-jobs "$jobs" --dir "$base/pgcopydb" --no-owner --no-acl
  first_queries "$run" pgcopydb dst_pgcopydb
  for db in $dbs; do
    [ "$(counts "$tgt_admin/$db")" = "$ref" ] || { echo "$db: row counts DIFFER from the source"; exit 1; }
  done
  echo "every copy has the source's row counts"
done

echo
echo "== results (scale $scale, $(numfmt --to=iec "$size")B, jobs $jobs, $(nproc) cores, median of $runs runs) =="
python3 - "$base/results" "$base/queries" "$size" <<'PY'
import sys, statistics
from collections import defaultdict
size = int(sys.argv[3])
secs, rss, ratio = defaultdict(list), defaultdict(list), defaultdict(list)
by_run = defaultdict(dict)
for l in open(sys.argv[1]):
    run, name, s, r = l.split()
    secs[name].append(float(s)); rss[name].append(int(r)); by_run[run][name] = float(s)
for run, t in by_run.items():
    for name, s in t.items():
        ratio[name].append(s / t["pgcopydb"])
med = statistics.median
order = ["supamigrate", "supamigrate-na", "pg_dump", "pgcopydb"]
if "baseline" in secs:
    order.insert(1, "baseline")
print(f"{'tool':<16}{'seconds':>9}{'MB/s':>8}{'peak RSS MB':>13}{'× pgcopydb':>12}  (each run's ratio)")
for n in order:
    s = med(secs[n])
    runs = " ".join(f"{x:.2f}" for x in ratio[n])
    print(f"{n:<16}{s:>9.1f}{size / 1e6 / s:>8.1f}{med(rss[n]) / 1024:>13.1f}{med(ratio[n]):>12.2f}  ({runs})")
q = defaultdict(lambda: defaultdict(list))
for l in open(sys.argv[2]):
    run, name, qname, ms = l.split()
    q[qname][name].append(float(ms))
print()
print("first run of each query right after the tool finished, median ms:")
print(f"{'query':<36}" + "".join(f"{n:>16}" for n in order))
totals = defaultdict(float)
for qname in q:
    row = f"{qname:<36}"
    for n in order:
        v = med(q[qname][n]); totals[n] += v
        row += f"{v:>16.1f}"
    print(row)
print(f"{'total':<36}" + "".join(f"{totals[n]:>16.1f}" for n in order))
PY
