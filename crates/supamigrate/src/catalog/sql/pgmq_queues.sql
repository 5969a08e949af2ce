-- pgmq queues, from the catalog (pgmq keeps queue q in table pgmq.q_q; the
-- catalog is readable without privileges on pgmq).
select substr(c.relname, 3)::text
from pg_class c
where c.relnamespace = to_regnamespace('pgmq')
  and c.relname like 'q\_%'
  and c.relkind in ('r', 'p')
order by 1
