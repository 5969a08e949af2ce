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

    // Each failpoint kills one run; the next run resumes and meets the next one.
    for fp in [
        "copy-chunk@5",               // mid-table: rows sent, not committed
        "copy-before-commit@3",       // a task fully sent, commit not done
        "copy-task-done@4",           // between tables: some committed
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

    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
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
