-- Stored generated columns of the application's tables, with their
-- expression (schema-qualified: the session's search_path is empty).
-- $1: schemas.
select n.nspname::text, c.relname::text, a.attname::text, pg_get_expr(d.adbin, d.adrelid)
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attgenerated = 's'
  and not a.attisdropped
  and c.relkind in ('r', 'p')
  and n.nspname = any($1::text[])
order by 1, 2, 3
