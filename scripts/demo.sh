#!/usr/bin/env bash
# The main job on the local sandbox: start a Supabase-like source (the TMS
# fixture) and an RDS-like target, migrate the schema and the data as far as
# supamigrate goes today, verify the result, stop the sandbox.
. "$(dirname "$0")/common.sh"
start_sandbox demo 1
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
echo "== storage: every object to a local S3 stand-in ($base/s3), references rewritten =="
"$bin" -q storage copy --dest-dir "$base/s3" | grep -v '^  note:'
"$bin" -q storage verify --dest-dir "$base/s3" | tail -1
echo
echo "== verify: every table's rows and content, integrity, sequences, schema =="
"$bin" -q verify --storage-rewritten --report "$base/verify.md"
echo "Converted schema, report and verify report: $base/03_converted_schema.sql, $base/conversion-report.txt, $base/verify.md (removed with the demo)"
