-- files: an app built on Supabase Storage: buckets, documents that point at
-- objects (a foreign key to storage.objects(id), and references in every
-- form: bare path, public, authenticated-render and signed URLs, '' and
-- NULL), an app schema besides public, a view over storage.objects, a
-- function reading it, a trigger on it, Storage policies.
create schema media;

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('avatars', 'avatars', true, 1048576, array['image/png', 'image/jpeg']),
       ('documents', 'documents', false, null, null);

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  owner uuid references auth.users (id) on delete set null,
  object_id uuid references storage.objects (id) on delete set null,
  file_path text,
  public_url text,
  preview_url text,
  share_url text,
  note text
);

create table media.images (
  id bigint generated always as identity primary key,
  document_id uuid references public.documents (id) on delete cascade,
  path text not null,
  width int,
  height int
);

create table public.upload_log (
  id bigint generated always as identity primary key,
  object_id uuid,
  bucket_id text,
  name text,
  at timestamptz not null default now()
);

-- A larger table (about 1,200 pages) whose text column is empty in most
-- rows and holds a document's key in every 40th: reference discovery
-- samples its pages instead of reading it to its end.
create table public.activity (
  id bigint generated always as identity primary key,
  kind text not null,
  detail text not null,
  attachment text
);

create view public.my_files as
  select o.id, o.bucket_id, o.name, (o.metadata ->> 'size')::bigint as size
  from storage.objects o
  where o.owner = auth.uid();

create function public.bucket_usage(b text) returns bigint
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum((o.metadata ->> 'size')::bigint), 0)::bigint
  from storage.objects o where o.bucket_id = b
$$;

create function public.track_upload() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.upload_log (object_id, bucket_id, name) values (new.id, new.bucket_id, new.name);
  return new;
end
$$;

create trigger on_object_uploaded
  after insert on storage.objects
  for each row execute function public.track_upload();

create policy "avatars are public" on storage.objects
  for select using (bucket_id = 'avatars');
create policy "owners manage their documents" on storage.objects
  for all to authenticated
  using (bucket_id = 'documents' and owner = auth.uid())
  with check (bucket_id = 'documents' and (storage.foldername(name))[1] = auth.uid()::text);
