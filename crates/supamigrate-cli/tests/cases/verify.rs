//! `supamigrate verify` on a migrated sandbox: all green and exit 0 on a clean
//! copy; then the target is changed in eleven ways and verify must report each
//! one precisely (table, key, column), nothing else, and exit 1; a bad
//! password exits 2.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{ok, run};

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

async fn verify_json(
    sb: &Sandbox,
    report: &std::path::Path,
    chunk_rows: u32,
) -> (Option<i32>, Value) {
    let checks = report.with_file_name("tms_checks.sql");
    std::fs::write(&checks, supamigrate_sandbox::fixture::CHECKS_SQL).unwrap();
    let mut v = bin(sb);
    v.args(["verify", "--jobs", "2", "--json", "--chunk-rows"])
        .arg(chunk_rows.to_string())
        .arg("--report")
        .arg(report)
        .arg("--checks")
        .arg(&checks);
    let out = run(v).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

async fn one(c: &Client, sql: &str) -> String {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

fn table(v: &Value) -> String {
    format!(
        "{}.{}",
        v["schema"].as_str().unwrap(),
        v["name"].as_str().unwrap()
    )
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(|s| format!("'{s}'"))
        .unwrap_or("NULL".into())
}

/// Every finding in the JSON report as one line, for an exact comparison.
fn findings(r: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in r["tables"].as_array().unwrap() {
        let name = table(&t["target"]);
        let (s, g) = (&t["source_rows"], &t["target_rows"]);
        if s != g {
            out.insert(format!("{name}: rows {s} vs {g}"));
        }
        for d in t["diffs"].as_array().unwrap() {
            let key: Vec<String> = d["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| format!("{}={}", kv["column"].as_str().unwrap(), text(&kv["value"])))
                .collect();
            let cols: Vec<String> = d["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c["column"].as_str().unwrap(),
                        text(&c["source"]),
                        text(&c["target"])
                    )
                })
                .collect();
            let key = if t["method"] == "multiset" {
                "(row)".to_string()
            } else {
                key.join(",")
            };
            out.insert(
                format!(
                    "{name}: {} {key} {}",
                    d["kind"].as_str().unwrap(),
                    cols.join("; ")
                )
                .trim_end()
                .to_string(),
            );
        }
    }
    for o in r["orphans"].as_array().unwrap() {
        if o["target_rows"] != o["source_rows"] && o["target_rows"] != 0 {
            out.insert(format!(
                "orphans {}: {}",
                o["foreign_key"]["name"].as_str().unwrap(),
                o["target_rows"]
            ));
        }
    }
    for s in r["sequences"].as_array().unwrap() {
        for p in s["problems"].as_array().unwrap() {
            out.insert(format!(
                "sequence {}: {}",
                table(&s["sequence"]),
                p.as_str().unwrap()
            ));
        }
    }
    for c in r["checks"].as_array().unwrap() {
        if c["skipped"].is_null() && c["source"] != c["target"] {
            out.insert(format!("check {}", c["name"].as_str().unwrap()));
        }
    }
    for e in r["code"]["sql_errors"].as_array().unwrap() {
        out.insert(format!(
            "sql function {}: {}",
            e["function"].as_str().unwrap(),
            e["message"].as_str().unwrap()
        ));
    }
    let inv = &r["inventory"];
    for (what, list) in [
        ("missing", &inv["missing"]),
        ("unexpected", &inv["unexpected"]),
    ] {
        for o in list.as_array().unwrap() {
            out.insert(format!(
                "inventory {what}: {} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            ));
        }
    }
    for d in inv["different"].as_array().unwrap() {
        out.insert(format!(
            "inventory different: {} {}: {:?} → {:?}",
            d["object"]["kind"].as_str().unwrap(),
            d["object"]["name"].as_str().unwrap(),
            d["planned"].as_str().unwrap(),
            d["found"].as_str().unwrap()
        ));
    }
    out
}

#[tokio::test]
async fn verify_is_green_on_a_copy_and_names_every_change() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    // A table without a primary key, fed by a sequence, with a duplicate row.
    let src = connect(&sb.source_url()).await.unwrap();
    src.batch_execute(
        "create table public.event_log (id bigserial, kind text not null, detail jsonb, at timestamptz not null);
         insert into public.event_log (kind, detail, at)
           select 'k' || (i % 7), jsonb_build_object('i', i, 'even', i % 2 = 0),
                  timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour'
           from generate_series(1, 300) i;
         insert into public.event_log select * from public.event_log where id = 10;
         create view public.event_kinds as select distinct kind from public.event_log;
         create function public.first_kind() returns text language sql stable as 'select min(kind) from public.event_kinds';",
    )
    .await
    .unwrap();

    let secrets = tempfile::tempdir().unwrap();
    let mut p = bin(&sb);
    p.args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    ok(p, "provision").await;
    let mut a = bin(&sb);
    a.args(["schema", "apply", "--section", "pre-data"]);
    ok(a, "pre-data").await;
    let mut c = bin(&sb);
    c.args(["copy", "--jobs", "2"]);
    ok(c, "copy").await;

    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("verify.md");
    let (code, clean) = verify_json(&sb, &md, 100_000).await;
    assert_eq!(findings(&clean), BTreeSet::new(), "{clean:#}");
    assert_eq!(code, Some(0), "{clean:#}");
    let tables = clean["tables"].as_array().unwrap();
    assert_eq!(
        tables.len(),
        36,
        "27 TMS tables, event_log, users, Auth's identities, mfa_factors, webauthn_credentials, sso_providers and sso_domains, storage.buckets and storage.objects"
    );
    let event_log = tables
        .iter()
        .find(|t| table(&t["source"]) == "public.event_log")
        .unwrap();
    assert_eq!(event_log["method"], "multiset");
    assert_eq!(event_log["target_rows"], 301);
    assert_eq!(clean["sequences"].as_array().unwrap().len(), 1);
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("everything matches"));

    // Change the target; triggers off so each change is exactly one column.
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    tgt.batch_execute("set session_replication_role = replica")
        .await
        .unwrap();
    let customer = one(
        &tgt,
        "update public.customers set display_name = display_name || ' (edited)' \
        where id = (select min(id::text)::uuid from public.customers) returning id::text",
    )
    .await;
    let customer_name = one(
        &src,
        &format!("select display_name from public.customers where id = '{customer}'"),
    )
    .await;
    let log = one(
        &tgt,
        "delete from public.tracking_logs \
        where id = (select min(id::text)::uuid from public.tracking_logs) returning id::text",
    )
    .await;
    let extra = one(
        &tgt,
        "insert into public.vehicle_types (id, type_name) \
        values ('00000000-0000-4000-8000-000000000001', 'Extra truck') returning id::text",
    )
    .await;
    let driver = one(&tgt, "update public.drivers set voter_id = '' \
        where id = (select min(id::text)::uuid from public.drivers where voter_id is null) returning id::text").await;
    let (point, at) = {
        let r = tgt
            .query_one(
                "update public.location_history set event_time = event_time + interval '1 microsecond' \
                 where id = (select min(id::text)::uuid from public.location_history) \
                 returning id::text, (event_time - interval '1 microsecond')::text",
                &[],
            )
            .await
            .unwrap();
        (r.get::<_, String>(0), r.get::<_, String>(1))
    };
    // The same jsonb, written with its keys in reverse order: not a difference.
    let reordered = one(&tgt, "update public.app_users u set raw_user_meta_data = \
        (select ('{' || string_agg(to_json(key)::text || ':' || value::text, ',' order by key desc) || '}')::jsonb \
         from jsonb_each(u.raw_user_meta_data)) \
        where id = (select min(id::text)::uuid from public.app_users \
                    where (select count(*) from jsonb_object_keys(raw_user_meta_data)) >= 2) returning id::text").await;
    assert!(!reordered.is_empty());
    tgt.batch_execute("select setval('public.event_log_id_seq', 5)")
        .await
        .unwrap();
    let shipment = one(
        &tgt,
        "select min(id::text) from public.shipments where customer_id is not null",
    )
    .await;
    let old_customer = one(
        &tgt,
        &format!("select customer_id::text from public.shipments where id = '{shipment}'"),
    )
    .await;
    tgt.batch_execute(&format!(
        "alter table public.shipments drop constraint shipments_customer_id_fkey;
         update public.shipments set customer_id = '00000000-0000-4000-8000-0000000000cc' where id = '{shipment}';
         alter table public.shipments add constraint shipments_customer_id_fkey
           foreign key (customer_id) references public.customers (id) not valid;
         drop index public.idx_location_history_event_time;
         update public.event_log set kind = 'changed' where id = 42;
         alter table public.event_kinds rename column kind to kind_name;"
    ))
    .await
    .unwrap();

    let (code, changed) = verify_json(&sb, &md, 100_000).await;
    let expected: BTreeSet<String> = [
        format!("public.customers: changed id='{customer}' display_name: '{customer_name}' → '{customer_name} (edited)'"),
        "public.tracking_logs: rows 480 vs 479".to_string(),
        format!("public.tracking_logs: missing id='{log}'"),
        "public.vehicle_types: rows 12 vs 13".to_string(),
        format!("public.vehicle_types: extra id='{extra}'"),
        format!("public.drivers: changed id='{driver}' voter_id: NULL → ''"),
        format!(
            "public.location_history: changed id='{point}' event_time: '{at}' → '{}'",
            one(&tgt, &format!("select event_time::text from public.location_history where id = '{point}'")).await
        ),
        format!("public.shipments: changed id='{shipment}' customer_id: '{old_customer}' → '00000000-0000-4000-8000-0000000000cc'"),
        "public.event_log: changed (row) kind: 'k0' → 'changed'".to_string(),
        "orphans shipments_customer_id_fkey: 1".to_string(),
        "sequence public.event_log_id_seq: target last_value 5 (is_called true) differs from the source's 300 (is_called true)".to_string(),
        "sequence public.event_log_id_seq: behind its column: nextval would return 6, but public.event_log.id already holds 300".to_string(),
        "check orphan_shipments".to_string(),
        "inventory missing: index idx_location_history_event_time".to_string(),
        "inventory different: constraint shipments_customer_id_fkey: \"\" → \"NOT VALID\"".to_string(),
        // The view its function reads lost the column (the reference still
        // resolves: only the body's analysis finds it).
        "sql function first_kind(): column \"kind\" does not exist".to_string(),
    ]
    .into_iter()
    .collect();
    let got = findings(&changed);
    assert_eq!(
        got.difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "reported but not expected"
    );
    assert_eq!(
        expected.difference(&got).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "expected but not reported"
    );
    assert_eq!(code, Some(1));
    // Small first-level chunks (cut from the source's keys) find the same.
    let (code, chunked) = verify_json(&sb, &md, 300).await;
    assert_eq!(findings(&chunked), expected);
    assert_eq!(code, Some(1));
    let chunks = |r: &Value, t: &str| {
        r["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| table(&x["source"]) == t)
            .unwrap()["chunks"]
            .clone()
    };
    assert_eq!(chunks(&changed, "public.location_history"), 1);
    assert!(
        chunks(&chunked, "public.location_history")
            .as_u64()
            .unwrap()
            >= 20
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("### ✗ public.customers"), "{md}");
    assert!(md.contains("missing on the target: index idx_location_history_event_time on public.location_history"), "{md}");

    // An error (here a wrong password) is exit code 2, not 1.
    let mut bad = bin(&sb);
    let mut url = sb.target_url();
    url.password = Some(supamigrate::connect::Password::new("wrong".to_string()));
    bad.env("RDS_URL", url.to_url_with_password()).arg("verify");
    let out = run(bad).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong"));
}
