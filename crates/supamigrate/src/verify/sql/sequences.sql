-- Sequences in the given schemas with the column each one feeds: the column
-- that owns it (serial, identity) or, failing that, a column whose default
-- calls nextval() on it. $1: text[] of schema names.
select n.nspname::text,
       s.relname::text,
       q.seqincrement,
       tn.nspname::text,
       t.relname::text,
       a.attname::text,
       format_type(a.atttypid, a.atttypmod)
from pg_class s
join pg_namespace n on n.oid = s.relnamespace
join pg_sequence q on q.seqrelid = s.oid
left join lateral (
    select d.refobjid as relid, d.refobjsubid as attnum
    from pg_depend d
    where d.classid = 'pg_class'::regclass and d.objid = s.oid
      and d.refclassid = 'pg_class'::regclass and d.refobjsubid > 0
      and d.deptype in ('a', 'i')
    union all
    select ad.adrelid, ad.adnum
    from pg_depend d
    join pg_attrdef ad on ad.oid = d.objid
    where d.classid = 'pg_attrdef'::regclass
      and d.refclassid = 'pg_class'::regclass and d.refobjid = s.oid
    limit 1
) o on true
left join pg_class t on t.oid = o.relid
left join pg_namespace tn on tn.oid = t.relnamespace
left join pg_attribute a on a.attrelid = o.relid and a.attnum = o.attnum
where s.relkind = 'S'
  and n.nspname = any($1::text[])
order by 1, 2
