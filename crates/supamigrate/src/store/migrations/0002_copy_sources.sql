-- Version 2: each source table's change signature, recorded by the copy in
-- the transaction of every task it commits (snapshot drift on resume).

create table supamigrate.copy_sources (
    source_schema text not null,
    source_table text not null,
    signature text not null,
    recorded_at timestamptz not null default now(),
    primary key (source_schema, source_table)
);
