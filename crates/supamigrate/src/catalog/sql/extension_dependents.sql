-- Objects outside an extension that depend on one of its members, named the
-- way the schema converter matches statements: `function s.f`, `table s.t`,
-- `view s.v`, `column s.t.c`, else PostgreSQL's own description.
with members as (
    select d.classid, d.objid, e.extname
    from pg_depend d
    join pg_extension e on e.oid = d.refobjid
    where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
), deps as (
    select distinct m.extname, d.classid, d.objid, d.objsubid
    from pg_depend d
    join members m on d.refclassid = m.classid and d.refobjid = m.objid
    where d.deptype = 'n'
      and d.classid in ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass,
                        'pg_rewrite'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass,
                        'pg_trigger'::regclass, 'pg_policy'::regclass)
      and not exists (
          select 1 from pg_depend x
          where x.classid = d.classid and x.objid = d.objid and x.deptype = 'e')
)
select extname::text,
       case
           when classid = 'pg_proc'::regclass then (
               select 'function ' || n.nspname || '.' || p.proname
               from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where p.oid = objid)
           when classid = 'pg_class'::regclass and objsubid = 0 then (
               select case c.relkind when 'v' then 'view ' when 'm' then 'materialized view ' else 'table ' end
                      || n.nspname || '.' || c.relname
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where c.oid = objid)
           when classid = 'pg_class'::regclass then (
               select 'column ' || n.nspname || '.' || c.relname || '.' || a.attname
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attnum = objsubid
               where c.oid = objid)
           else pg_describe_object(classid, objid, objsubid)
       end as dependent
from deps
order by 1, 2
