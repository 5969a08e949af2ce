-- Event triggers (database-wide DDL hooks).
select evtname::text from pg_event_trigger order by 1
