-- For each given table: its change counters (rows inserted, updated, deleted
-- since the statistics began) and storage file, summed over its partitions.
-- Any write, TRUNCATE, VACUUM FULL or statistics reset changes the text.
select t.schema, t.name,
       coalesce((
           select string_agg(
                      coalesce(s.n_tup_ins, 0) || '/' || coalesce(s.n_tup_upd, 0) || '/' ||
                      coalesce(s.n_tup_del, 0) || '/' || c.relfilenode,
                      ',' order by p.relid::oid)
           from pg_partition_tree(format('%I.%I', t.schema, t.name)::regclass) p
           join pg_class c on c.oid = p.relid
           left join pg_stat_all_tables s on s.relid = p.relid
           where p.isleaf
       ), '') as signature
from unnest($1::text[], $2::text[]) as t(schema, name)
