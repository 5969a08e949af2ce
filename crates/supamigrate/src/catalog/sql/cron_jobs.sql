-- pg_cron jobs (cron.job; the project's postgres role may read it). No rows
-- without pg_cron. The command may hold secrets: it is redacted before it is
-- shown or stored.
select jobid::bigint,
       coalesce(jobname, '')::text,
       schedule::text,
       command::text,
       database::text,
       username::text,
       active
from cron.job
order by jobid
