#!/usr/bin/env bash
# The main job on the local sandbox: start a Supabase-like source (the TMS
# fixture) and an RDS-like target, migrate the schema and the data as far as
# supamigrate goes today, show both sides, stop the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked --quiet
bin="$PWD/target/release/supamigrate"

base=$(mktemp -d "${TMPDIR:-/tmp}/supamigrate-demo.XXXXXX")
chmod 755 "$base"
trap '"$bin" -q sandbox stop --remove --dir "$base/sandbox"; rm -rf "$base"' EXIT

eval "$("$bin" sandbox start --dir "$base/sandbox" --scale 1)"
echo
"$bin" -q check
echo
psql "$SUPABASE_DB_URL" -X -q -P pager=off <<'SQL'
\echo 'The source, as the project''s postgres role sees it:'
select (select count(*) from auth.users) as users,
       (select count(*) from public.trips) as trips,
       (select count(*) from public.shipments) as shipments,
       (select count(*) from public.location_history) as location_points,
       (select count(*) from storage.objects) as storage_objects;
SQL
echo "Storage files: $SUPAMIGRATE_STORAGE_DIR ($(du -sh "$SUPAMIGRATE_STORAGE_DIR" | cut -f1))"

export APP_DB_USER=tms_app
echo
echo "== schema: convert (report), provision, apply pre-data =="
"$bin" -q schema convert --out "$base/03_converted_schema.sql" > "$base/conversion-report.txt"
head -1 "$base/conversion-report.txt"
"$bin" -q provision --secrets-dir "$base/secrets"
"$bin" -q schema apply --section pre-data
echo
echo "== data: copy (post-data built as tables complete) =="
"$bin" -q copy
echo
echo "== the target, as its master role sees it =="
psql "$RDS_URL" -X -q -P pager=off <<'SQL'
select (select count(*) from public.app_users) as app_users,
       (select count(*) from public.trips) as trips,
       (select count(*) from public.shipments) as shipments,
       (select count(*) from public.location_history) as location_points,
       (select count(*) from pg_constraint where contype = 'f' and convalidated
          and connamespace = 'public'::regnamespace) as validated_foreign_keys;
SQL
echo "Converted schema and report: $base/03_converted_schema.sql, $base/conversion-report.txt (removed with the demo)"
