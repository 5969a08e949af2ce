-- RLS policies on Supabase Storage tables.
select policyname::text from pg_policies where schemaname = 'storage' order by 1
