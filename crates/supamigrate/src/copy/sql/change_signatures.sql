-- For each given table: its change counters (rows inserted, updated, deleted
-- since the statistics began) and storage file, summed over its partitions.
-- Any write, TRUNCATE, VACUUM FULL or statistics reset changes the text.
-- Catalog reads only: no lock is taken (pg_partition_tree would lock).
with recursive given as (
    select t.schema, t.name, c.oid as root
    from unnest($1::text[], $2::text[]) as t(schema, name)
    join pg_namespace n on n.nspname = t.schema
    join pg_class c on c.relnamespace = n.oid and c.relname = t.name
), tree as (
    select root, root as relid from given
    union all
    select tree.root, i.inhrelid from tree join pg_inherits i on i.inhparent = tree.relid
)
select g.schema, g.name,
       coalesce((
           select string_agg(
                      coalesce(s.n_tup_ins, 0) || '/' || coalesce(s.n_tup_upd, 0) || '/' ||
                      coalesce(s.n_tup_del, 0) || '/' || c.relfilenode,
                      ',' order by tree.relid)
           from tree
           join pg_class c on c.oid = tree.relid
           left join pg_stat_all_tables s on s.relid = tree.relid
           where tree.root = g.root and c.relkind in ('r', 'm')
       ), '') as signature
from given g
