-- accounts: a project that only uses Supabase Auth (no table of its own):
-- its users still move, a user with no created_at included.
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        phone, raw_app_meta_data, raw_user_meta_data, is_anonymous, created_at, updated_at)
values
 ('00000000-0000-0000-0000-000000000000', 'a1111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
  'only@accounts.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), null,
  '{"provider":"email"}', '{}', false, now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'b2222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated',
  null, null, null, '15550100002', '{"provider":"phone"}', '{}', false, now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'c3333333-3333-4333-8333-333333333333', 'authenticated', 'authenticated',
  null, null, null, null, '{}', '{}', true, now(), now());
-- What a seed helper inserts: an id and an email, nothing else (created_at
-- and updated_at stay NULL; auth.users allows it).
insert into auth.users (id, email) values ('d4444444-4444-4444-8444-444444444444', 'helper@accounts.example');
-- How they sign in: an email identity and a linked GitHub account; a phone.
insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
values
 ('a1111111-1111-4111-8111-111111111111', 'a1111111-1111-4111-8111-111111111111',
  '{"sub":"a1111111-1111-4111-8111-111111111111","email":"only@accounts.example"}', 'email', now(), now()),
 ('583231', 'a1111111-1111-4111-8111-111111111111',
  '{"sub":"583231","email":"only@accounts.example","user_name":"only"}', 'github', now(), now()),
 ('b2222222-2222-4222-8222-222222222222', 'b2222222-2222-4222-8222-222222222222',
  '{"sub":"b2222222-2222-4222-8222-222222222222","phone":"15550100002"}', 'phone', now(), now());
