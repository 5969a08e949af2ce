insert into public.articles (title, body, embedding)
select 'Article ' || i || ' about ' || (array['Postgres', 'RDS', 'S3', 'Vectors'])[1 + i % 4],
       repeat('text ', i),
       ('[' || (i % 7) || ',' || (i % 5) || ',' || (i % 3) || ']')::extensions.vector
from generate_series(1, 60) i;
insert into public.tags (name) values ('postgres'), ('aws'), ('search');
