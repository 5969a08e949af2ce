-- Publications and the tables they publish (supamigrate's own, made on the
-- source for a follow, left out), with what CREATE PUBLICATION needs to
-- make one again: its operations, whether a partition's changes are
-- published as its root's, and whether it is exactly a list of tables
-- (not FOR ALL TABLES, no TABLES IN SCHEMA, each table published as
-- itself; column lists and row filters are read by publication_specs.sql).
select p.pubname::text,
       coalesce(array_agg(t.schemaname || '.' || t.tablename order by t.schemaname, t.tablename)
                filter (where t.tablename is not null), '{}')::text[],
       coalesce(array_agg(format('%I.%I', t.schemaname, t.tablename) order by t.schemaname, t.tablename)
                filter (where t.tablename is not null), '{}')::text[],
       concat_ws(', ', case when p.pubinsert then 'insert' end, case when p.pubupdate then 'update' end,
                 case when p.pubdelete then 'delete' end, case when p.pubtruncate then 'truncate' end),
       p.pubviaroot,
       not p.puballtables
         and (select count(*) from pg_publication_rel r where r.prpubid = p.oid) = count(t.tablename)
         and count(t.tablename) > 0
from pg_publication p
left join pg_publication_tables t on t.pubname = p.pubname
where p.pubname not like 'supamigrate\_%'
group by p.oid, p.pubname, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot
order by 1
