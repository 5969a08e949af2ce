-- PostgreSQL 15+: each table a publication lists, as CREATE PUBLICATION …
-- FOR TABLE takes it back: its column list and row filter (rendered by the
-- server, as pg_dump does) included.
select p.pubname::text,
       array_agg(format('%I.%I', n.nspname, c.relname)
                 || coalesce(' (' || (select string_agg(quote_ident(a.attname), ', ' order by k.i)
                                      from unnest(r.prattrs::int2[]) with ordinality as k(attnum, i)
                                      join pg_attribute a on a.attrelid = r.prrelid and a.attnum = k.attnum)
                             || ')', '')
                 || coalesce(' WHERE (' || pg_get_expr(r.prqual, r.prrelid) || ')', '')
                 order by n.nspname, c.relname)::text[]
from pg_publication p
join pg_publication_rel r on r.prpubid = p.oid
join pg_class c on c.oid = r.prrelid
join pg_namespace n on n.oid = c.relnamespace
where p.pubname not like 'supamigrate\_%'
group by p.pubname
