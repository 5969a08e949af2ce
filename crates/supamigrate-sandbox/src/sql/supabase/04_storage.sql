-- The `storage` schema as supabase/storage's migrations leave it
-- (supabase-internals.md §3.1): buckets, objects (generated path_tokens), the
-- statement-level delete guard, the helper functions policies use, migrations.
-- Owned by supabase_storage_admin; `postgres` gets every privilege with grant option.

create schema storage authorization supabase_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;
grant all on schema storage to supabase_storage_admin, dashboard_user;

create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');

create table storage.buckets (
    id text not null,
    name text not null,
    owner uuid null,
    created_at timestamptz null default now(),
    updated_at timestamptz null default now(),
    public boolean null default false,
    avif_autodetection boolean null default false,
    file_size_limit bigint null,
    allowed_mime_types text[] null,
    owner_id text null,
    type storage.buckettype not null default 'STANDARD'::storage.buckettype,
    constraint buckets_pkey primary key (id)
);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';
create unique index bname on storage.buckets using btree (name);

create table storage.objects (
    id uuid not null default gen_random_uuid(),
    bucket_id text null,
    name text null,
    owner uuid null,
    created_at timestamptz null default now(),
    updated_at timestamptz null default now(),
    last_accessed_at timestamptz null default now(),
    metadata jsonb null,
    path_tokens text[] generated always as (string_to_array(name, '/'::text)) stored,
    version text null,
    owner_id text null,
    user_metadata jsonb null,
    constraint objects_pkey primary key (id),
    constraint "objects_bucketId_fkey" foreign key (bucket_id) references storage.buckets (id)
);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
create unique index bucketid_objname on storage.objects using btree (bucket_id, name);
create index name_prefix_search on storage.objects using btree (name text_pattern_ops);

create table storage.migrations (
    id integer not null,
    name varchar(100) not null,
    hash varchar(40) not null,
    executed_at timestamp null default current_timestamp,
    constraint migrations_pkey primary key (id),
    constraint migrations_name_key unique (name)
);

create function storage.foldername(name text) returns text[] language plpgsql immutable as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1 : array_length(_parts, 1) - 1];
end
$$;

create function storage.filename(name text) returns text language plpgsql immutable as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$$;

create function storage.extension(name text) returns text language plpgsql immutable as $$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$$;

create function storage.update_updated_at_column() returns trigger language plpgsql as $$
begin
  new.updated_at = now();
  return new;
end
$$;

create function storage.protect_delete() returns trigger language plpgsql as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end
$$;

create function storage.enforce_bucket_name_length() returns trigger language plpgsql as $$
begin
  if length(new.name) > 100 then
    raise exception 'bucket name "%" is too long (% characters). Max is 100.', new.name, length(new.name);
  end if;
  return new;
end
$$;

create trigger update_objects_updated_at before update on storage.objects
  for each row execute function storage.update_updated_at_column();
create trigger protect_objects_delete before delete on storage.objects
  for each statement execute function storage.protect_delete();
create trigger protect_buckets_delete before delete on storage.buckets
  for each statement execute function storage.protect_delete();
create trigger enforce_bucket_name_length_trigger before insert or update of name on storage.buckets
  for each row execute function storage.enforce_bucket_name_length();

alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
alter table storage.migrations owner to supabase_storage_admin;
alter type storage.buckettype owner to supabase_storage_admin;
alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
alter function storage.update_updated_at_column() owner to supabase_storage_admin;
alter function storage.protect_delete() owner to supabase_storage_admin;
alter function storage.enforce_bucket_name_length() owner to supabase_storage_admin;
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.migrations enable row level security;

grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant all on all tables in schema storage to postgres with grant option;
grant all on all tables in schema storage to dashboard_user;

insert into storage.migrations (id, name, hash, executed_at) values
  (0, 'create-migrations-table', 'e18db593bcde2aca2a408c4d1100f6abba2195df', '2024-01-15 09:00:00'),
  (1, 'initialmigration', '6ab16121fbaa08bbd11b712d05f358f9b555d777', '2024-01-15 09:00:00'),
  (2, 'storage-schema', '5c7968fd083fcea04050c1b7f6253c9771b99011', '2024-01-15 09:00:00'),
  (3, 'pathtoken-column', '2cb1b0004b817b29d5b0a971af16bafeede4b70d', '2024-01-15 09:00:01'),
  (4, 'add-migrations-rls', '427c5b63fe1c5937495d9c635c263ee7a5905058', '2024-01-15 09:00:01'),
  (5, 'add-size-functions', '79e081a1455b63666c1294a440f8ad4b1e6a7f84', '2024-01-15 09:00:01');
