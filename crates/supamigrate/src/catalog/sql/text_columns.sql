-- Text columns of the application's tables: where Storage references may
-- be kept, with the table's size in pages (its current size, its
-- partitions' for a partitioned table: relpages is only as fresh as the last
-- VACUUM or ANALYZE). $1: schemas.
select n.nspname::text, c.relname::text, a.attname::text,
       ((select coalesce(sum(pg_relation_size(t.relid)), 0) from pg_partition_tree(c.oid) t where t.isleaf)
        / current_setting('block_size')::int)::int8
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
