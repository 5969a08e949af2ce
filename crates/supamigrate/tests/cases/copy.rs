//! The data copy against real clusters, checked by digests this test computes
//! itself (not by supamigrate's verify code).

use supamigrate::apply::Applied;
use supamigrate::connect::{connect, ConnInfo};
use supamigrate::copy;
use supamigrate::pg::TableName;
use supamigrate::plan::copy::SplitOptions;
use supamigrate::plan::users::USER_COLUMNS;
use supamigrate::plan::{MigrationPlan, PlanOverrides};
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{context, provision_and_pre_data};

/// Row count and an order-independent digest of `select {cols} from {from}`.
async fn digest(c: &Client, cols: &str, from: &str) -> (i64, String) {
    c.batch_execute("set timezone = 'UTC'; set datestyle = 'ISO'; set extra_float_digits = 3")
        .await
        .unwrap();
    let sql = format!(
        "select count(*), md5(coalesce(string_agg(r, E'\\n' order by r), '')) from (select ({cols})::text as r from {from} x) s"
    );
    let row = c
        .query_one(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    (row.get(0), row.get(1))
}

async fn tables(c: &Client, schema: &str) -> Vec<String> {
    c.query(
        "select quote_ident(n.nspname) || '.' || quote_ident(c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition order by 1",
        &[&schema],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// provision + pre-data + copy + post-data, as the target's master.
async fn migrate(
    source: &ConnInfo,
    target: &ConnInfo,
    split_bytes: i64,
) -> (copy::CopySummary, MigrationPlan) {
    migrate_with(source, target, split_bytes, false).await
}

async fn migrate_with(
    source: &ConnInfo,
    target: &ConnInfo,
    split_bytes: i64,
    plain_source: bool,
) -> (copy::CopySummary, MigrationPlan) {
    let state = tempfile::tempdir().unwrap();
    let overrides = PlanOverrides {
        app_role: Some("tms_app".into()),
        split: Some(SplitOptions {
            split_bytes,
            max_parts: 4,
        }),
        ..PlanOverrides::default()
    };
    let mut ctx = context(source.clone(), target.clone(), overrides, state.path());
    ctx.settings.plain_source = plain_source;
    let plan = provision_and_pre_data(&ctx).await;
    let summary = supamigrate::ops::copy(&ctx, supamigrate::copy::CopyOptions::new(3, true))
        .await
        .unwrap();
    assert!(
        summary.post_data_built.unwrap() > 0,
        "post-data built with the copy"
    );
    assert_eq!(
        copy::post_data::build(&crate::common::migration(&ctx, plan.clone()), 3)
            .await
            .unwrap(),
        Applied::Earlier
    );
    (summary, plan)
}

#[tokio::test]
async fn scale_10_copy_is_exact() {
    let sb = Sandbox::ephemeral(10).await.expect("sandbox starts");
    // An extended statistics object of the application's, carried over and filled.
    connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute(
            "create statistics public.shipments_status_customer (dependencies, ndistinct) \
             on status, customer_id from public.shipments",
        )
        .await
        .unwrap();
    let (summary, _) = migrate(&sb.source_url(), &sb.target_url(), 1024 * 1024).await;
    assert!(
        summary.tasks_now > 28,
        "large tables were split: {} tasks",
        summary.tasks_now
    );
    assert!(summary
        .password_hashes
        .iter()
        .any(|h| h.format.starts_with("bcrypt")));

    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let source_tables = tables(&src, "public").await;
    assert_eq!(source_tables.len(), 27);
    for t in &source_tables {
        let a = digest(&src, "x.*", t).await;
        let b = digest(&tgt, "x.*", t).await;
        assert!(a.0 > 0, "{t} has rows");
        assert_eq!(a, b, "{t}: source and target differ");
    }
    let src_cols: Vec<String> = USER_COLUMNS
        .iter()
        .map(|(s, _, _)| format!("x.{s}"))
        .collect();
    let dst_cols: Vec<String> = USER_COLUMNS
        .iter()
        .map(|(_, d, _)| format!("x.{d}"))
        .collect();
    assert_eq!(
        digest(&src, &format!("row({})", src_cols.join(", ")), "auth.users").await,
        digest(
            &tgt,
            &format!("row({})", dst_cols.join(", ")),
            "public.app_users"
        )
        .await,
        "auth.users = app_users on the mapped columns"
    );
    // Post-data is there and valid: keys, every FK validated, the user trigger.
    let fks: i64 = tgt
        .query_one("select count(*) from pg_constraint where contype = 'f' and convalidated and connamespace = 'public'::regnamespace", &[])
        .await
        .unwrap()
        .get(0);
    assert!(fks >= 40, "{fks} validated foreign keys");
    let trigger: i64 = tgt
        .query_one("select count(*) from pg_trigger where tgname = 'on_auth_user_created' and tgrelid = 'public.app_users'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(trigger, 1);
    ready_for_traffic(&tgt, &summary).await;
}

/// Every table the copy wrote has planner statistics (reltuples within 10%
/// of its rows, a `pg_stats` row per column); those copied whole went in
/// with COPY FREEZE (every page all-visible), those split were analyzed;
/// the extended statistics object is filled.
async fn ready_for_traffic(tgt: &Client, summary: &copy::CopySummary) {
    let mut actions = std::collections::BTreeSet::new();
    for t in &summary.tables {
        let action = t
            .ready
            .clone()
            .unwrap_or_else(|| panic!("{}: not made ready", t.table));
        actions.insert(action);
        let (schema, name) = t.table.split_once('.').unwrap();
        let r = tgt
            .query_one(
                "select c.reltuples::float8, c.relpages::int8, c.relallvisible::int8, \
                        (select count(*) from pg_stats s where s.schemaname = $1 and s.tablename = $2), \
                        (select count(*) from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), \
                        age(c.relfrozenxid) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2",
                &[&schema, &name],
            )
            .await
            .unwrap();
        let (reltuples, pages, visible, with_stats, columns): (f64, i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let rows = t.rows as f64;
        assert!(
            (reltuples - rows).abs() <= 0.1 * rows.max(1.0),
            "{}: reltuples {reltuples} for {rows} rows",
            t.table
        );
        if t.rows > 0 {
            assert_eq!(
                with_stats, columns,
                "{}: every column has statistics",
                t.table
            );
        }
        if t.ready.as_deref() == Some("freeze-analyze") {
            assert_eq!(visible, pages, "{}: every page all-visible", t.table);
        }
    }
    assert!(
        actions.contains("freeze-analyze") && actions.contains("analyze"),
        "{actions:?}"
    );
    let filled: bool = tgt
        .query_one(
            // (dependencies stay NULL where the columns are independent.)
            "select d.stxdndistinct is not null \
             from pg_statistic_ext s join pg_statistic_ext_data d on d.stxoid = s.oid \
             where s.stxname = 'shipments_status_customer'",
            &[],
        )
        .await
        .expect("the extended statistics object is on the target")
        .get(0);
    assert!(filled, "the extended statistics were analyzed");
}

/// Every common built-in type, generated and identity columns, a table
/// without primary key, a partitioned table, awkward identifiers.
const TYPES_SCHEMA: &str = r#"
create type public.mood as enum ('sad', 'ok', 'happy');
create domain public.positive as integer check (value > 0);
create type public.pair as (a integer, b text);
create table public."Every Type ✓" (
    "Id" bigint generated always as identity primary key,
    "select" text,
    "Mixed Case" varchar(20),
    small smallint, big bigint, num numeric, num_p numeric(12, 4), r real, d double precision,
    b boolean, ch char(3), by bytea, u uuid, dt date, t time, ttz timetz, ts timestamp, tstz timestamptz,
    iv interval, js json, jb jsonb, ia int[], ta text[], ir int4range, tr tstzrange, nr numrange,
    ip inet, net cidr, mac macaddr, mo money, bt bit(8), vb varbit, tv tsvector, pt point, x xml,
    m public.mood, ma public.mood[], pos public.positive, p public.pair,
    doubled bigint generated always as (big * 2) stored
);
create table public.no_key (a int, b text);
create table public.events (id serial, at date not null, what text) partition by range (at);
create table public.events_2024 partition of public.events for values from ('2024-01-01') to ('2025-01-01');
create table public.events_2025 partition of public.events for values from ('2025-01-01') to ('2026-01-01');
insert into public."Every Type ✓" ("select", "Mixed Case", small, big, num, num_p, r, d, b, ch, by, u, dt, t, ttz, ts, tstz,
    iv, js, jb, ia, ta, ir, tr, nr, ip, net, mac, mo, bt, vb, tv, pt, x, m, ma, pos, p)
values
  ('tab	and
newline \ backslash', 'Ünïcödé ✓', -32768, 4611686018427387903, 'NaN', 12345678.1234, '-Infinity', 1e-300, true, 'ab',
   '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'infinity', '24:00:00', '12:00:00+05:30', '-infinity', 'infinity',
   '1 year 2 mons -3 days 04:05:06.789', '{"b": 1, "a": [1, 2.50, null]}', '{"z": {"y": "ü"}, "a": 1}', '{1,NULL,3}', '{"a b","c,d",NULL,""}',
   '[1,10)', '[2024-01-01 00:00+00,infinity)', 'empty', '::1', '10.0.0.0/8', '08:00:2b:01:02:03', '-12.34', B'10101010', B'1',
   'a fat cat', '(1.5,-2)', '<a>x</a>', 'happy', '{sad,happy}', 7, row(1, 'x,y')),
  (null, '', 0, 0, 0.000000000000000001, -0.5, 'NaN', 'Infinity', false, null, '\x', null, '2000-02-29', '00:00', null, '2024-02-29 23:59:59.999999',
   '1970-01-01 00:00:00.000001+00', '-178000000 years', 'null', '[]', '{}', '{}', '(,)', null, '(1.5,2.5]', '0.0.0.0', '::/0', null, '0', B'00000000', B'',
   '', '(0,0)', null, 'sad', '{}', 1, row(null, null));
insert into public.no_key values (1, 'dup'), (1, 'dup'), (null, null);
insert into public.events (at, what) values ('2024-06-01', 'a'), ('2025-06-01', 'b'), ('2025-07-01', 'c');
select nextval('public.events_id_seq');
"#;

#[tokio::test]
async fn every_type_and_odd_table_survives() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let pg = connect(&sb.source_url()).await.unwrap();
    pg.batch_execute(TYPES_SCHEMA).await.unwrap();
    let (_, plan) = migrate(&sb.source_url(), &sb.target_url(), 1).await;

    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    for t in [
        "public.\"Every Type ✓\"",
        "public.no_key",
        "public.events",
        "public.events_2025",
    ] {
        let a = digest(&src, "x.*", t).await;
        assert!(a.0 > 0, "{t}");
        assert_eq!(a, digest(&tgt, "x.*", t).await, "{t}");
    }
    // Sequences: the exact state, identity and serial alike.
    for seq in ["public.\"Every Type ✓_Id_seq\"", "public.events_id_seq"] {
        let q = format!("select last_value::text || ' ' || is_called::text from {seq}");
        let a: String = src.query_one(&q, &[]).await.unwrap().get(0);
        let b: String = tgt.query_one(&q, &[]).await.unwrap().get(0);
        assert_eq!(a, b, "{seq}");
    }
    // Binary COPY where every column's binary form is server-independent, text
    // where a composite or an array of enums would carry server-specific OIDs.
    let binary = |t: &str| plan.mapping(&TableName::new("public", t)).unwrap().binary;
    assert!(!binary("Every Type ✓"), "a composite column goes as text");
    assert!(binary("no_key"), "built-in types go binary");
    // The identity column keeps generating after the copy.
    tgt.batch_execute("insert into public.\"Every Type ✓\" (\"select\") values ('new')")
        .await
        .unwrap();
}

#[tokio::test]
async fn plain_postgres_source_skips_the_users_step() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    // A plain database (no auth, no storage) on the target server is the source.
    let master = connect(&sb.target_url().with_dbname("postgres"))
        .await
        .unwrap();
    master
        .batch_execute("create database plain_src")
        .await
        .unwrap();
    let source = sb.target_url().with_dbname("plain_src");
    connect(&source)
        .await
        .unwrap()
        .batch_execute(
            "create table public.orders (id bigserial primary key, total numeric(10,2), placed timestamptz default now()); \
             insert into public.orders (total) select g / 7.0 from generate_series(1, 5000) g;",
        )
        .await
        .unwrap();
    let target = sb.target_url().with_dbname("plain_dst");
    // Without --plain-source, such a source is refused (URLs swapped?).
    let state = tempfile::tempdir().unwrap();
    let refused = supamigrate::ops::plan(&context(
        source.clone(),
        target.clone(),
        PlanOverrides::default(),
        state.path(),
    ))
    .await
    .expect_err("a source without auth.users is refused");
    assert!(refused.is_bad_input(), "{refused}");
    assert!(
        refused
            .message()
            .contains("does not look like a Supabase project"),
        "{refused}"
    );
    let (summary, _) = migrate_with(&source, &target, 1024 * 1024, true).await;
    assert!(summary.password_hashes.is_empty(), "no users step");
    assert_eq!(summary.sequences, 1);
    let (a, b) = (
        connect(&source).await.unwrap(),
        connect(&target).await.unwrap(),
    );
    assert_eq!(
        digest(&a, "x.*", "public.orders").await,
        digest(&b, "x.*", "public.orders").await
    );
    let next: i64 = b
        .query_one("select nextval('public.orders_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 5001, "the sequence continues where the source's was");
}
