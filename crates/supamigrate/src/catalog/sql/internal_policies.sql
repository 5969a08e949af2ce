-- RLS policies on tables of Supabase-internal schemas (storage.objects,
-- realtime.messages…): the platform creates none, the application's own.
-- $1: the internal schemas.
-- Policies on an extension's tables (pg_cron's on cron.job) are the
-- extension's, not the application's.
select n.nspname::text, c.relname::text, p.polname::text
from pg_policy p
join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1::text[])
  and not exists (select 1 from pg_depend d
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by 1, 2, 3
