-- The rest of the platform a project database carries (supabase-internals.md
-- §4.2, §4.4, §4.5): realtime and graphql_public schemas, the CLI's
-- supabase_migrations history, the empty supabase_realtime publication (owned by
-- postgres, so projects can add their tables) and PostgREST's event triggers.

create schema realtime authorization supabase_admin;
grant usage on schema realtime to postgres, anon, authenticated, service_role;
create table realtime.schema_migrations (
    version bigint not null,
    inserted_at timestamp(0) without time zone null,
    constraint schema_migrations_pkey primary key (version)
);
create table realtime.subscription (
    id bigint generated always as identity,
    subscription_id uuid not null,
    entity regclass not null,
    claims jsonb not null,
    created_at timestamp without time zone not null default timezone('utc'::text, now()),
    constraint pk_subscription primary key (id)
);
alter table realtime.schema_migrations owner to supabase_realtime_admin;
alter table realtime.subscription owner to supabase_realtime_admin;
insert into realtime.schema_migrations (version, inserted_at) values
  (20211116024918, '2024-01-15 09:00:00'), (20211116045059, '2024-01-15 09:00:00'),
  (20231204144024, '2024-01-15 09:00:00');

create schema graphql_public authorization supabase_admin;
grant usage on schema graphql_public to postgres, anon, authenticated, service_role;

create schema supabase_migrations authorization postgres;
create table supabase_migrations.schema_migrations (
    version text not null,
    statements text[] null,
    name text null,
    constraint schema_migrations_pkey primary key (version)
);
alter table supabase_migrations.schema_migrations owner to postgres;

create publication supabase_realtime;
alter publication supabase_realtime owner to postgres;

create function extensions.pgrst_ddl_watch() returns event_trigger language plpgsql as $$
declare
  cmd record;
begin
  for cmd in select * from pg_event_trigger_ddl_commands()
  loop
    if cmd.command_tag in (
        'CREATE SCHEMA', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO',
        'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE VIEW',
        'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
        'CREATE FUNCTION', 'ALTER FUNCTION', 'CREATE TRIGGER', 'CREATE TYPE', 'ALTER TYPE',
        'CREATE RULE', 'COMMENT')
       and cmd.schema_name is distinct from 'pg_temp'
    then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end
$$;

create function extensions.pgrst_drop_watch() returns event_trigger language plpgsql as $$
declare
  obj record;
begin
  for obj in select * from pg_event_trigger_dropped_objects()
  loop
    if obj.object_type in ('schema', 'table', 'foreign table', 'view', 'materialized view',
                           'function', 'trigger', 'type', 'rule')
       and obj.is_temporary is false
    then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end
$$;

create event trigger pgrst_ddl_watch on ddl_command_end execute procedure extensions.pgrst_ddl_watch();
create event trigger pgrst_drop_watch on sql_drop execute procedure extensions.pgrst_drop_watch();
