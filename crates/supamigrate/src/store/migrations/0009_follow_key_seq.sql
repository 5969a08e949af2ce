-- Version 9: the follow compares the rows it changed while it runs, and
-- forgets those found equal on both sides, so the cutover compares only
-- the rest. Each recorded key carries the number of its last recording
-- (taken again whenever the follow changes the row again): a key is
-- forgotten only if its number is still the one seen when it was compared.

create sequence supamigrate.follow_key_seq;

alter table supamigrate.follow_keys
    add column seq bigint not null default nextval('supamigrate.follow_key_seq');

alter table supamigrate.follow
    add column compared_while_following bigint not null default 0;
