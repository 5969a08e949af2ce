-- The source database's own settings (ALTER DATABASE … SET), not a role's:
-- name and value as the server stores them.
select split_part(s, '=', 1), substr(s, strpos(s, '=') + 1)
from pg_db_role_setting d, unnest(d.setconfig) s
where d.setdatabase = (select oid from pg_database where datname = current_database())
  and d.setrole = 0
order by 1
