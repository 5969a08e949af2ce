-- Every object storage.objects lists: bucket, key, and what the copy carries
-- over (size, Content-Type, Cache-Control, user metadata).
select o.bucket_id::text,
       o.name::text,
       (o.metadata->>'size')::bigint,
       o.metadata->>'mimetype',
       o.metadata->>'cacheControl',
       nullif(to_jsonb(o)->'user_metadata', 'null'::jsonb)::text
from storage.objects o
order by 1, 2
