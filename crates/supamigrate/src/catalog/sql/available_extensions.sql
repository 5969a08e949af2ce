-- Extensions the connected role can create. On RDS the allow-list
-- `rds.extensions` decides; elsewhere a superuser can create any available
-- extension and other roles only trusted ones.
select a.name::text
from pg_available_extensions a
where case
        when coalesce(current_setting('rds.extensions', true), '') <> '' then
            a.name = any(string_to_array(replace(current_setting('rds.extensions', true), ' ', ''), ','))
        else
            (select rolsuper from pg_roles where rolname = current_user)
            or exists (select 1 from pg_available_extension_versions v
                       where v.name = a.name and v.version = a.default_version and v.trusted)
      end
order by 1
