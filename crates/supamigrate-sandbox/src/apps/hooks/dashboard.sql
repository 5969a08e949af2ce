-- What the dashboard does as supabase_admin: a pgmq queue (Integrations →
-- Queues), a Vault secret, and custom database settings (only a superuser
-- may store them since PostgreSQL 15: set before an upgrade, or by support).
create extension if not exists pgmq;
select pgmq.create('order_events_queue');
select pgmq.send('order_events_queue', '{"order": 1}'::jsonb);
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
