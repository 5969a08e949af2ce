-- The functions and relations each extension installs, by name: what an
-- application's function bodies may call or read. Functions that share
-- their name with a built-in are marked `function*`: an unqualified call of
-- that name is the built-in's.
select e.extname::text,
       case when exists (select 1 from pg_proc b
                         where b.pronamespace = 'pg_catalog'::regnamespace and b.proname = p.proname)
            then 'function*' else 'function' end,
       n.nspname::text, p.proname::text
from pg_proc p
join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
join pg_extension e on e.oid = d.refobjid
join pg_namespace n on n.oid = p.pronamespace
union
select e.extname::text, 'relation', n.nspname::text, c.relname::text
from pg_class c
join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
join pg_extension e on e.oid = d.refobjid
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'v', 'm', 'p', 'f', 'c')
order by 1, 2, 3, 4
