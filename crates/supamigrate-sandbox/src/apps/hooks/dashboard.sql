-- What the dashboard does as supabase_admin: a pgmq queue (Integrations →
-- Queues) and a Vault secret.
create extension if not exists pgmq;
select pgmq.create('order_events_queue');
select pgmq.send('order_events_queue', '{"order": 1}'::jsonb);
select vault.create_secret('sk_live_fixtureVaultSecret0123', 'stripe_secret_key', 'Stripe live key');
