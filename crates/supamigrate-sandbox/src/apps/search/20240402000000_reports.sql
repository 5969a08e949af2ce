-- search, reports: tables partitioned by month with a foreign key from one
-- partitioned table to another (valid only once every partition's index is
-- attached to its parent's), and materialized views, one reading another
-- (named to sort before it), one never populated.
create table public.events (
  id bigint generated always as identity,
  at timestamptz not null,
  kind text not null,
  primary key (id, at)
) partition by range (at);
create table public.events_2024_01 partition of public.events for values from ('2024-01-01') to ('2024-02-01');
create table public.events_2024_02 partition of public.events for values from ('2024-02-01') to ('2024-03-01');
create index events_kind on public.events (kind);

create table public.event_notes (
  id bigint generated always as identity,
  event_id bigint not null,
  event_at timestamptz not null,
  note text,
  primary key (id, event_at),
  foreign key (event_id, event_at) references public.events (id, at)
) partition by range (event_at);
create table public.event_notes_2024_01 partition of public.event_notes for values from ('2024-01-01') to ('2024-02-01');
create table public.event_notes_2024_02 partition of public.event_notes for values from ('2024-02-01') to ('2024-03-01');

create materialized view public.tag_usage as
  select t.name, count(a.id) as articles
  from public.tags t left join public.articles a on a.title ilike '%' || t.name || '%'
  group by t.name;
create unique index tag_usage_name on public.tag_usage (name);
create materialized view public.a_used_tags as
  select name, articles from public.tag_usage where articles > 0;
create materialized view public.unused_report as select 1 as x with no data;
