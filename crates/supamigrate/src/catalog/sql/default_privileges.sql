-- Default privileges (ALTER DEFAULT PRIVILEGES) as changes to what
-- PostgreSQL gives on its own: for every role's entry, the privileges it
-- grants beyond the built-in default, and, for an entry of every schema
-- (whose list replaces the built-in default), those it takes away. Per
-- schema entries only ever add. The owner's privileges on its own objects
-- are left out. Each row: the role whose new objects get them, the schema
-- (null: every schema), the kind (pg_default_acl's letter), the grantee
-- ('' for PUBLIC), the privilege, whether with grant option, and whether
-- it is taken away.
with d as (
  select defaclrole, defaclnamespace, defaclobjtype, defaclacl,
         case defaclobjtype when 'S' then 's' else defaclobjtype end as k
  from pg_default_acl
), entry as (
  select d.defaclrole, d.defaclnamespace, d.defaclobjtype, a.grantee, a.privilege_type, a.is_grantable
  from d, aclexplode(d.defaclacl) a
), builtin as (
  select d.defaclrole, d.defaclnamespace, d.defaclobjtype, a.grantee, a.privilege_type, a.is_grantable
  from d, aclexplode(acldefault(d.k::"char", d.defaclrole)) a
  where d.defaclnamespace = 0
), change as (
  (select *, false as revoke from entry except select *, false from builtin)
  union all
  (select *, true from builtin except select *, true from entry)
)
select pg_get_userbyid(c.defaclrole)::text,
       case when c.defaclnamespace = 0 then null else c.defaclnamespace::regnamespace::text end,
       c.defaclobjtype::text,
       case when c.grantee = 0 then '' else pg_get_userbyid(c.grantee)::text end,
       c.privilege_type::text,
       c.is_grantable,
       c.revoke
from change c
where c.grantee <> c.defaclrole
order by 1, 2 nulls first, 3, 4, 7, 5
