-- Supabase Storage buckets, their settings, and the objects storage.objects
-- lists in each (count and bytes by the objects' metadata). Buckets that only
-- objects name (no storage.buckets row) are listed too.
with counts as (
    select o.bucket_id::text as id,
           count(*)::bigint as objects,
           coalesce(sum((o.metadata->>'size')::bigint), 0)::bigint as bytes
    from storage.objects o
    group by 1
)
select coalesce(b.id::text, c.id),
       coalesce(b.name::text, c.id),
       coalesce(b.public, false),
       b.file_size_limit::bigint,
       coalesce(b.allowed_mime_types, '{}')::text[],
       coalesce(c.objects, 0),
       coalesce(c.bytes, 0)
from storage.buckets b
full join counts c on c.id = b.id::text
order by 1
