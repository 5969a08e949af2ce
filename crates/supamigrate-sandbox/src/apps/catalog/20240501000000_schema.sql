-- catalog: extensions created in public (vector, citext), as projects that
-- enabled them from SQL rather than the dashboard have them.
create extension if not exists vector with schema public;
create extension if not exists citext with schema public;

create table public.products (
  id bigint generated always as identity primary key,
  sku citext not null unique,
  name text not null,
  embedding vector(3)
);

create index products_embedding_idx on public.products using hnsw (embedding vector_l2_ops);

create function public.similar_products(p bigint, n int) returns setof public.products
language sql stable
as $$
  select q.* from public.products q, public.products x
  where x.id = p and q.id <> p
  order by l2_distance(q.embedding, x.embedding) limit n
$$;

-- Case-insensitive handles through a nondeterministic ICU collation (which
-- LIKE refuses: whoever samples the column must not use it as it is).
create collation public.case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
create table public.brands (
  id bigint generated always as identity primary key,
  handle text collate public.case_insensitive not null unique
);

-- The project's own role (a reporting tool reads through it), a range
-- type (its constructor functions come with it) and publications an
-- external subscriber reads (one with a column list and a row filter).
create role catalog_reporting nologin;
alter role catalog_reporting set statement_timeout = '5s';
grant usage on schema public to catalog_reporting;
grant select on public.products to catalog_reporting;
create type public.price_band as range (subtype = numeric);
create table public.price_bands (id int primary key, band public.price_band not null);
create publication catalog_feed for table public.products with (publish = 'insert, update, delete');
create publication catalog_partial for table public.products (id, sku) where (id > 0);

-- The project's defaults for what it creates from now on: functions no
-- longer executable by everyone, tables readable by the reporting role
-- (a schema dump of some schemas leaves out the first: it is for every
-- schema).
alter default privileges revoke execute on functions from public;
alter default privileges in schema public grant select on tables to catalog_reporting;
