-- Every schema except system schemas and schemas created by extensions.
select n.nspname::text
from pg_namespace n
where n.nspname not like 'pg\_%'
  and n.nspname <> 'information_schema'
  and not exists (
    select 1 from pg_depend d
    where d.classid = 'pg_namespace'::regclass and d.objid = n.oid and d.deptype = 'e')
order by 1
