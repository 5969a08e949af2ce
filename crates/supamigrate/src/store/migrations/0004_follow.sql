-- Version 4: following the source after the copy (`copy --follow`,
-- `follow`, `cutover`). One row: the slot and publication on the source,
-- the position applied on the target (written in the same transaction as
-- the changes it covers, so a kill never applies a transaction twice), and
-- the cutover's state.

create table supamigrate.follow (
    id int primary key default 1 check (id = 1),
    slot text not null,
    publication text not null,
    -- Where the slot became consistent: the copy's snapshot.
    start_lsn pg_lsn not null,
    -- The copy made under this slot's snapshot has finished.
    copy_done boolean not null default false,
    -- End of the last source transaction applied here.
    applied_lsn pg_lsn not null,
    applied_transactions bigint not null default 0,
    applied_rows bigint not null default 0,
    -- Cutover: the roles made read-only on the source, the sentinel's
    -- token (the content of its message on the stream) and position, when writes stopped, when the follow reached the sentinel.
    read_only_roles text[] not null default '{}',
    cutover_token text,
    cutover_lsn pg_lsn,
    writes_stopped_at timestamptz,
    caught_up_at timestamptz,
    state text not null default 'copying'
        check (state in ('copying', 'following', 'cutting-over', 'cut-over', 'aborted')),
    updated_at timestamptz not null default now()
);

-- The tables the follow changed since the copy, with the rows it applied to
-- each (written in the same transactions): the cutover compares only these.
create table supamigrate.follow_tables (
    target_schema text not null,
    target_table text not null,
    rows bigint not null default 0,
    primary key (target_schema, target_table)
);
