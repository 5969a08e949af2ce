-- Tables to copy in the given schemas: ordinary tables and partitioned
-- parents (their partitions are copied through the parent), with their size.
-- $1: text[] of schema names.
select n.nspname::text,
       c.relname::text,
       c.relkind::text,
       c.relpages::bigint,
       greatest(c.reltuples, 0)::bigint,
       pg_table_size(c.oid)::bigint
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname = any($1::text[])
order by 1, 2
