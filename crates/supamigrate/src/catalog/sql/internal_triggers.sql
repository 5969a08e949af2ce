-- The application's triggers on tables of Supabase-internal schemas
-- (auth.users, auth.identities, storage.objects…): user triggers whose
-- function is not itself internal. $1: the internal schemas.
select n.nspname::text,
       c.relname::text,
       t.tgname::text,
       pn.nspname || '.' || p.proname,
       pg_get_triggerdef(t.oid)
from pg_trigger t
join pg_class c on c.oid = t.tgrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_proc p on p.oid = t.tgfoid
join pg_namespace pn on pn.oid = p.pronamespace
where not t.tgisinternal
  and n.nspname = any($1::text[])
  and not pn.nspname = any($1::text[])
order by 1, 2, 3
