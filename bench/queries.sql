-- The first queries an application sends after cutover, timed by
-- bench/copy.sh on each tool's target right after it finishes (cold: no
-- query has touched the copied pages yet). The fixture's Step 5.2 checks
-- (crates/supamigrate-sandbox/src/fixture/sql/tms_checks.sql) are run too;
-- these are joins and lookups the fixture's indexes serve. One query per
-- block, blocks start with "-- query: <name>".

-- query: shipments_of_a_customer_by_status
select s.status, count(*)
from public.shipments s
where s.customer_id = (select id from public.customers order by id limit 1)
group by s.status;

-- query: latest_points_of_a_trip
select h.event_time, h.latitude, h.longitude
from public.location_history h
where h.trip_id = (select trip_id from public.location_history order by event_time desc limit 1)
order by h.event_time desc
limit 100;

-- query: open_trips_with_their_shipments
select t.id, t.status, count(s.id) as shipments
from public.trips t
join public.shipments s on s.trip_id = t.id
where t.status = (select status from public.trips group by status order by count(*) limit 1)
group by t.id, t.status
order by shipments desc, t.id
limit 50;

-- query: recent_trips_per_customer
select c.display_name, count(*) as trips
from public.trips t
join public.customers c on c.id = t.customer_id
where t.created_at > (select max(created_at) - interval '30 days' from public.trips)
group by c.display_name
order by trips desc, c.display_name
limit 20;

-- query: alerts_of_active_trips
select a.status, count(*)
from public.trip_alerts a
join public.trips t on t.id = a.trip_id
group by a.status;
