//! `supamigrate copy` SIGKILLed at several points (mid-table, before a commit,
//! between tables, during index creation); each re-run resumes, and the end
//! result equals the source with no row twice.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::run;

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

async fn digest(c: &Client, table: &str) -> (i64, String) {
    let sql = format!(
        "select count(*), md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) from {table} x"
    );
    let r = c.query_one(&sql, &[]).await.unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn killed_copy_resumes_to_an_exact_copy() {
    let sb = Sandbox::ephemeral(2).await.expect("sandbox starts");
    let secrets = tempfile::tempdir().unwrap();
    let mut provision = bin(&sb);
    provision
        .args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    let out = run(provision).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pre = bin(&sb);
    pre.args(["schema", "apply", "--section", "pre-data"]);
    assert!(run(pre).await.status.success());

    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let ready_rows = || async {
        tgt.query(
            "select target_schema || '.' || target_table, done_at::text from supamigrate.ready_done order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    };
    let mut ready_before_kill = Vec::new();
    // Each failpoint kills one run; the next run resumes and meets the next one.
    for fp in [
        "copy-chunk@5",               // mid-table: rows sent, not committed
        "copy-before-commit@3",       // a task fully sent, commit not done
        "copy-task-done@4",           // between tables: some committed
        "ready-table@5",              // five tables analyzed and recorded
        "post-data-statement@25",     // during index and constraint creation
        "post-data-before-commit@10", // an index built, its record not committed
    ] {
        let mut copy = bin(&sb);
        copy.args(["copy", "--jobs", "2"])
            .env("SUPAMIGRATE_FAILPOINTS", fp);
        let out = run(copy).await;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{fp}: expected SIGKILL, got {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if fp.starts_with("ready-table") {
            ready_before_kill = ready_rows().await;
            assert!(ready_before_kill.len() >= 5, "{ready_before_kill:?}");
        }
    }
    let mut copy = bin(&sb);
    copy.args(["copy", "--jobs", "2"]);
    let out = run(copy).await;
    assert!(
        out.status.success(),
        "final run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("post-data: built"), "{report}");

    // The tables made ready before the kill were not made ready again.
    let after = ready_rows().await;
    for row in &ready_before_kill {
        assert!(
            after.contains(row),
            "{} was analyzed again: {after:?}",
            row.0
        );
    }
    // The TMS tables, users, Auth's identities, MFA factors, passkeys and
    // SSO tables, Storage's two.
    assert_eq!(after.len(), 35, "every table is ready: {after:?}");
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    for t in supamigrate_sandbox::fixture::TMS_TABLES {
        let t = format!("public.{t}");
        assert_eq!(digest(&src, &t).await, digest(&tgt, &t).await, "{t}");
    }
    let users_src: i64 = src
        .query_one("select count(*) from auth.users", &[])
        .await
        .unwrap()
        .get(0);
    let users_tgt: i64 = tgt
        .query_one("select count(*) from public.app_users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users_src, users_tgt);
    // Every constraint is there and validated: no duplicate slipped in.
    let pk: i64 = tgt
        .query_one("select count(*) from pg_constraint where contype = 'p' and connamespace = 'public'::regnamespace", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, 28, "27 TMS tables + app_users have their primary keys");
    // And verify, with its own checksums, agrees.
    let mut verify = bin(&sb);
    verify.arg("verify");
    let out = run(verify).await;
    assert!(
        out.status.success(),
        "verify after the resumed copy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--no-analyze`: the copy leaves statistics for later (tables copied whole
/// still go in frozen), the plan says so, and verify does not ask for them.
#[tokio::test]
async fn no_analyze_leaves_statistics_for_later() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let secrets = tempfile::tempdir().unwrap();
    for args in [
        vec![
            "provision",
            "--yes",
            "--no-analyze",
            "--secrets-dir",
            secrets.path().to_str().unwrap(),
        ],
        vec!["schema", "apply", "--section", "pre-data"],
        vec!["copy", "--jobs", "2"],
    ] {
        let mut c = bin(&sb);
        c.args(&args);
        let out = run(c).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    // (Index builds set reltuples and relallvisible; only ANALYZE writes pg_stats.)
    let (analyzed, visible, pages): (i64, i64, i64) = {
        let r = tgt
            .query_one(
                "select (select count(*) from pg_stats where schemaname = 'public'), \
                        sum(c.relallvisible)::int8, sum(c.relpages)::int8 \
                 from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(analyzed, 0, "no table was analyzed");
    assert!(
        pages > 0 && visible == pages,
        "COPY FREEZE: {visible} of {pages} pages all-visible"
    );
    let ready: i64 = tgt
        .query_one("select count(*) from supamigrate.ready_done", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ready, 0);
    let mut plan = bin(&sb);
    plan.arg("plan");
    let out = run(plan).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("COPY FREEZE; no ANALYZE (--no-analyze)"),
        "{text}"
    );
    let mut verify = bin(&sb);
    verify.arg("verify");
    let out = run(verify).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("planner statistics"), "{text}");
}
