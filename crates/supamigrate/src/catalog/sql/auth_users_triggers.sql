-- User triggers on auth.users (e.g. handle_new_user), as CREATE TRIGGER statements.
select pg_get_triggerdef(t.oid)
from pg_trigger t
where t.tgrelid = to_regclass('auth.users')
  and not t.tgisinternal
order by t.tgname
