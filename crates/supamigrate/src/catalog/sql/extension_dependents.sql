-- Objects outside an extension that depend on one of its members, named the
-- way the schema converter matches statements: `function s.f`, `table s.t`,
-- `view s.v`, `column s.t.c`, else PostgreSQL's own description; with the
-- schema the dependent lives in (the plan counts the application's only).
-- What uses a column of a member's type is listed too, and a view with
-- such a column as the view.
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
), via_columns as (
    -- What uses a column typed by a member, without naming the member: a
    -- view reading it, an index or constraint on it, a trigger or policy
    -- naming it. (A table's own column stays a column.)
    select distinct c.extname, d.classid, d.objid, d.objsubid
    from pg_depend d
    join deps c on c.classid = 'pg_class'::regclass and c.objsubid > 0
               and d.refclassid = 'pg_class'::regclass and d.refobjid = c.objid and d.refobjsubid = c.objsubid
    where d.deptype in ('n', 'a')
      and d.classid in ('pg_class'::regclass, 'pg_rewrite'::regclass, 'pg_constraint'::regclass,
                        'pg_trigger'::regclass, 'pg_policy'::regclass)
      and not (d.classid = 'pg_class'::regclass and d.objid = c.objid)
), all_deps as (
    select * from deps union select * from via_columns
)
select distinct extname::text,
       case
           when classid = 'pg_proc'::regclass then (
               select 'function ' || n.nspname || '.' || p.proname
               from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where p.oid = objid)
           when classid = 'pg_class'::regclass and objsubid = 0 then (
               select case c.relkind when 'v' then 'view ' when 'm' then 'materialized view ' when 'i' then 'index ' else 'table ' end
                      || n.nspname || '.' || c.relname
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where c.oid = objid)
           when classid = 'pg_class'::regclass and (select relkind from pg_class where oid = objid) in ('v', 'm') then (
               -- A view's column typed by a member: the view goes with it.
               select case c.relkind when 'v' then 'view ' else 'materialized view ' end || n.nspname || '.' || c.relname
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where c.oid = objid)
           when classid = 'pg_class'::regclass then (
               select 'column ' || n.nspname || '.' || c.relname || '.' || a.attname
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attnum = objsubid
               where c.oid = objid)
           when classid = 'pg_rewrite'::regclass then (
               select 'view ' || c.relnamespace::regnamespace::text || '.' || c.relname
               from pg_rewrite r join pg_class c on c.oid = r.ev_class where r.oid = objid)
           when classid = 'pg_attrdef'::regclass then (
               select 'default of column ' || c.relnamespace::regnamespace::text || '.' || c.relname || '.' || att.attname
               from pg_attrdef a
               join pg_class c on c.oid = a.adrelid
               join pg_attribute att on att.attrelid = a.adrelid and att.attnum = a.adnum
               where a.oid = objid)
           when classid = 'pg_trigger'::regclass then (
               select 'trigger ' || t.tgname || ' on ' || c.relnamespace::regnamespace::text || '.' || c.relname
               from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.oid = objid)
           when classid = 'pg_policy'::regclass then (
               select 'policy "' || p.polname || '" on ' || c.relnamespace::regnamespace::text || '.' || c.relname
               from pg_policy p join pg_class c on c.oid = p.polrelid where p.oid = objid)
           when classid = 'pg_constraint'::regclass then (
               select 'constraint ' || k.conname || ' on ' || coalesce(c.relnamespace::regnamespace::text || '.' || c.relname, k.connamespace::regnamespace::text)
               from pg_constraint k left join pg_class c on c.oid = k.conrelid where k.oid = objid)
           when classid = 'pg_type'::regclass then (
               select 'type ' || typnamespace::regnamespace::text || '.' || typname from pg_type where oid = objid)
           else pg_describe_object(classid, objid, objsubid)
       end as dependent,
       case
           when classid = 'pg_proc'::regclass then
               (select pronamespace::regnamespace::text from pg_proc where oid = objid)
           when classid = 'pg_class'::regclass then
               (select relnamespace::regnamespace::text from pg_class where oid = objid)
           when classid = 'pg_type'::regclass then
               (select typnamespace::regnamespace::text from pg_type where oid = objid)
           when classid = 'pg_rewrite'::regclass then
               (select c.relnamespace::regnamespace::text from pg_rewrite r join pg_class c on c.oid = r.ev_class where r.oid = objid)
           when classid = 'pg_attrdef'::regclass then
               (select c.relnamespace::regnamespace::text from pg_attrdef a join pg_class c on c.oid = a.adrelid where a.oid = objid)
           when classid = 'pg_constraint'::regclass then
               (select connamespace::regnamespace::text from pg_constraint where oid = objid)
           when classid = 'pg_trigger'::regclass then
               (select c.relnamespace::regnamespace::text from pg_trigger t join pg_class c on c.oid = t.tgrelid where t.oid = objid)
           when classid = 'pg_policy'::regclass then
               (select c.relnamespace::regnamespace::text from pg_policy p join pg_class c on c.oid = p.polrelid where p.oid = objid)
       end as dependent_schema
from all_deps
order by 1, 2
