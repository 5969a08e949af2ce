-- Objects of the application schemas that objects outside them depend on (a
-- trigger on auth.users or a policy on storage.objects calling an
-- application function, a view elsewhere reading an application table…),
-- and, transitively, what those depend on inside the application schemas.
-- Rollback keeps these instead of dropping and recreating them: dropping
-- would fail, or drop the outside object with them.
-- $1: text[] of application schemas. Returns kind (function, type, table),
-- schema, name.
with recursive
app as (select oid from pg_namespace where nspname = any($1::text[])),
dep as (
    select d.classid, d.objid, d.refclassid, d.refobjid,
           case d.classid
               when 'pg_policy'::regclass then (select c.relnamespace from pg_policy p join pg_class c on c.oid = p.polrelid where p.oid = d.objid)
               when 'pg_trigger'::regclass then (select c.relnamespace from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.oid = d.objid)
               when 'pg_rewrite'::regclass then (select c.relnamespace from pg_rewrite r join pg_class c on c.oid = r.ev_class where r.oid = d.objid)
               when 'pg_attrdef'::regclass then (select c.relnamespace from pg_attrdef a join pg_class c on c.oid = a.adrelid where a.oid = d.objid)
               when 'pg_constraint'::regclass then (select coalesce(c.relnamespace, k.connamespace) from pg_constraint k left join pg_class c on c.oid = k.conrelid where k.oid = d.objid)
               when 'pg_class'::regclass then (select relnamespace from pg_class where oid = d.objid)
               when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = d.objid)
               when 'pg_type'::regclass then (select typnamespace from pg_type where oid = d.objid)
           end as ns,
           case d.refclassid
               when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = d.refobjid)
               when 'pg_type'::regclass then (select typnamespace from pg_type where oid = d.refobjid)
               when 'pg_class'::regclass then (select relnamespace from pg_class where oid = d.refobjid)
           end as refns
    from pg_depend d
    where d.deptype = 'n'
      and d.refclassid in ('pg_proc'::regclass, 'pg_type'::regclass, 'pg_class'::regclass)
),
protected(classid, objid) as (
    select refclassid, refobjid from dep
    where ns is not null and ns not in (select oid from app)
      and refns in (select oid from app)
    union
    select d.refclassid, d.refobjid
    from dep d
    join protected p on p.classid = d.classid and p.objid = d.objid
    where d.refns in (select oid from app)
)
select 'function', n.nspname::text, f.proname::text
from protected p join pg_proc f on f.oid = p.objid join pg_namespace n on n.oid = f.pronamespace
where p.classid = 'pg_proc'::regclass
union
select 'type', n.nspname::text, t.typname::text
from protected p join pg_type t on t.oid = p.objid join pg_namespace n on n.oid = t.typnamespace
where p.classid = 'pg_type'::regclass
union
select 'table', n.nspname::text, c.relname::text
from protected p join pg_class c on c.oid = p.objid join pg_namespace n on n.oid = c.relnamespace
where p.classid = 'pg_class'::regclass and c.relkind in ('r', 'p')
order by 1, 2, 3
