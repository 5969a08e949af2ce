-- The columns of table $1 (`auth.users`) in physical order, with type, NOT
-- NULL, default and generation expression; no rows when there is no such table.
select a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
       case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end
from pg_attribute a
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = to_regclass($1)
  and a.attnum > 0
  and not a.attisdropped
order by a.attnum
