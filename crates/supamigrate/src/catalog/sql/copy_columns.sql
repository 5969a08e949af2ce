-- Columns COPY must carry: not dropped, not generated (the target computes
-- those), in physical order. $1: schema, $2: table.
select a.attname::text
from pg_attribute a
where a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass
  and a.attnum > 0
  and not a.attisdropped
  and a.attgenerated = ''
order by a.attnum
