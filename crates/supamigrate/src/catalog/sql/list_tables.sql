-- Ordinary and partitioned tables (not partitions) in the given schemas.
-- $1: text[] of schema names.
select n.nspname::text as schema_name,
       c.relname::text as table_name,
       c.relkind::text as kind
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname = any($1::text[])
order by 1, 2
