-- Installed extensions and their schemas.
select e.extname::text, n.nspname::text
from pg_extension e
join pg_namespace n on n.oid = e.extnamespace
order by 1
