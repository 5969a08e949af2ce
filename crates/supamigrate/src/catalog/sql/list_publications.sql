-- Publications and the tables they publish.
select p.pubname::text,
       coalesce(array_agg(t.schemaname || '.' || t.tablename order by t.schemaname, t.tablename)
                filter (where t.tablename is not null), '{}')::text[]
from pg_publication p
left join pg_publication_tables t on t.pubname = p.pubname
group by p.pubname
order by 1
