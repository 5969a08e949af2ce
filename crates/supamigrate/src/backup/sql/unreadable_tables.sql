-- Tables of the given schemas the login role may not read: their data is
-- left out of the backup (and named in its manifest). $1: text[] of schemas.
select n.nspname::text, c.relname::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and n.nspname = any($1::text[])
  and not has_table_privilege(c.oid, 'SELECT')
order by 1, 2
