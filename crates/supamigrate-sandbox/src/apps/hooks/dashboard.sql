-- What the dashboard does as supabase_admin: a pgmq queue (Integrations →
-- Queues), a Vault secret, and custom database settings (only a superuser
-- may store them since PostgreSQL 15: set before an upgrade, or by support).
create extension if not exists pgmq;
select pgmq.create('order_events_queue');
select pgmq.send('order_events_queue', '{"order": 1}'::jsonb);
-- The project's own wrappers for its Edge Functions, as real projects write
-- them: a read returning pgmq's record type, the queue's length from its
-- metrics.
create function public.queue_read(queue_name text, vt integer, qty integer) returns setof pgmq.message_record
  language sql security definer set search_path = '' as $$ select * from pgmq.read(queue_name, vt, qty) $$;
create function public.queue_length(queue_name text) returns bigint
  language sql security definer set search_path = '' as $$ select m.queue_length from pgmq.metrics(queue_name) m $$;
select vault.create_secret('sk_live_fixtureVaultSecret0123', 'stripe_secret_key', 'Stripe live key');
do $$
begin
  execute format('alter database %I set app.region = %L', current_database(), 'eu-west-1');
  execute format('alter database %I set app.service_key = %L', current_database(),
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoic2VydmljZV9yb2xlIn0.Zml4dHVyZS1zZXJ2aWNlLXJvbGUtc2lnbmF0dXJl');
end
$$;
create event trigger note_new_tables on ddl_command_end when tag in ('CREATE TABLE')
  execute function public.note_new_table();
