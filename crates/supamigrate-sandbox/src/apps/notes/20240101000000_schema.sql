-- notes: a small notes app whose code leans on Supabase Auth: profiles and
-- notes keyed by auth.users, an app schema besides public, a view over
-- auth.users, policies with subqueries on it, SQL and plpgsql functions
-- (SECURITY DEFINER ones among them) that read and update it, and triggers
-- on auth.users, auth.identities and auth.mfa_factors.
create schema private;

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text unique,
  full_name text,
  created_at timestamptz not null default now()
);

create table public.teams (
  id uuid primary key default gen_random_uuid(),
  name text not null
);

create table public.team_members (
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member',
  primary key (team_id, user_id)
);

create table public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
  team_id uuid references public.teams (id),
  title text not null,
  body text,
  shared boolean not null default false,
  created_at timestamptz not null default now()
);

create table public.audit_events (
  id bigint generated always as identity primary key,
  user_id uuid,
  kind text not null,
  at timestamptz not null default now()
);

-- Some projects let signed-in users read auth.users directly.
grant select on auth.users to authenticated;

create view public.user_directory as
  select u.id, u.email, u.phone, u.is_anonymous, p.username
  from auth.users u
  left join public.profiles p on p.id = u.id;

create function public.user_email(uid uuid) returns text
language sql stable security definer set search_path = ''
as $$ select email from auth.users where id = uid $$;

create function private.is_member(_team uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.team_members m
                 where m.team_id = _team and m.user_id = auth.uid())
$$;

create function public.set_claim(uid uuid, claim text, value jsonb) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select 1 from auth.users where id = uid) then
    return 'user not found';
  end if;
  update auth.users
     set raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb) || jsonb_build_object(claim, value)
   where id = uid;
  return 'OK';
end
$$;

create function public.my_claims() returns jsonb
language sql stable security definer set search_path = ''
as $$ select raw_app_meta_data from auth.users where id = auth.uid() $$;

create function public.handle_new_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.profiles (id, username, full_name)
  values (new.id,
          coalesce(new.email, new.phone, 'anon-' || left(new.id::text, 8)),
          new.raw_user_meta_data ->> 'full_name')
  on conflict (username) do nothing;
  return new;
end
$$;

create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function public.handle_new_user();

create function public.log_identity() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.audit_events (user_id, kind) values (new.user_id, 'identity:' || new.provider);
  return new;
end
$$;

create trigger on_identity_linked
  after insert on auth.identities
  for each row execute function public.log_identity();

create function public.log_mfa() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.audit_events (user_id, kind) values (new.user_id, 'mfa:' || new.factor_type);
  return new;
end
$$;

create trigger on_mfa_enrolled
  after insert on auth.mfa_factors
  for each row execute function public.log_mfa();
