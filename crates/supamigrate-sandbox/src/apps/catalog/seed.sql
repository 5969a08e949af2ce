insert into public.products (sku, name, embedding)
select 'SKU-' || i, 'Product ' || i, ('[' || i || ',' || (i * 2) % 9 || ',1]')::vector
from generate_series(1, 30) i;
insert into public.brands (handle) values ('Acme'), ('globex'), ('Initech');
