-- Every column of the tables (and partitioned parents) in the given schemas,
-- with its position in the primary key (null when not part of it) and its
-- type, and whether the type is built in (its binary form is the same on any
-- server of one major version), in physical order. $1: text[] of schema names.
select n.nspname::text,
       c.relname::text,
       c.relkind::text,
       greatest(c.reltuples, -1)::bigint,
       a.attname::text,
       array_position(i.indkey::int2[], a.attnum) as key_position,
       format_type(a.atttypid, a.atttypmod),
       a.atttypid < 16384 as builtin
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where c.relkind in ('r', 'p')
  and not c.relispartition
  and n.nspname = any($1::text[])
  -- An extension's own tables are the extension's, not the application's:
  -- the copy leaves them out too. Its configuration tables' rows that the
  -- project added are compared apart (`verify::config`): the rest comes
  -- from each side's version of the extension.
  and not exists (select 1 from pg_depend d
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.refclassid = 'pg_extension'::regclass and d.deptype = 'e')
order by 1, 2, a.attnum
