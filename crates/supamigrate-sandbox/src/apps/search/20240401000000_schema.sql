-- search: extensions the data needs, in Supabase's extensions schema:
-- vector columns with an HNSW index, a pg_trgm index, moddatetime
-- triggers, a stored generated column computed by the application's own
-- function.
create extension if not exists vector with schema extensions;
create extension if not exists moddatetime with schema extensions;
create extension if not exists pg_trgm with schema extensions;

create function public.slugify(t text) returns text
language sql immutable
as $$ select lower(regexp_replace(t, '[^a-zA-Z0-9]+', '-', 'g')) $$;

create table public.articles (
  id bigint generated always as identity primary key,
  title text not null,
  slug text generated always as (public.slugify(title)) stored,
  body text,
  embedding extensions.vector(3),
  updated_at timestamptz not null default now()
);

create index articles_embedding_idx on public.articles using hnsw (embedding extensions.vector_cosine_ops);
create index articles_title_trgm on public.articles using gin (title extensions.gin_trgm_ops);

create trigger handle_updated_at before update on public.articles
  for each row execute procedure extensions.moddatetime (updated_at);

create table public.tags (
  id bigint generated always as identity primary key,
  name text not null unique,
  updated_at timestamptz not null default now()
);

create trigger tags_updated_at before update on public.tags
  for each row execute procedure extensions.moddatetime (updated_at);

create function public.match_articles(q extensions.vector, n int) returns setof public.articles
language sql stable
as $$ select * from public.articles order by extensions.cosine_distance(embedding, q) limit n $$;
