-- Documents reference the objects (written before this file) in every form.
-- __REF__ is the project ref; __SIGNED__ a signed URL's token.
insert into public.documents (owner, object_id, file_path, public_url, preview_url, share_url, note)
select o.owner,
       o.id,
       case when o.bucket_id = 'documents' then o.name end,
       case when o.bucket_id = 'avatars' then 'https://__REF__.supabase.co/storage/v1/object/public/avatars/' || o.name end,
       case when o.bucket_id = 'documents' then 'https://__REF__.supabase.co/storage/v1/render/image/authenticated/documents/' || o.name || '?width=200' end,
       case when o.bucket_id = 'documents' then 'https://__REF__.supabase.co/storage/v1/object/sign/documents/' || o.name || '?token=__SIGNED__' end,
       case when o.name like '%2%' then '' end
from storage.objects o
order by o.name;

insert into media.images (document_id, path, width, height)
select d.id, o.name, 64, 64
from public.documents d join storage.objects o on o.id = d.object_id
where o.bucket_id = 'avatars';

insert into public.activity (kind, detail, attachment)
select 'view', repeat('x', 700),
       case when i % 40 = 0 then
         (select o.name from storage.objects o where o.bucket_id = 'documents'
          order by o.name offset (i / 40) % (select count(*) from storage.objects where bucket_id = 'documents') limit 1)
       end
from generate_series(1, 12000) i;
