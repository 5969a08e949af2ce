insert into public.articles (title, body, embedding)
select 'Article ' || i || ' about ' || (array['Postgres', 'RDS', 'S3', 'Vectors'])[1 + i % 4],
       repeat('text ', i),
       ('[' || (i % 7) || ',' || (i % 5) || ',' || (i % 3) || ']')::extensions.vector
from generate_series(1, 60) i;
insert into public.tags (name) values ('postgres'), ('aws'), ('search');
insert into public.events (at, kind)
select timestamptz '2024-01-01 00:00+00' + i * interval '12 hours', 'k' || (i % 3)
from generate_series(1, 100) i;
insert into public.event_notes (event_id, event_at, note)
select id, at, 'note ' || id from public.events where id % 2 = 0;
refresh materialized view public.tag_usage;
refresh materialized view public.a_used_tags;
