-- Every column of the tables of the given schemas ($1): `schema.table.column`,
-- NOT NULL, and its default or generation expression (schema-qualified:
-- verify sessions have an empty search_path).
select n.nspname || '.' || c.relname || '.' || a.attname,
       a.attnotnull,
       case when a.attgenerated <> '' then 'generated ' else '' end
           || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attnum > 0
  and not a.attisdropped
  and c.relkind in ('r', 'p')
  and n.nspname = any($1::text[])
