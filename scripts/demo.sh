#!/usr/bin/env bash
# The main job on the local sandbox: start a Supabase-like source (the TMS
# fixture) and an RDS-like target, look at them, stop them.
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
select case when coalesce(encrypted_password, '') = '' then '(none: OAuth)'
            when encrypted_password like '{%' then 'encrypted JSON'
            else split_part(encrypted_password, '$', 2) end as password_hash_format,
       count(*)
from auth.users group by 1 order by 2 desc;
select bucket_id, count(*) as objects, pg_size_pretty(sum((metadata->>'size')::bigint)) as size
from storage.objects group by 1 order by 1;
SQL
echo "Storage files: $SUPAMIGRATE_STORAGE_DIR ($(du -sh "$SUPAMIGRATE_STORAGE_DIR" | cut -f1))"
