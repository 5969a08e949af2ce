-- Text columns of the application's tables: where Storage references may
-- be kept, with the table's size in pages (its current size: relpages
-- is only as fresh as the last VACUUM or ANALYZE). $1: schemas.
select n.nspname::text, c.relname::text, a.attname::text,
       (pg_relation_size(c.oid) / current_setting('block_size')::int)::int8
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where a.attnum > 0
  and not a.attisdropped
  and a.attgenerated = ''
  and a.atttypid in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
  and c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname = any($1::text[])
order by 1, 2, 3
