insert into public.products (sku, name, embedding)
select 'SKU-' || i, 'Product ' || i, ('[' || i || ',' || (i * 2) % 9 || ',1]')::vector
from generate_series(1, 30) i;
insert into public.brands (handle) values ('Acme'), ('globex'), ('Initech');
insert into public.price_bands values (1, '[0,10)'), (2, '[10,100)');
