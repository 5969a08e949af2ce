-- A digest of the definitions in the given schemas, for telling whether the
-- source's schema changed since a plan was made. Definitions only (tables,
-- columns with their types, defaults and nullability, constraints, indexes,
-- views, functions, triggers, policies, types, sequences), never sizes or
-- statistics; plus auth.users' columns and triggers and the installed
-- extensions, which the plan also depends on. $1: text[] of schema names.
with defs as (
    select 'rel ' || n.nspname::text || '.' || c.relname::text || ' ' || c.relkind::text || ' ' || c.relrowsecurity::text as d
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
    union all
    select 'col ' || n.nspname::text || '.' || c.relname::text || '.' || a.attname::text || ' '
           || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' ' || a.attgenerated::text
           || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    where (n.nspname::text = any($1::text[]) or (n.nspname::text = 'auth' and c.relname::text = 'users'))
      and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
    union all
    select 'con ' || n.nspname::text || '.' || c.relname::text || '.' || k.conname::text || ' ' || pg_get_constraintdef(k.oid)
    from pg_constraint k
    join pg_class c on c.oid = k.conrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'idx ' || pg_get_indexdef(i.indexrelid)
    from pg_index i
    join pg_class c on c.oid = i.indrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'view ' || n.nspname::text || '.' || c.relname::text || ' ' || pg_get_viewdef(c.oid)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname::text = any($1::text[]) and c.relkind in ('v', 'm')
    union all
    select 'fn ' || n.nspname::text || '.' || p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ') '
           || md5(coalesce(p.prosrc, '')) || ' ' || p.prosecdef::text || ' ' || coalesce(array_to_string(p.proconfig, ','), '')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname::text = any($1::text[])
    union all
    select 'trg ' || pg_get_triggerdef(t.oid)
    from pg_trigger t
    join pg_class c on c.oid = t.tgrelid
    join pg_namespace n on n.oid = c.relnamespace
    where not t.tgisinternal
      and (n.nspname::text = any($1::text[]) or (n.nspname::text = 'auth' and c.relname::text = 'users'))
    union all
    select 'pol ' || p.schemaname::text || '.' || p.tablename::text || '.' || p.policyname::text || ' ' || p.cmd
           || ' ' || coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '') || ' ' || array_to_string(p.roles, ',')
    from pg_policies p
    where p.schemaname::text = any($1::text[])
    union all
    select 'type ' || n.nspname::text || '.' || t.typname::text || ' ' || t.typtype::text || ' '
           || coalesce((select string_agg(e.enumlabel::text, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid), '')
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname::text = any($1::text[]) and t.typtype in ('e', 'd', 'c')
      and not exists (select 1 from pg_class c where c.reltype = t.oid and c.relkind <> 'c')
    union all
    select 'ext ' || e.extname::text || ' ' || n.nspname::text
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
)
select md5(coalesce(string_agg(d, E'\n' order by d), ''))
from defs
