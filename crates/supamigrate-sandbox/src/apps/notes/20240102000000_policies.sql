alter table public.notes enable row level security;
alter table public.profiles enable row level security;
alter table public.team_members enable row level security;
-- The owner too (on the target: the master role supamigrate works as).
alter table public.team_members force row level security;

create policy "own notes" on public.notes
  for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());

create policy "verified users read shared notes" on public.notes
  for select to authenticated
  using (shared and exists (select 1 from auth.users u
                            where u.id = auth.uid() and u.email_confirmed_at is not null));

create policy "team members read team notes" on public.notes
  for select to authenticated
  using (team_id is not null and private.is_member(team_id));

create policy "profiles are public" on public.profiles for select using (true);
create policy "own profile" on public.profiles for update to authenticated using (id = auth.uid());
create policy "members see their teams" on public.team_members
  for select to authenticated using (user_id = auth.uid());

grant usage on schema private to authenticated;
grant execute on function private.is_member(uuid) to authenticated;

-- Comments, as projects write them for their team and for PostgREST /
-- pg_graphql (which read them): on a table, a column, a policy, a function
-- of the app schema, the schema itself.
comment on table public.notes is 'A user''s notes; shared ones are read by verified users';
comment on column public.notes.shared is '@graphql({"description": "visible to verified users"})';
comment on policy "own notes" on public.notes is 'owners read and write their own notes';
comment on function private.is_member(uuid) is 'whether the caller belongs to the team';
comment on schema private is 'helpers the policies call';
