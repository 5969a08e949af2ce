//! Whole migrations from the PostgreSQL 15 source into targets of newer
//! majors (17 and 18, npm's embedded-postgres servers that scripts/setup.sh
//! installs): rows go in text form and verify compares text forms, end to
//! end. Checked by this test's own queries: a table holding every common
//! type (and their edge values) is equal on both sides row by row, the
//! application's tables, users and Storage objects are all there, and its
//! functions behave as on the source.

use std::path::Path;

use supamigrate::connect::connect;
use supamigrate_sandbox::apps;
use supamigrate_sandbox::Sandbox;

use crate::apps::{check, notes_behave, run_cmd};
use crate::common::{output_text, run};

/// A table of every common type with edge values, made by the
/// application's owner on the source.
const EVERY_TYPE: &str = r#"
create type public.mood as enum ('sad', 'ok', 'happy ✓');
create domain public.percent as numeric(5,2) check (value between 0 and 100);
create type public.pair as (a int, b text);
create table public.every_type (
  id int primary key,
  i2 smallint, i4 integer, i8 bigint, num numeric, num_fixed numeric(12,4),
  f4 real, f8 double precision, m money, b boolean,
  t text, vc varchar(20), ch char(5), nm name, qc "char",
  by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  u uuid, j json, jb jsonb, x xml, tsv tsvector, tq tsquery,
  ip inet, net cidr, mac macaddr, mac8 macaddr8, bt bit(4), vb varbit,
  pt point, ln line, ls lseg, bx box, pa path, pg polygon, ci circle,
  i4r int4range, tsr tstzrange, nmr nummultirange, lsn pg_lsn,
  ia int[], ta text[], ia2 int[][], jba jsonb[],
  mo public.mood, moa public.mood[], pc public.percent, pr public.pair
);
insert into public.every_type values
(1, -32768, -2147483648, -9223372036854775808, 'NaN', -12345678.1234,
 '-Infinity', '-0', '-92233720368547758.08', false,
 '', '', '', '', 'a',
 '\x00ff', '4713-01-01 BC', '00:00:00', '00:00:00+14:59', '-infinity', '-infinity', '-178000000 years',
 '00000000-0000-0000-0000-000000000000', '{"b": 1,  "a": [1, 2], "b": 2}', '{"z": null, "a": {"nested": [true, false]}}', '<a x="1">text &amp; more</a>', 'a:1A fat:2B cat', 'fat & !rat',
 '::1', '10.0.0.0/8', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00', B'0000', B'',
 '(0,0)', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),1>',
 'empty', '[-infinity,infinity)', '{}', '0/0',
 '{}', '{}', '{{1,2},{3,4}}', '{}',
 'sad', '{}', 0, '(,)'),
(2, 32767, 2147483647, 9223372036854775807, '123456789012345678901234567890.123456789012345678901234567890', 99999999.9999,
 'Infinity', '1.7976931348623157e308', '92233720368547758.07', true,
 e'tab\there\nnewline \\ backslash "quote" ''single'' ✓ 日本語 😀', 'twenty chars exactly', 'ab', 'a name', 'z',
 '\xdeadbeef00', '294276-12-31', '24:00:00', '23:59:59.999999-15:59', 'infinity', 'infinity', '1 year 2 mons 3 days 04:05:06.789',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1, "two", {"three": 3.0}]', '{"unicode": "\u00e9\u65e5", "num": 1.000, "big": 12345678901234567890}', '<?xml version="1.0"?><root/>', $$'quoted ✓' 'a b':3 z$$, $$'x' <-> 'y'$$,
 '2001:db8::ff00:42:8329/128', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff', B'1111', B'101010101',
 '(1.5,-2.25)', '{0,1,0}', '[(1e10,2),(3,4)]', '((1,1),(-1,-1))', '((0,0),(1,1))', '((0,0),(10,0),(10,10),(0,10))', '<(1,2),3.5>',
 '[1,10)', '[2024-01-01 00:00:00+00,2024-12-31 23:59:59.5+00)', '{[1.5,2.5),(3,4]}', 'FFFFFFFF/FFFFFFFF',
 '{1,NULL,3}', $${"a,b","with \"quote\"",NULL,"NULL",""}$$, '{{-1,0},{0,1}}', $${"{\"a\": 1}","[]"}$$,
 'happy ✓', '{happy ✓,sad}', 100, $$(7,"x, ""y""")$$),
(3, null, null, null, null, null, null, null, null, null,
 null, null, null, null, null,
 null, null, null, null, null, null, null,
 null, null, null, null, null, null,
 null, null, null, null, null, null,
 null, null, null, null, null, null, null,
 null, null, null, null,
 null, null, null, null,
 null, null, null, null),
(4, 0, 0, 0, '0.000', 0, '1.17549435e-38', '4.9e-324', 0, true,
 repeat('long text ', 10000), 'x', 'abcde', repeat('n', 63), '\', 
 decode(repeat('00ff', 50000), 'hex'), '2000-02-29', '12:34:56.789', '12:00:00-00:30', '2000-01-01 00:00:00.000001', '1999-12-31 23:59:59.999999+05:30', '-1 days +00:00:00.000001',
 gen_random_uuid(), 'null', '"just a string"', '', '', 'a',
 '192.168.1.1/24', '192.168.0.0/16', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'0101', repeat('1', 200)::varbit,
 '(-0,0)', '{1,0,-5}', '[(0,0),(0,1)]', '((2,2),(2,2))', '[(0,0)]', '((0,0))', '<(0,0),0>',
 '(,5]', '(,)', '{(,)}', '16/B374D848',
 array[2147483647, -2147483648], array['', ' ', e'\\'], '{}', array['{"k": [1, {"l": null}]}'::jsonb],
 'ok', array['ok'::public.mood, 'ok'], 33.33, row(null, null));
insert into public.every_type (id, t, jb, num, tstz)
select 100 + g, 'row ' || g, jsonb_build_object('g', g, 's', repeat('✓', g % 7)), g / 7.0, '2024-01-01'::timestamptz + g * interval '1 minute'
from generate_series(1, 5000) g;
"#;

/// Every row of `public.every_type` in its text form, ordered, under the
/// same settings on both sides (full float precision, ISO dates, UTC).
async fn every_type_rows(c: &tokio_postgres::Client) -> Vec<String> {
    c.batch_execute(supamigrate::pg::TEXT_FORMS).await.unwrap();
    c.query("select e::text from public.every_type e order by id", &[])
        .await
        .expect("reading every_type")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn plan_of(work: &Path) -> supamigrate::plan::MigrationPlan {
    let text = std::fs::read_to_string(work.join(".supamigrate/plan.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn migrate_into(major: u32, app: &str) {
    if !supamigrate_sandbox::platform::require(&format!("versions::into_{major}")) {
        return;
    }
    let app = apps::find(app).expect("a fixture application");
    let sb = Sandbox::ephemeral_on(Some(app), major)
        .await
        .expect("a sandbox with a newer target starts (scripts/setup.sh installs its server)");
    let target_db = sb.target_url().dbname.clone();
    let src_owner = connect(&sb.source_url()).await.unwrap();
    src_owner
        .batch_execute(EVERY_TYPE)
        .await
        .expect("the every-type table loads on the source");

    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{major}: {t}");
    assert!(
        t.contains("✓ migration complete: data equal; ") && t.contains(" left behind"),
        "{major}: {t}"
    );

    let tgt = connect(&sb.target_superuser(&target_db)).await.unwrap();
    let version: String = tgt
        .query_one("select current_setting('server_version_num')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version[..2].parse::<u32>().unwrap(), major, "{version}");

    // The plan copied every table as text and said why.
    let plan = plan_of(work.path());
    assert!(
        plan.tables.iter().all(|m| !m.binary),
        "no binary COPY across majors"
    );
    assert!(
        plan.versions
            .iter()
            .any(|n| n.what == format!("PostgreSQL 15 → {major}")),
        "{:#?}",
        plan.versions
    );
    assert!(
        plan.versions.iter().any(|n| n.what.contains("MAINTAIN")),
        "{:#?}",
        plan.versions
    );

    // This test's own check: every row equal in text form.
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let (a, b) = (every_type_rows(&src).await, every_type_rows(&tgt).await);
    assert_eq!(a.len(), 5004);
    assert_eq!(a.len(), b.len(), "every_type's rows on 15 and {major}");
    if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
        let cut = |s: &str| s.chars().take(3000).collect::<String>();
        panic!(
            "every_type differs between 15 and {major}:\n  15: {}\n  {major}: {}",
            cut(x),
            cut(y)
        );
    }
    check(&sb, work.path(), app.name).await;
    if app.name == "notes" {
        notes_behave(&sb).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn into_postgres_17() {
    migrate_into(17, "notes").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn into_postgres_18() {
    migrate_into(18, "files").await;
}
