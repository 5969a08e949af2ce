-- The columns of auth.users in physical order; no rows when there is no auth.users.
select a.attname::text
from pg_attribute a
where a.attrelid = to_regclass('auth.users')
  and a.attnum > 0
  and not a.attisdropped
order by a.attnum
