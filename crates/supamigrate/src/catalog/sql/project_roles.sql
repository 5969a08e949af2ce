-- The source's roles (not PostgreSQL's, not superusers): the converter
-- keeps the project's own ones (the platform's are left out by name), with
-- whether they log in, the roles they are members of, and their settings
-- (ALTER ROLE … SET, for every database or this one) as the server stores
-- them (`name=value`).
select r.rolname::text,
       r.rolcanlogin,
       array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid order by 1),
       array(select c from pg_db_role_setting d, unnest(d.setconfig) c
             where d.setrole = r.oid
               and d.setdatabase in (0, (select oid from pg_database where datname = current_database()))
             order by d.setdatabase, c)
from pg_roles r
where r.rolname !~ '^pg_' and not r.rolsuper
order by 1
