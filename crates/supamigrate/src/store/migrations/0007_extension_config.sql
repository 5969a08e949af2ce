-- Version 7: kept extensions' configuration tables and sequences whose
-- project-added rows (or value) the copy carried, each marked in the same
-- target transaction that carried it, so a re-run does not carry it twice.

create table supamigrate.extension_config (
    relation text primary key,
    rows_copied bigint not null,
    rows_present bigint not null,
    copied_at timestamptz not null default now()
);
