-- Foreign servers with their wrapper, the NAMES of their options (values may
-- be keys: never read), and their foreign tables.
select s.srvname::text,
       w.fdwname::text,
       array(select split_part(o, '=', 1) from unnest(coalesce(s.srvoptions, '{}')) o order by 1)::text[],
       array(select n.nspname || '.' || c.relname
             from pg_foreign_table ft
             join pg_class c on c.oid = ft.ftrelid
             join pg_namespace n on n.oid = c.relnamespace
             where ft.ftserver = s.oid
             order by 1)::text[]
from pg_foreign_server s
join pg_foreign_data_wrapper w on w.oid = s.srvfdw
order by 1
