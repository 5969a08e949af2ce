-- supamigrate's state on the target, version 1. Every table here records
-- progress in the same transaction as the work it records.

create schema if not exists supamigrate;

-- The migrations of this store that have run.
create table supamigrate.store_migrations (
    version integer primary key,
    applied_at timestamptz not null default now()
);

-- The plan this target is being migrated by (one row).
create table supamigrate.plan (
    singleton boolean primary key default true check (singleton),
    id text not null,
    format integer not null,
    body text not null,
    stored_at timestamptz not null default now()
);

-- Applied schema sections, with the SHA-256 of their statements.
create table supamigrate.schema_sections (
    section text primary key,
    sha256 text not null,
    statements integer not null,
    applied_at timestamptz not null default now()
);

-- The copy's tasks, stored before the first row moves; a task's rows and
-- its done mark commit together.
create table supamigrate.copy_tasks (
    id text primary key,
    target_schema text not null,
    target_table text not null,
    est_bytes bigint not null,
    rows bigint,
    bytes bigint,
    seconds double precision,
    done_at timestamptz
);

-- Post-data statements built, by the SHA-256 of their text.
create table supamigrate.post_data_done (
    sha256 text primary key,
    done_at timestamptz not null default now()
);
