-- auth.users by kind of user. Columns of recent GoTrue versions
-- (is_anonymous, is_sso_user) are read through the row's JSON: older
-- projects do not have them.
select count(*),
       count(*) filter (where email is not null and coalesce((to_jsonb(u) ->> 'is_sso_user')::boolean, false) = false),
       count(*) filter (where email is null and phone is not null),
       count(*) filter (where coalesce((to_jsonb(u) ->> 'is_anonymous')::boolean, false)),
       count(*) filter (where coalesce((to_jsonb(u) ->> 'is_sso_user')::boolean, false)),
       count(*) filter (where coalesce(encrypted_password, '') = '')
from auth.users u
