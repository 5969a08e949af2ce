-- Roles of a hosted Supabase project, as its Postgres image and services create
-- them (facts: shared/research/supabase-internals.md §4.1). Run as supabase_admin,
-- the bootstrap superuser. The `postgres` role itself is created by the sandbox
-- code first (it carries a password): LOGIN NOSUPERUSER CREATEDB CREATEROLE
-- REPLICATION BYPASSRLS, exactly the demoted role of hosted projects.

create role anon nologin inherit;
create role authenticated nologin inherit;
create role service_role nologin inherit bypassrls;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

create role authenticator login noinherit;
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
grant anon, authenticated, service_role to authenticator;

create role supabase_auth_admin login noinherit createrole noreplication;
alter role supabase_auth_admin set search_path = auth;
create role supabase_storage_admin login noinherit createrole noreplication;
alter role supabase_storage_admin set search_path = storage;
create role supabase_realtime_admin nologin noinherit createrole replication;
create role supabase_functions_admin login noinherit createrole noreplication;
create role supabase_replication_admin login replication;
create role supabase_read_only_user login bypassrls;
grant pg_read_all_data to supabase_read_only_user;
create role supabase_superuser nologin;
create role dashboard_user nosuperuser createdb createrole replication;
create role pgbouncer login;

grant anon, authenticated, service_role to postgres;
grant pg_read_all_data, pg_signal_backend to postgres;
grant supabase_superuser to postgres;
