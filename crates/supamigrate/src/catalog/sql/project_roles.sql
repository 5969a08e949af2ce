-- The source's roles (not PostgreSQL's, not superusers): the converter
-- keeps the project's own ones (the platform's are left out by name), with
-- whether they log in and the roles they are members of.
select r.rolname::text,
       r.rolcanlogin,
       array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid order by 1)
from pg_roles r
where r.rolname !~ '^pg_' and not r.rolsuper
order by 1
