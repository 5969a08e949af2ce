-- A schema section too large for one transaction (more locks than the
-- target's lock table holds) is applied in parts, each in its own
-- transaction with this row: how many of its statements are applied, and
-- the SHA-256 of those statements. A re-run goes on after them.
create table supamigrate.schema_progress (
    section text primary key,
    through integer not null,
    sha256 text not null,
    updated_at timestamptz not null default now()
);

-- The Storage step rewrote the plan's reference columns (once is enough:
-- verify then compares them as rewritten).
create table supamigrate.storage_rewrite (
    singleton boolean primary key default true check (singleton),
    rows bigint not null,
    rewritten_at timestamptz not null default now()
);
