-- Extensions' configuration tables and sequences (pg_extension_config_dump):
-- pg_dump copies the rows each one's condition selects, the ones the
-- project added (CREATE EXTENSION on the target makes only its own), and
-- each sequence's value. Whether this user may read each one.
select e.extname::text, n.nspname::text, c.relname::text, c.relkind = 'S',
       coalesce(e.extcondition[s.i], ''), has_table_privilege(c.oid, 'select')
from pg_extension e
cross join lateral generate_subscripts(e.extconfig, 1) as s(i)
join pg_class c on c.oid = e.extconfig[s.i]
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'S')
order by 1, 2, 3
