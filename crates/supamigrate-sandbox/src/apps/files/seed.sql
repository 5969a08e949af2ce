insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
 ('00000000-0000-0000-0000-000000000000', 'a1111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
  'uma@files.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), '{"provider":"email"}', '{}', now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'b2222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated',
  'vic@files.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), '{"provider":"email"}', '{}', now(), now());
