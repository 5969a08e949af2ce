-- An RDS for PostgreSQL server as its master user sees it (rds-s3.md §1.1–1.3).
-- Run as the bootstrap superuser `rdsadmin`, which plays RDS's hidden admin. The
-- master login role itself (`postgres`, with a password) is created by the sandbox
-- code just before this file: LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE
-- NOREPLICATION, like `CreateDBInstance` creates it.

create role rds_superuser nologin;
create role rds_replication nologin;
create role rds_password nologin;
create role rds_iam nologin;

-- What rds_superuser may do without being superuser.
grant pg_monitor, pg_signal_backend, pg_read_all_settings, pg_read_all_stats,
      pg_stat_scan_tables, pg_checkpoint to rds_superuser with admin option;
grant set on parameter session_replication_role to rds_superuser;

grant rds_superuser to postgres with admin option;
grant rds_replication, rds_password, rds_iam to postgres with admin option;

-- On RDS the master user owns the default database.
alter database postgres owner to postgres;
