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
  -- An extension's own tables come with the extension (its configuration
  -- tables aside, whose rows the project may have added): not the
  -- application's data, and absent where the extension is left behind.
  and not exists (select 1 from pg_depend d join pg_extension e on e.oid = d.refobjid
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
                    and not c.oid = any(coalesce(e.extconfig, '{}'::oid[])))
order by 1, 2
