-- Version 5: the cutover's fast verify. The keys of the rows the follow
-- changed, per target table, written in the same transactions as the
-- changes: the cutover compares those rows on both sides (its cost grows
-- with what changed since the copy, not with the database). Tables without
-- a key (replica identity full) and truncated ones are counted instead.

alter table supamigrate.follow_tables
    add column key_columns text[],
    add column truncated boolean not null default false;

create table supamigrate.follow_keys (
    target_schema text not null,
    target_table text not null,
    key text[] not null,
    primary key (target_schema, target_table, key)
);
