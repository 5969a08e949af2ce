insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
 ('00000000-0000-0000-0000-000000000000', 'a1111111-1111-4111-8111-111111111111', 'authenticated', 'authenticated',
  'ola@hooks.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), '{"provider":"email"}', '{}', now(), now()),
 ('00000000-0000-0000-0000-000000000000', 'b2222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated',
  'per@hooks.example', '$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW', now(), '{"provider":"email"}', '{}', now(), now());

-- As a restore would: the webhook and broadcast triggers do not fire.
set session_replication_role = replica;
insert into public.orders (user_id, total_cents, status)
select case when i % 2 = 0 then 'a1111111-1111-4111-8111-111111111111'::uuid else 'b2222222-2222-4222-8222-222222222222'::uuid end,
       i * 100, case when i % 5 = 0 then 'cancelled' else 'paid' end
from generate_series(1, 40) i;
insert into public.order_events (order_id, kind) select id, 'insert' from public.orders;
set session_replication_role = origin;
insert into public.hook_settings values (1, '{"retries": 3}'), (2, '{"retries": 0}');
