-- The populated materialized views of the given schemas ($1: text[]), each
-- after the materialized views it reads: pg_dump --schema-only creates them
-- WITH NO DATA, and their contents come from a REFRESH after the data.
with recursive mv as (
    select c.oid, n.nspname::text as nspname, c.relname::text as relname
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'm' and c.relispopulated and n.nspname = any($1::text[])
      and not exists (select 1 from pg_depend e
                      where e.classid = 'pg_class'::regclass and e.objid = c.oid and e.deptype = 'e')
), reads as (
    select distinct r.ev_class as mv, d.refobjid as dep
    from pg_rewrite r
    join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
    where r.ev_class in (select oid from mv) and d.refobjid in (select oid from mv)
      and d.refobjid <> r.ev_class
), depth(oid, n) as (
    select oid, 0 from mv
    union all
    select r.mv, d.n + 1 from reads r join depth d on d.oid = r.dep where d.n < 64
)
select mv.nspname, mv.relname
from mv join (select oid, max(n) as n from depth group by oid) d using (oid)
order by d.n, mv.nspname, mv.relname
