-- The SQL-language functions of the given schemas ($1) whose body is a
-- string (not BEGIN ATOMIC, which is checked when it is created): oid, the
-- signature for people, the same schema-qualified for the other side, and
-- the search_path the function sets for itself, if any.
select p.oid,
       p.oid::regprocedure::text,
       format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
       (select substr(c, length('search_path=') + 1) from unnest(p.proconfig) c where c like 'search_path=%')
from pg_proc p
join pg_language l on l.oid = p.prolang
join pg_namespace n on n.oid = p.pronamespace
where l.lanname = 'sql'
  and p.prosrc <> ''
  and n.nspname = any($1::text[])
order by 2
