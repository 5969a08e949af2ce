-- An Auth hook (Authentication → Hooks → Customize Access Token): Supabase
-- Auth, running as supabase_auth_admin, calls it each time it issues a
-- token; the token then carries how many notes the user owns.
create or replace function public.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql
stable
as $$
declare
  claims jsonb := coalesce(event->'claims', '{}'::jsonb);
begin
  claims := jsonb_set(claims, '{notes}',
    to_jsonb((select count(*) from public.notes where owner = (event->>'user_id')::uuid)));
  return jsonb_set(event, '{claims}', claims);
end;
$$;

grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook from authenticated, anon, public;
grant select on table public.notes to supabase_auth_admin;
