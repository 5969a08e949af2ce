-- How a user signs in, read from Supabase Auth's identities (the account
-- page shows "linked: email, github").
create function public.sign_in_methods(uid uuid) returns text
language sql stable security definer set search_path = ''
as $$ select string_agg(provider, ', ' order by provider) from auth.identities where user_id = uid $$;
