-- Privileges granted on auth.users (no rows without it): the target's
-- auth.users view gets those of roles it has.
select a.grantee::regrole::text, a.privilege_type::text
from pg_class c, aclexplode(c.relacl) a
where c.oid = to_regclass('auth.users')
  and a.grantee <> 0
  and a.grantee <> c.relowner
order by 1, 2
