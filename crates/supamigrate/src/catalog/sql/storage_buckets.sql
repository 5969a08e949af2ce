-- Supabase Storage buckets and their settings; no rows without Storage.
select b.id::text,
       b.name::text,
       coalesce(b.public, false),
       b.file_size_limit,
       coalesce(b.allowed_mime_types, '{}')::text[]
from storage.buckets b
where to_regclass('storage.buckets') is not null
order by 1
