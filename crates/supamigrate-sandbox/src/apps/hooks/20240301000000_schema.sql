-- hooks: an orders app wired to the platform: a Database Webhook (with the
-- service key in its arguments), functions calling net.http_post and the
-- http extension, Realtime (a published table, a broadcast trigger, a policy
-- on realtime.messages), pg_cron jobs, a Stripe foreign table through
-- wrappers (its server's options hold a key).
create table public.orders (
  id bigint generated always as identity primary key,
  user_id uuid references auth.users (id),
  total_cents int not null,
  status text not null default 'new',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.order_events (
  id bigint generated always as identity primary key,
  order_id bigint references public.orders (id) on delete cascade,
  kind text not null,
  at timestamptz not null default now()
);

create trigger "orders-webhook"
  after insert or update on public.orders
  for each row execute function supabase_functions.http_request(
    'https://hooks.example.com/orders', 'POST',
    '{"Content-type":"application/json","Authorization":"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoic2VydmljZV9yb2xlIn0.Zml4dHVyZS1zZXJ2aWNlLXJvbGUtc2lnbmF0dXJl"}',
    '{}', '5000');

-- A webhook with HTTP basic auth and a signing header of its own.
create trigger "orders-audit-webhook"
  after delete on public.orders
  for each row execute function supabase_functions.http_request(
    'https://audit.example.com/orders', 'POST',
    '{"Content-type":"application/json","Authorization":"Basic YXVkaXQ6Zml4dHVyZS1iYXNpYy1wYXNz","x-webhook-secret":"whk-fixture-7f3a9c"}',
    '{}', '5000');

create function public.audit_sink() returns text
language sql immutable
as $$ select 'postgresql://audit:fixture-url-pass@audit.example.com:5432/audit' $$;

create function public.notify_shipping(order_id bigint) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
  req bigint;
begin
  select net.http_post(
           url := 'https://shipping.example.com/v1/notify',
           body := jsonb_build_object('order', order_id),
           headers := jsonb_build_object('Authorization', 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoiYW5vbiJ9.Zml4dHVyZS1hbm9uLWtleS1zaWduYXR1cmU'))
    into req;
  return req;
end
$$;

-- A secret read from Vault, and a queue written through pgmq (created from
-- the dashboard: plpgsql, so neither needs to exist yet).
create function public.stripe_key() returns text
language plpgsql stable security definer set search_path = ''
as $$
begin
  return (select decrypted_secret from vault.decrypted_secrets where name = 'stripe_secret_key');
end
$$;

create function public.enqueue_order(order_id bigint) returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  return (select pgmq.send('order_events_queue', jsonb_build_object('order', order_id)));
end
$$;

create extension if not exists http with schema extensions;

create function public.fetch_rate(cur text) returns numeric
language plpgsql
as $$
declare
  r extensions.http_response;
begin
  r := extensions.http_get('https://rates.example.com/latest?api_key=rk_live_fixture0123456789&cur=' || cur);
  return (r.content::jsonb ->> 'rate')::numeric;
end
$$;

create function public.order_total(uid uuid) returns bigint
language sql stable
as $$ select coalesce(sum(total_cents), 0)::bigint from public.orders where user_id = uid $$;

create function public.log_order_event() returns trigger
language plpgsql
as $$
begin
  insert into public.order_events (order_id, kind) values (new.id, lower(tg_op));
  return new;
end
$$;

create trigger orders_log after insert or update on public.orders
  for each row execute function public.log_order_event();

alter publication supabase_realtime add table public.orders;

create function public.broadcast_order() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform realtime.broadcast_changes('orders:' || new.user_id::text, tg_op, tg_op,
                                     tg_table_name, tg_table_schema, new, old);
  return null;
end
$$;

create trigger broadcast_order_changes
  after insert or update on public.orders
  for each row execute function public.broadcast_order();

create policy "users listen to their orders" on realtime.messages
  for select to authenticated
  using (realtime.topic() = 'orders:' || auth.uid()::text);

create extension if not exists pg_cron;

select cron.schedule('purge-cancelled-orders', '0 3 * * *',
  $$delete from public.orders where status = 'cancelled' and created_at < now() - interval '90 days'$$);
-- A job calling a function the target cannot keep (it reads the http
-- extension's answer): not scheduled there.
select cron.schedule('refresh-rates', '0 * * * *', $$select public.fetch_rate('EUR')$$);
select cron.schedule('ping-shipping', '*/5 * * * *',
  $$select net.http_post(url := 'https://shipping.example.com/ping', headers := '{"Authorization": "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoic2VydmljZV9yb2xlIn0.Zml4dHVyZS1zZXJ2aWNlLXJvbGUtc2lnbmF0dXJl"}'::jsonb)$$);

create extension if not exists wrappers with schema extensions;
create foreign data wrapper stripe_wrapper
  handler extensions.stripe_fdw_handler validator extensions.stripe_fdw_validator;
create server stripe_server foreign data wrapper stripe_wrapper
  options (api_key 'sk_test_fixture51HxAbCdEfGhIjKlMn', api_url 'https://api.stripe.com/v1');
create foreign table public.stripe_customers (id text, email text, name text)
  server stripe_server options (object 'customers');

-- A CHECK calling pg_jsonschema (which RDS does not offer): the target
-- cannot check it.
create extension if not exists pg_jsonschema with schema extensions;
create table public.hook_settings (
  id int primary key,
  doc jsonb not null,
  constraint doc_shape check (extensions.json_matches_schema('{"type": "object"}', doc::json))
);

-- Settings of the database (its owner may store built-in ones; custom
-- ones, which functions read with current_setting(), are in dashboard.sql).
do $$
begin
  execute format('alter database %I set search_path = "$user", public, extensions', current_database());
  execute format('alter database %I set timezone = %L', current_database(), 'Asia/Kolkata');
end
$$;
create function public.region() returns text language sql stable
  as $$ select current_setting('app.region', true) $$;

-- A DDL hook of the project's own: its event trigger is made from the
-- dashboard (dashboard.sql), since only a superuser may create one.
create function public.note_new_table() returns event_trigger language plpgsql as $$
declare
  r record;
begin
  for r in select * from pg_event_trigger_ddl_commands() loop
    raise notice 'table created: %', r.object_identity;
  end loop;
end
$$;
