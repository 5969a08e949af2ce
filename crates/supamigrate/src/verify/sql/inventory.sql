-- The schema objects of the given schemas, one row per object, in the shape
-- verify::inventory compares with the conversion: kind, schema, table (empty
-- for objects not on a table), name, detail. Objects that belong to an
-- extension are left out (the extension creates them, not the conversion),
-- and so are indexes that back a primary key, unique or exclusion constraint
-- (the constraint stands for them) and the clones of a foreign key on or to
-- a partitioned table. $1: text[] of schema names.
with ext_member as (
    select objid, classid from pg_depend where deptype = 'e'
)
select 'table', n.nspname::text, '', c.relname::text, ''
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname = any($1::text[])
  and not exists (select 1 from ext_member e where e.classid = 'pg_class'::regclass and e.objid = c.oid)
union all
select 'view', n.nspname::text, '', c.relname::text, ''
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('v', 'm') and n.nspname = any($1::text[])
  and not exists (select 1 from ext_member e where e.classid = 'pg_class'::regclass and e.objid = c.oid)
union all
select 'column', n.nspname::text, c.relname::text, a.attname::text, ''
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
  and n.nspname = any($1::text[])
  and not exists (select 1 from ext_member e where e.classid = 'pg_class'::regclass and e.objid = c.oid)
union all
select 'index', n.nspname::text, t.relname::text, c.relname::text, ''
from pg_index i
join pg_class c on c.oid = i.indexrelid
join pg_class t on t.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1::text[])
  and t.relkind in ('r', 'p', 'm')
  and not exists (select 1 from pg_constraint k
                  where k.conindid = i.indexrelid and k.contype in ('p', 'u', 'x'))
  and not exists (select 1 from ext_member e where e.classid = 'pg_class'::regclass and e.objid = t.oid)
union all
select 'constraint', n.nspname::text, t.relname::text, k.conname::text,
       case when k.convalidated then '' else 'NOT VALID' end
from pg_constraint k
join pg_class t on t.oid = k.conrelid
join pg_namespace n on n.oid = t.relnamespace
where k.contype in ('p', 'u', 'f', 'c', 'x') and n.nspname = any($1::text[])
  -- a foreign key's clones the server makes for partitions stand for it
  and not (k.contype = 'f' and k.conparentid <> 0)
  and not exists (select 1 from ext_member e where e.classid = 'pg_class'::regclass and e.objid = t.oid)
union all
select 'function', n.nspname::text, '', p.proname::text, ''
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where p.prokind in ('f', 'p') and n.nspname = any($1::text[])
  and not exists (select 1 from ext_member e where e.classid = 'pg_proc'::regclass and e.objid = p.oid)
  -- a range type's constructors come with the type
  and not exists (select 1 from pg_depend d
                  where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'i')
union all
select 'trigger', n.nspname::text, t.relname::text, g.tgname::text, ''
from pg_trigger g
join pg_class t on t.oid = g.tgrelid
join pg_namespace n on n.oid = t.relnamespace
where not g.tgisinternal and n.nspname = any($1::text[])
union all
select 'enum', n.nspname::text, '', y.typname::text,
       array_to_string(array(select e.enumlabel::text from pg_enum e
                              where e.enumtypid = y.oid order by e.enumsortorder), ', ')
from pg_type y
join pg_namespace n on n.oid = y.typnamespace
where y.typtype = 'e' and n.nspname = any($1::text[])
  and not exists (select 1 from ext_member e where e.classid = 'pg_type'::regclass and e.objid = y.oid)
union all
select 'policy', n.nspname::text, t.relname::text, p.polname::text, ''
from pg_policy p
join pg_class t on t.oid = p.polrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = any($1::text[])
