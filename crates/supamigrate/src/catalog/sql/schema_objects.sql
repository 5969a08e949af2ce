-- The definitions schema_fingerprint.sql digests, one row per object, so a
-- drift can be named: what kind of object, its name, a short description a
-- person reads (a column's type and nullability), and a digest of the whole
-- definition. Digests only: no definition text (defaults, bodies) leaves the
-- server through here. $1: text[] of schema names.
with defs as (
    select 'relation' as kind, n.nspname::text || '.' || c.relname::text as name,
           case c.relkind when 'r' then 'table' when 'p' then 'partitioned table' when 'v' then 'view'
                          when 'm' then 'materialized view' when 'S' then 'sequence' else 'foreign table' end
             || case when c.relrowsecurity then ', row level security' else '' end as shown,
           c.relkind::text || ' ' || c.relrowsecurity::text as d
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
    union all
    select 'column', n.nspname::text || '.' || c.relname::text || '.' || a.attname::text,
           format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then ' not null' else '' end
             || case when a.attgenerated <> '' then ' generated' else '' end
             || case when ad.adbin is not null then ' with a default' else '' end,
           format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' ' || a.attgenerated::text
           || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    where (n.nspname::text = any($1::text[]) or (n.nspname::text = 'auth' and c.relname::text = 'users'))
      and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
    union all
    select 'constraint', n.nspname::text || '.' || c.relname::text || '.' || k.conname::text, '',
           pg_get_constraintdef(k.oid)
    from pg_constraint k
    join pg_class c on c.oid = k.conrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'index', n.nspname::text || '.' || ic.relname::text, '', pg_get_indexdef(i.indexrelid)
    from pg_index i
    join pg_class c on c.oid = i.indrelid
    join pg_class ic on ic.oid = i.indexrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'view definition', n.nspname::text || '.' || c.relname::text, '', pg_get_viewdef(c.oid)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[]) and c.relkind in ('v', 'm')
    union all
    select 'function', n.nspname::text || '.' || p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', '',
           md5(coalesce(p.prosrc, '')) || ' ' || p.prosecdef::text || ' ' || coalesce(array_to_string(p.proconfig, ','), '')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'trigger', n.nspname::text || '.' || c.relname::text || '.' || t.tgname::text, '', pg_get_triggerdef(t.oid)
    from pg_trigger t
    join pg_class c on c.oid = t.tgrelid
    join pg_namespace n on n.oid = c.relnamespace
    where not t.tgisinternal
      and (n.nspname::text = any($1::text[]) or (n.nspname::text = 'auth' and c.relname::text = 'users'))
    union all
    select 'policy', p.schemaname::text || '.' || p.tablename::text || '.' || p.policyname::text, p.cmd,
           p.cmd || ' ' || coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '') || ' ' || array_to_string(p.roles, ',')
    from pg_policies p
    where p.schemaname::text = any($1::text[])
    union all
    select 'type', n.nspname::text || '.' || t.typname::text,
           case t.typtype when 'e' then 'enum' when 'd' then 'domain' else 'composite type' end,
           t.typtype::text || ' '
           || coalesce((select string_agg(e.enumlabel::text, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid), '')
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname::text = any($1::text[]) and t.typtype in ('e', 'd', 'c')
      and not exists (select 1 from pg_class c where c.reltype = t.oid and c.relkind <> 'c')
    union all
    select 'extension', e.extname::text, 'in schema ' || n.nspname::text, n.nspname::text
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
)
select kind || ' ' || name, shown, md5(d) from defs order by 1
