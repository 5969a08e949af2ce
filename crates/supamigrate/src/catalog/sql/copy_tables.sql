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
  -- An extension's own tables come with the extension: not the
  -- application's data, and absent where the extension is left behind. Its
  -- configuration tables too (PostGIS's spatial_ref_sys in public): CREATE
  -- EXTENSION fills them on the target, and the rows the project added
  -- are copied apart, before the data (`copy::extension_config`).
  and not exists (select 1 from pg_depend d
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.refclassid = 'pg_extension'::regclass and d.deptype = 'e')
order by 1, 2
