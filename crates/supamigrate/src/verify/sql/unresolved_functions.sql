-- Of the functions ($1 schema, "" when unqualified; $2 name), those that do
-- not exist under that name: a qualified one in its schema, an unqualified
-- one in $3 (the application's schemas, public, extensions) or pg_catalog.
select x.s, x.n
from unnest($1::text[], $2::text[]) as x(s, n)
where not exists (
    select 1
    from pg_proc p
    join pg_namespace ns on ns.oid = p.pronamespace
    where p.proname = x.n
      and (ns.nspname = x.s
           or (x.s = '' and (ns.nspname = any($3::text[]) or ns.nspname = 'pg_catalog'))))
