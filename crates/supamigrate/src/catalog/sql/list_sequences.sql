-- Sequences in the given schemas, including those behind identity and serial
-- columns. $1: text[] of schema names.
select n.nspname::text, c.relname::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'S'
  and n.nspname = any($1::text[])
order by 1, 2
