//! Reliability under an operator's mistakes: a second command started while
//! a first one works touches nothing of the first's; a cutover that cannot
//! finish says so before it stops a single write, and once writes stopped
//! never leaves the source read-only without saying how to give them back;
//! a schema change on the source during the follow is never silent.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{ok, output_text, run};

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

async fn ended(child: Child) -> (Option<i32>, String) {
    let done = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (done.status.code(), output_text(&done))
}

/// The slot and follow record as they stand: (slot names on the source,
/// the follow's slot on the target).
async fn slots(admin: &Client, tgt: &Client) -> (Vec<String>, Option<String>) {
    let on_source = admin
        .query(
            "select slot_name::text from pg_replication_slots where slot_name like 'supamigrate%' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let recorded = tgt
        .query_opt("select slot from supamigrate.follow", &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0));
    (on_source, recorded)
}

/// A second `copy --follow` (and a `cutover --abort`, and a `follow`)
/// started while the first copy still copies is refused before it touches
/// anything: the first's slot, publication and record stay, and the follow
/// afterwards loses no transaction committed meanwhile.
#[tokio::test]
async fn a_second_copy_follow_mid_copy_touches_nothing() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create table public.rl_t (id bigint primary key, v text);
         insert into public.rl_t select g, 'before' from generate_series(1, 500) g;",
    )
    .await
    .unwrap();
    crate::common::provision_and_pre_data(&sb).await;
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();

    // The first copy pauses after its first task: long enough for the rest.
    let mut first = bin(&sb);
    first
        .args(["copy", "--follow", "--jobs", "1"])
        .env("SUPAMIGRATE_FAILPOINTS", "copy-task-done@1=sleep:6000");
    let first = spawn(first);
    let mut slot = None;
    for _ in 0..300 {
        let (on_source, recorded) = slots(&admin, &tgt).await;
        if on_source.len() == 1 && recorded.as_ref() == on_source.first() {
            slot = recorded;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slot = slot.expect("the first copy made its slot and recorded it");
    // Committed under the first slot, after its snapshot: only the follow
    // carries these.
    app.batch_execute(
        "insert into public.rl_t select g, 'during' from generate_series(501, 1500) g",
    )
    .await
    .unwrap();

    for args in [
        &["copy", "--follow"][..],
        &["cutover", "--abort"][..],
        &["follow", "--until-caught-up"][..],
    ] {
        let mut second = bin(&sb);
        second.args(args);
        let out = run(second).await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains("another migration is running") && text.contains("copy --follow"),
            "{args:?}: {text}"
        );
        assert_eq!(
            slots(&admin, &tgt).await,
            (vec![slot.clone()], Some(slot.clone())),
            "{args:?} left the first copy's slot and record alone"
        );
    }
    let (code, text) = ended(first).await;
    assert_eq!(code, Some(0), "the first copy: {text}");

    app.batch_execute(
        "insert into public.rl_t select g, 'after' from generate_series(1501, 1600) g",
    )
    .await
    .unwrap();
    let mut f = bin(&sb);
    f.args(["follow", "--until-caught-up"]);
    ok(f, "follow --until-caught-up").await;
    assert_eq!(count(&tgt, "select count(*) from public.rl_t").await, 1600);
    let mut abort = bin(&sb);
    abort.args(["cutover", "--abort"]);
    ok(abort, "cutover --abort").await;
}

/// Whether the application's role may write on the source now.
async fn source_writable(sb: &Sandbox) -> bool {
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute("insert into public.rl_w default values")
        .await
        .is_ok()
}

/// A copy under a slot, caught up: ready for a cutover.
async fn following(sb: &Sandbox) {
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create table public.rl_w (id bigserial primary key);
         create table public.rl_m (id bigint primary key, amount numeric(12,2), v text);
         insert into public.rl_m select g, g / 7.0, 'x' from generate_series(1, 100) g;",
    )
    .await
    .unwrap();
    crate::common::provision_and_pre_data(sb).await;
    let mut copy = bin(sb);
    copy.args(["copy", "--follow"]);
    ok(copy, "copy --follow").await;
    let mut f = bin(sb);
    f.args(["follow", "--until-caught-up"]);
    ok(f, "follow --until-caught-up").await;
}

/// The cutover checks what it can before a single write stops: a Storage
/// destination with no AWS region and a column added on the source (on a
/// table no row change showed the follow) refuse it, exit 2, the source
/// still writable. A type change made once the writes stopped stops it
/// after: exit 1, saying the source is read-only and how to give it back;
/// `verify` then names the change instead of refusing.
#[tokio::test]
async fn the_cutover_checks_first_and_never_hides_a_read_only_source() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    following(&sb).await;
    let dest_needs_region = |sb: &Sandbox| {
        let mut cut = bin(sb);
        cut.args(["cutover", "--yes", "--source-dir"])
            .arg(sb.storage_dir());
        crate::common::without_aws_region(&mut cut);
        cut
    };
    let out = run(dest_needs_region(&sb)).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no AWS region"), "{text}");
    assert!(source_writable(&sb).await, "nothing stopped: {text}");

    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute("alter table public.rl_m add column extra integer")
        .await
        .unwrap();
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]);
    let out = run(cut).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("column public.rl_m.extra added (integer)")
            && text.contains("nothing was changed"),
        "{text}"
    );
    assert!(source_writable(&sb).await, "nothing stopped: {text}");
    admin
        .batch_execute("alter table public.rl_m drop column extra")
        .await
        .unwrap();

    // A type change while the writes are stopped (by a superuser, whose
    // writes a cutover cannot stop).
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]).env(
        "SUPAMIGRATE_FAILPOINTS",
        "cutover-writes-stopped=sleep:4000",
    );
    let cut = spawn(cut);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    admin
        .batch_execute("alter table public.rl_m alter column amount type numeric(14,4)")
        .await
        .unwrap();
    let (code, text) = ended(cut).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("column public.rl_m.amount changed: numeric(12,2) → numeric(14,4)")
            && text.contains("the source is read-only now")
            && text.contains("supamigrate cutover --abort")
            && !text.contains("nothing was changed"),
        "{text}"
    );
    assert!(!source_writable(&sb).await, "the writes stay stopped");
    let mut verify = bin(&sb);
    verify.arg("verify");
    let out = run(verify).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("column public.rl_m.amount changed: numeric(12,2) → numeric(14,4)"),
        "{text}"
    );
    let mut abort = bin(&sb);
    abort.args(["cutover", "--abort"]);
    ok(abort, "cutover --abort").await;
    assert!(source_writable(&sb).await, "the abort gave the writes back");
}

/// A pre-data larger than the target's lock table holds in one transaction
/// (here: the smallest `max_locks_per_transaction` and 1,200 tables) is
/// applied in parts; a kill after a part leaves a state the re-run
/// completes, and the data follows.
#[tokio::test]
async fn pre_data_larger_than_the_lock_table_applies_in_parts() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create schema wide;
         do $$ begin
           for i in 1..1200 loop
             execute format('create table wide.t%s (id bigint primary key, v text unique, n int check (n > 0))', i);
             execute format('insert into wide.t%s values (1, ''x'', 1)', i);
           end loop;
         end $$;",
    )
    .await
    .unwrap();
    let target = connect(&sb.target_superuser("postgres")).await.unwrap();
    target
        .batch_execute("alter system set max_locks_per_transaction = 10")
        .await
        .unwrap();
    drop(target);
    sb.target_cluster().restart().expect("the target restarts");

    let secrets = tempfile::tempdir().unwrap();
    let mut provision = bin(&sb);
    provision
        .args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    ok(provision, "provision").await;
    let mut pre = bin(&sb);
    pre.args(["schema", "apply", "--section", "pre-data"])
        .env("SUPAMIGRATE_FAILPOINTS", "schema-part@2");
    let out = run(pre).await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let part: i64 = count(
        &tgt,
        "select count(*) from pg_tables where schemaname = 'wide'",
    )
    .await;
    assert!(part > 0 && part < 1200, "two parts applied: {part} tables");
    let mut pre = bin(&sb);
    pre.args(["schema", "apply", "--section", "pre-data"]);
    ok(pre, "pre-data again").await;
    assert_eq!(
        count(
            &tgt,
            "select count(*) from pg_tables where schemaname = 'wide'"
        )
        .await,
        1200
    );
    let mut copy = bin(&sb);
    copy.arg("copy");
    ok(copy, "copy").await;
    assert_eq!(
        count(
            &tgt,
            "select count(*) from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = 'wide' and c.contype = 'u'"
        )
        .await,
        1200,
        "post-data (in parts too) made every unique key"
    );
    assert_eq!(count(&tgt, "select count(*) from wide.t1200").await, 1);
}

/// A text value of 150 MB in a column discovery samples for Storage
/// references: the plan reads its length, never its bytes.
#[tokio::test]
async fn a_huge_text_value_does_not_stop_the_plan() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create table public.rl_docs (id bigint primary key, body text);
         alter table public.rl_docs alter column body set storage external;
         insert into public.rl_docs values (1, 'documents/a.pdf');
         insert into public.rl_docs select 2, repeat('x', 150 * 1024 * 1024);",
    )
    .await
    .unwrap();
    let mut plan = bin(&sb);
    plan.args(["plan", "--json"]);
    let out = ok(plan, "plan").await;
    assert!(output_text(&out).contains("rl_docs"));
}

/// A table copied again (its source grew since) gets its statistics again:
/// verify's statistics check stays green.
#[tokio::test]
async fn a_recopied_table_is_analyzed_again() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create table public.rl_grow (id bigint primary key, v text);
         insert into public.rl_grow select g, md5(g::text) from generate_series(1, 1000) g;",
    )
    .await
    .unwrap();
    crate::common::provision_and_pre_data(&sb).await;
    let mut copy = bin(&sb);
    copy.arg("copy");
    ok(copy, "copy").await;
    app.batch_execute(
        "insert into public.rl_grow select g, md5(g::text) from generate_series(1001, 6000) g",
    )
    .await
    .unwrap();
    let mut copy = bin(&sb);
    copy.args(["copy", "--recopy", "public.rl_grow"]);
    ok(copy, "copy --recopy").await;
    let mut verify = bin(&sb);
    verify.arg("verify");
    ok(verify, "verify after the re-copy").await;
}

/// A target database that already holds the application's tables (and no
/// migration of ours) is found by preflight: `run` stops there, before
/// the backup and before anything is written.
#[tokio::test]
async fn a_target_holding_the_tables_is_refused_in_preflight() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute("create table public.rl_taken (id bigint primary key)")
        .await
        .unwrap();
    let target = sb.target_url();
    let admin = connect(&target.with_dbname("postgres")).await.unwrap();
    admin
        .batch_execute(&format!("create database {}", target.dbname))
        .await
        .unwrap();
    let tgt = connect(&target).await.unwrap();
    tgt.batch_execute("create table public.rl_taken (id bigint primary key)")
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(crate::common::run_in(&sb, work.path())).await;
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("already holds 1 of the tables the plan creates (public.rl_taken)"),
        "{text}"
    );
    assert!(!work.path().join("backups").exists(), "no backup was taken");
    let stores: i64 = count(
        &tgt,
        "select count(*) from pg_namespace where nspname = 'supamigrate'",
    )
    .await;
    assert_eq!(stores, 0, "nothing was written to the target");
}

/// A server that refuses TLS under `sslmode=require`: one clear cause, said
/// once, not called transient.
#[tokio::test]
async fn a_server_without_tls_under_require_is_said_once() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let mut target = sb.target_url();
    target.sslmode = supamigrate::connect::SslMode::Require;
    let mut c = bin(&sb);
    c.env("RDS_URL", target.to_url_with_password())
        .args(["copy"]);
    let out = run(c).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("does not offer TLS").count(),
        1,
        "the cause once: {text}"
    );
    assert!(text.contains("and sslmode=require requires it"), "{text}");
    assert!(!text.contains("transient"), "{text}");
}

/// `storage copy` runs beside a running follow (so the cutover finds the
/// objects there and copies none inside its downtime); a cutover is
/// refused while it copies.
#[tokio::test]
async fn storage_copy_runs_beside_the_follow() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    following(&sb).await;
    let mut f = bin(&sb);
    f.arg("follow");
    let follower = spawn(f);
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    for k in 0.. {
        if count(
            &admin,
            "select count(*) from pg_replication_slots where active",
        )
        .await
            == 1
        {
            break;
        }
        assert!(k < 300, "the follow never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dest = tempfile::tempdir().unwrap();
    let storage = |extra: &[&str]| {
        let mut c = bin(&sb);
        c.args(extra)
            .arg("--source-dir")
            .arg(sb.storage_dir())
            .arg("--dest-dir")
            .arg(dest.path());
        c
    };
    let mut slow = storage(&["storage", "copy"]);
    slow.env(
        "SUPAMIGRATE_FAILPOINTS",
        "storage-object-uploaded@1=sleep:3000",
    );
    let slow = spawn(slow);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = run(storage(&["cutover", "--yes"])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("`supamigrate storage copy`"), "{text}");
    assert!(
        source_writable(&sb).await,
        "the refused cutover stopped nothing"
    );
    let (code, text) = ended(slow).await;
    assert_eq!(code, Some(0), "storage copy beside the follow: {text}");
    let out = ok(storage(&["cutover", "--yes"]), "cutover").await;
    let text = output_text(&out);
    assert!(text.contains("storage: 0 object(s) copied"), "{text}");
    let (code, text) = ended(follower).await;
    assert_eq!(code, Some(0), "{text}");
}

/// `supamigrate preflight` and `run`'s preflight step are one function: given
/// more workers than the servers have sessions for and no Storage source,
/// both refuse, naming both, and nothing is written.
#[tokio::test]
async fn preflight_and_runs_preflight_step_refuse_alike() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let no_storage = |c: &mut Command| {
        crate::common::without_aws_region(c).env_remove("SUPAMIGRATE_STORAGE_DIR");
    };
    let mut pre = bin(&sb);
    pre.args(["preflight", "--jobs", "200", "--backup-dir"])
        .arg(work.path().join("backups"));
    no_storage(&mut pre);
    let mut r = crate::common::run_in(&sb, work.path());
    r.args(["--jobs", "200"]);
    no_storage(&mut r);
    for (what, cmd) in [("preflight", pre), ("run", r)] {
        let out = run(cmd).await;
        let text = output_text(&out);
        assert_ne!(out.status.code(), Some(0), "{what}: {text}");
        assert!(
            text.contains("--jobs 200 needs 206 connections")
                && text.contains("no Storage source or destination is configured"),
            "{what}: {text}"
        );
    }
    assert!(!work.path().join("backups").exists(), "nothing was written");
}
