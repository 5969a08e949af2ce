-- The runbook's data integrity checks (Step 5.2), written for supamigrate:
-- each runs on both databases and the results must be equal. Ties are broken
-- by id so both sides list the same rows. A check whose tables are not in a
-- project is reported as skipped. Blocks start with "-- check: <name>".

-- check: trips_with_shipments
select count(distinct t.id) as trips,
       count(m.id) as shipment_mappings
from public.trips t
left join public.trip_shipment_map m on m.trip_id = t.id;

-- check: customer_location_counts
select c.id, c.display_name, count(l.id) as locations
from public.customers c
left join public.locations l on l.customer_id = c.id
group by c.id, c.display_name
order by locations desc, c.id
limit 10;

-- check: user_roles_distribution
select r.role::text, count(*) as users
from public.user_roles r
group by r.role
order by 1;

-- check: orphan_shipments
select count(*) as orphan_shipments
from public.shipments s
where s.customer_id is not null
  and not exists (select 1 from public.customers c where c.id = s.customer_id);

-- check: tracking_last_7_days
select (h.event_time at time zone 'UTC')::date as day,
       count(*) as location_points,
       count(distinct h.trip_id) as trips
from public.location_history h
group by 1
order by 1 desc
limit 7;
