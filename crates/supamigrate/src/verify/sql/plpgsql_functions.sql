-- The plpgsql functions of the given schemas ($1): oid, signature, for a
-- trigger function the table of one of its triggers, whether it is one.
select p.oid,
       p.oid::regprocedure::text,
       (select t.tgrelid from pg_trigger t where t.tgfoid = p.oid order by t.tgrelid limit 1),
       p.prorettype = 'trigger'::regtype
from pg_proc p
join pg_language l on l.oid = p.prolang
join pg_namespace n on n.oid = p.pronamespace
where l.lanname = 'plpgsql'
  and n.nspname = any($1::text[])
order by 2
