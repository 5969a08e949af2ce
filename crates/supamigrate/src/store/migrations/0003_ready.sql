-- Version 3: what made each copied table ready for traffic (ANALYZE,
-- VACUUM (FREEZE, ANALYZE)), so a resumed copy does not do it again.

create table supamigrate.ready_done (
    target_schema text not null,
    target_table text not null,
    action text not null,
    seconds double precision not null,
    done_at timestamptz not null default now(),
    primary key (target_schema, target_table)
);
