-- Version 6: tables whose FORCE ROW LEVEL SECURITY is lifted while
-- supamigrate reads or writes their rows. FORCE subjects the table's owner
-- (our master role on the target, which owns every migrated object) to the
-- policies; the application's roles are subject to them either way. Each
-- row is put back (FORCE again) when the operation ends, or by the next one
-- after a kill.

create table supamigrate.unforced_rls (
    table_schema text not null,
    table_name text not null,
    primary key (table_schema, table_name)
);
