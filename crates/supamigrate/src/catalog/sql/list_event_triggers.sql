-- Event triggers (database-wide DDL hooks): whether the function each
-- runs is in one of the application's schemas ($1: the project's own,
-- not the platform's), and the statement that makes it again.
select e.evtname::text,
       n.nspname = any($1::text[]),
       format('CREATE EVENT TRIGGER %I ON %s%s EXECUTE FUNCTION %I.%I()',
              e.evtname, e.evtevent,
              case when e.evttags is null then ''
                   else ' WHEN TAG IN (' || (select string_agg(quote_literal(t), ', ') from unnest(e.evttags) t) || ')'
              end,
              n.nspname, p.proname),
       e.evtenabled = 'D'
from pg_event_trigger e
join pg_proc p on p.oid = e.evtfoid
join pg_namespace n on n.oid = p.pronamespace
order by 1
