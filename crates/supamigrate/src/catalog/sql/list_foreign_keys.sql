-- Foreign keys whose referencing table is in the given schemas, with their
-- columns in key order. $1: text[] of schema names.
select c.conname::text as constraint_name,
       cn.nspname::text as table_schema,
       cl.relname::text as table_name,
       fn.nspname::text as ref_schema,
       fl.relname::text as ref_table,
       array(select a.attname::text
             from unnest(c.conkey) with ordinality as k(attnum, ord)
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
             order by k.ord) as columns,
       array(select a.attname::text
             from unnest(c.confkey) with ordinality as k(attnum, ord)
             join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.attnum
             order by k.ord) as ref_columns,
       c.convalidated as validated
from pg_constraint c
join pg_class cl on cl.oid = c.conrelid
join pg_namespace cn on cn.oid = cl.relnamespace
join pg_class fl on fl.oid = c.confrelid
join pg_namespace fn on fn.oid = fl.relnamespace
where c.contype = 'f'
  and cn.nspname = any($1::text[])
order by 2, 3, 1
