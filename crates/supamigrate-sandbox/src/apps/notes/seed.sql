-- What GoTrue would have written: users of every kind (email with bcrypt
-- and argon2 hashes, phone-only, anonymous, OAuth-only, SSO with the same
-- email as an email user), their identities, an MFA factor. Then the
-- application's rows. Run as supabase_admin; the application's triggers fire.
insert into auth.sso_providers (id, resource_id, created_at, updated_at)
values ('5e5e5e5e-0000-4000-8000-000000000001', 'acme-okta', now(), now());

insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                        is_anonymous, is_sso_user, created_at, updated_at, last_sign_in_at)
values
 ('00000000-0000-0000-0000-000000000000', 'a1111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
  'alice@notes.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), null, null,
  '{"provider":"email","providers":["email"]}', '{"full_name":"Alice Example"}', false, false, now(), now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'b2222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated',
  'bob@notes.example', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy', now(), null, null,
  '{"provider":"email","providers":["email"]}', '{"full_name":"Bob Example"}', false, false, now(), now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'c3333333-3333-4333-8333-333333333333', 'authenticated', 'authenticated',
  null, null, null, '15550100001', now(),
  '{"provider":"phone","providers":["phone"]}', '{}', false, false, now(), now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'd4444444-4444-4444-8444-444444444444', 'authenticated', 'authenticated',
  null, null, null, null, null,
  '{}', '{}', true, false, now(), now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'e5555555-5555-4555-8555-555555555555', 'authenticated', 'authenticated',
  'erin@gmail.example', null, now(), null, null,
  '{"provider":"google","providers":["google"]}', '{"full_name":"Erin OAuth","avatar_url":"https://lh3.example/a.png"}', false, false, now(), now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'f6666666-6666-4666-8666-666666666666', 'authenticated', 'authenticated',
  'alice@notes.example', null, now(), null, null,
  '{"provider":"sso:5e5e5e5e-0000-4000-8000-000000000001","providers":["sso:5e5e5e5e-0000-4000-8000-000000000001"]}', '{}', false, true, now(), now(), now());

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
values
 ('a1111111-1111-4111-8111-111111111111', 'a1111111-1111-4111-8111-111111111111', '{"sub":"a1111111-1111-4111-8111-111111111111","email":"alice@notes.example"}', 'email', now(), now(), now()),
 ('b2222222-2222-4222-8222-222222222222', 'b2222222-2222-4222-8222-222222222222', '{"sub":"b2222222-2222-4222-8222-222222222222","email":"bob@notes.example"}', 'email', now(), now(), now()),
 ('c3333333-3333-4333-8333-333333333333', 'c3333333-3333-4333-8333-333333333333', '{"sub":"c3333333-3333-4333-8333-333333333333","phone":"15550100001"}', 'phone', now(), now(), now()),
 ('108234567890123456789', 'e5555555-5555-4555-8555-555555555555', '{"sub":"108234567890123456789","email":"erin@gmail.example"}', 'google', now(), now(), now()),
 ('alice@acme.example', 'f6666666-6666-4666-8666-666666666666', '{"sub":"alice@acme.example","email":"alice@notes.example"}', 'sso:5e5e5e5e-0000-4000-8000-000000000001', now(), now(), now());

insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret)
values ('7f7f7f7f-0000-4000-8000-000000000001', 'a1111111-1111-4111-8111-111111111111', 'phone app', 'totp', 'verified', now(), now(), 'JBSWY3DPEHPK3PXP');

insert into public.teams (id, name) values ('7ea70000-0000-4000-8000-000000000001', 'Writers');
insert into public.team_members (team_id, user_id, role) values
 ('7ea70000-0000-4000-8000-000000000001', 'a1111111-1111-4111-8111-111111111111', 'owner'),
 ('7ea70000-0000-4000-8000-000000000001', 'c3333333-3333-4333-8333-333333333333', 'member');

insert into public.notes (owner, team_id, title, body, shared) values
 ('a1111111-1111-4111-8111-111111111111', null, 'Alice 1', 'private', false),
 ('a1111111-1111-4111-8111-111111111111', null, 'Alice 2', 'shared with verified users', true),
 ('a1111111-1111-4111-8111-111111111111', '7ea70000-0000-4000-8000-000000000001', 'Alice team', 'for the team', false),
 ('b2222222-2222-4222-8222-222222222222', null, 'Bob 1', 'private', false),
 ('b2222222-2222-4222-8222-222222222222', null, 'Bob 2', 'private', false),
 ('c3333333-3333-4333-8333-333333333333', null, 'Carol 1', 'phone user', false),
 ('d4444444-4444-4444-8444-444444444444', null, 'Anon 1', 'anonymous user', false);
