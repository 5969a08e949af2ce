-- Columns COPY must carry: not dropped, not generated (the target computes
-- those), in physical order; and whether the column's binary COPY form is the
-- same on any server: built-in types (their arrays included), enums (sent as
-- labels) and domains over built-in types. Composites and arrays of
-- user-defined types embed server-specific type OIDs: those need text.
-- $1: schema, $2: table.
select a.attname::text,
       (a.atttypid < 16384
        or t.typtype = 'e'
        or (t.typtype = 'd' and t.typbasetype < 16384)) as binary_safe
from pg_attribute a
join pg_type t on t.oid = a.atttypid
where a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass
  and a.attnum > 0
  and not a.attisdropped
  and a.attgenerated = ''
order by a.attnum
