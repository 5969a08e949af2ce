//! `copy --follow`, `follow` and `cutover` under a continuous write
//! workload on the source: interleaved transactions committing in another
//! order than they began, a rolled-back one, a large TOASTed value left
//! alone by updates to other columns, deletes across a foreign key, users
//! added and deleted; follows killed mid-transaction and before their
//! acknowledgement; the cutover stopping the workload's writes. The target
//! ends equal to the source, every committed transaction once.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supamigrate::connect::{connect, ConnInfo};
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{ok, output_text, run};

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

const TABLES: &str = "
create table public.fw_parent (id bigint primary key, name text not null, doc text, n int not null default 0);
create table public.fw_child (id bigint primary key, parent_id bigint not null references public.fw_parent(id) on delete cascade, v text);
create table public.fw_log (id bigint primary key, what text not null);
insert into public.fw_parent (id, name, doc)
  select 1, 'with a large value', string_agg(md5(g::text), '') from generate_series(1, 4000) g;
insert into public.fw_parent (id, name) select g, 'p' || g from generate_series(2, 50) g;
insert into public.fw_child (id, parent_id, v) select g, 1 + g % 50, 'c' || g from generate_series(1, 200) g;
-- RLS forced and no policy: its owner (the target's master) sees no row
-- unless supamigrate lifts FORCE while it follows, cuts over and verifies.
alter table public.fw_child enable row level security;
alter table public.fw_child force row level security;
-- Populated: the cutover refreshes it with what the follow applied.
create materialized view public.fw_totals as select count(*) as logs from public.fw_log;
";

/// Writes to the source until `stop`, counting what committed; rides out
/// its sessions being ended by the cutover and counts the refused writes.
struct Workload {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

async fn workload_step(a: &Client, b: &Client, i: i64) -> Result<(), tokio_postgres::Error> {
    let (p, q) = (1000 + 2 * i, 1001 + 2 * i);
    // Two transactions: A begins first, B commits first.
    a.batch_execute("begin").await?;
    a.execute(
        "insert into public.fw_parent (id, name) values ($1, 'a')",
        &[&p],
    )
    .await?;
    b.batch_execute("begin").await?;
    b.execute(
        "insert into public.fw_parent (id, name) values ($1, 'b')",
        &[&q],
    )
    .await?;
    b.execute(
        "insert into public.fw_child (id, parent_id, v) values ($1, $2, 'new')",
        &[&(100_000 + i), &q],
    )
    .await?;
    b.execute(
        "insert into public.fw_log (id, what) values ($1, 'b')",
        &[&(2 * i + 1)],
    )
    .await?;
    b.batch_execute("commit").await?;
    a.execute(
        "insert into public.fw_log (id, what) values ($1, 'a')",
        &[&(2 * i)],
    )
    .await?;
    // Updates that leave the large value alone.
    a.execute("update public.fw_parent set n = n + 1 where id = 1", &[])
        .await?;
    a.batch_execute("commit").await?;
    // A rolled-back transaction: none of it may reach the target.
    a.batch_execute(&format!(
        "begin; insert into public.fw_log (id, what) values ({}, 'rolled back'); rollback",
        -1 - i
    ))
    .await?;
    // Deletes across the foreign key, users added and removed.
    a.execute(
        "delete from public.fw_parent where id = (select min(id) from public.fw_parent where id between 2 and 50)",
        &[],
    )
    .await?;
    a.execute(
        "insert into auth.users (id, email, created_at, updated_at) values (gen_random_uuid(), 'fw' || $1::text || '@example.com', now(), now())",
        &[&i.to_string()],
    )
    .await?;
    if i % 3 == 0 {
        a.execute(
            "delete from auth.users where id = (select id from auth.users where email like 'fw%' order by email limit 1)",
            &[],
        )
        .await?;
    }
    Ok(())
}

impl Workload {
    fn start(source: ConnInfo) -> Workload {
        let w = Workload {
            stop: Arc::new(AtomicBool::new(false)),
            committed: Arc::new(AtomicU64::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
        };
        let (stop, committed, refused) = (w.stop.clone(), w.committed.clone(), w.refused.clone());
        tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let (Ok(a), Ok(b)) = (connect(&source).await, connect(&source).await) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                while !stop.load(Ordering::SeqCst) {
                    match workload_step(&a, &b, i).await {
                        Ok(()) => {
                            committed.fetch_add(1, Ordering::SeqCst);
                            i += 1;
                        }
                        Err(e) => {
                            if e.code().map(|c| c.code()) == Some("25006") {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            // Move past ids a half-committed step used.
                            i += 1;
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        w
    }
}

async fn digest(c: &Client, sql: &str) -> (i64, String) {
    let q = format!(
        "select count(*), md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) from ({sql}) x"
    );
    let r = c.query_one(&q, &[]).await.unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn follow_and_cutover_under_writes() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let src_admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(TABLES).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let mut provision = bin(&sb);
    provision
        .args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    ok(provision, "provision").await;
    let mut pre = bin(&sb);
    pre.args(["schema", "apply", "--section", "pre-data"]);
    ok(pre, "pre-data").await;

    let work = Workload::start(sb.source_url());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut copy = bin(&sb);
    copy.args(["copy", "--follow", "--jobs", "2"]);
    let out = ok(copy, "copy --follow").await;
    assert!(
        output_text(&out).contains("supamigrate follow"),
        "{}",
        output_text(&out)
    );

    // Follows killed mid-transaction (changes sent, position not committed)
    // and after the commit before the source heard of it.
    for fp in ["follow-before-commit@15", "follow-applied@15"] {
        let mut f = bin(&sb);
        f.arg("follow").env("SUPAMIGRATE_FAILPOINTS", fp);
        let out = run(f).await;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{fp}: expected SIGKILL: {}",
            output_text(&out)
        );
    }
    // The last follow runs until the cutover.
    let follower = spawn_follow(&sb);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut status = bin(&sb);
    status.args(["follow", "--status", "--json"]);
    let st = output_text(&ok(status, "follow --status").await);
    assert!(st.contains("\"slot_active\": true"), "{st}");

    // A Storage object uploaded during the follow: its row is followed, its
    // file copied at the cutover.
    src_admin
        .batch_execute(
            "insert into storage.objects (bucket_id, name, metadata) values ('pod-documents', \
             'follow/added while following.pdf', '{\"size\": 5, \"mimetype\": \"application/pdf\"}')",
        )
        .await
        .unwrap();
    std::fs::create_dir_all(sb.storage_dir().join("pod-documents/follow")).unwrap();
    std::fs::write(
        sb.storage_dir()
            .join("pod-documents/follow/added while following.pdf"),
        b"hello",
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();

    // The cutover with the workload still writing: its sessions are ended
    // and its new ones refused.
    let committed_before = work.committed.load(Ordering::SeqCst);
    assert!(
        committed_before > 20,
        "the workload ran: {committed_before}"
    );
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes", "--source-dir"])
        .arg(sb.storage_dir())
        .arg("--dest-dir")
        .arg(dest.path());
    let out = ok(cut, "cutover").await;
    let text = output_text(&out);
    let text_cut = text.clone();
    assert!(text.contains("cutover done in"), "{text}");
    // Where the downtime went, part by part.
    assert!(
        text.contains("downtime by part: writes stopped")
            && text.contains("caught up")
            && text.contains("fast verify")
            && text.contains(", application "),
        "{text}"
    );
    // The application's fast checks: anon, service_role and three users.
    assert!(
        text.contains("application: auth.uid(), auth.role() and auth.jwt() answer the same for 5 principal(s)"),
        "{text}"
    );
    assert!(text.contains("storage: 626 object(s) copied"), "{text}");
    // Only the tables the follow changed are counted (the workload's, the
    // users and what their triggers write, Storage's objects).
    let compared: usize = text
        .split("; the ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((4..31).contains(&compared), "{compared}: {text}");
    // The changed rows: most compared (and forgotten) while following, the
    // rest by the cutover.
    let while_following: u64 = text
        .split("by content (")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(while_following > 0, "{text}");
    let copied = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|b| b.unwrap().path().join("follow/added while following.pdf"))
        .find(|p| p.exists())
        .expect("the object added during the follow is at the destination");
    assert_eq!(std::fs::read(copied).unwrap(), b"hello");
    tokio::time::sleep(Duration::from_millis(500)).await;
    work.stop.store(true, Ordering::SeqCst);
    let (code, text) = ended(follower).await;
    assert_eq!(code, Some(0), "follow: {text}");
    assert!(text.contains("reached the cutover"), "{text}");
    assert!(
        work.refused.load(Ordering::SeqCst) > 0,
        "the source refused the workload's writes after the cutover"
    );

    // Every committed transaction is on the target once; the rolled-back
    // ones are not; the large value survived updates that left it alone.
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    for sql in [
        "select * from public.fw_parent",
        "select * from public.fw_child",
        "select * from public.fw_log",
        "select id, email from auth.users",
    ] {
        let t = sql.replace("auth.users", "public.app_users");
        assert_eq!(
            digest(&src_admin, sql).await,
            digest(&tgt, &t).await,
            "{sql}"
        );
    }
    let rolled_back: i64 = tgt
        .query_one("select count(*) from public.fw_log where id < 0", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rolled_back, 0);
    assert!(
        text_cut
            .contains("materialized views refreshed with the follow's changes: public.fw_totals"),
        "{text_cut}"
    );
    let (in_view, logs): (i64, i64) = {
        let r = tgt
            .query_one(
                "select (select logs from public.fw_totals), (select count(*) from public.fw_log)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        in_view, logs,
        "the materialized view holds what the follow applied"
    );
    let (n, doc_len): (i32, i32) = {
        let r = tgt
            .query_one(
                "select n, length(doc) from public.fw_parent where id = 1",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(n as u64 >= committed_before, "{n} updates applied");
    assert_eq!(doc_len, 4000 * 32);
    // The slot and publication are gone from the source.
    let left: i64 = src_admin
        .query_one(
            "select (select count(*) from pg_replication_slots where slot_name like 'supamigrate%') \
                  + (select count(*) from pg_publication where pubname like 'supamigrate%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // And verify agrees.
    let mut verify = bin(&sb);
    verify.args(["verify", "--storage-rewritten"]);
    ok(verify, "verify after the cutover").await;
    // FORCE is back where the source has it, nothing left lifted.
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let forced: i64 = tgt
        .query_one(
            "select (select count(*) from pg_class where oid = 'public.fw_child'::regclass and relforcerowsecurity) \
                  - (select count(*) from supamigrate.unforced_rls)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(forced, 1);
}

/// `supamigrate follow` started in the background.
fn spawn_follow(sb: &Sandbox) -> std::process::Child {
    let mut f = bin(sb);
    f.arg("follow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    f.spawn().unwrap()
}

/// A sandbox whose source has `tables` (the application's SQL), provisioned,
/// pre-data applied and copied under a slot (`copy --follow`); the
/// application's session on the source.
async fn copied_under_a_slot(tables: &str) -> (Sandbox, Client) {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(tables).await.unwrap();
    crate::common::provision_and_pre_data(&sb).await;
    let mut copy = bin(&sb);
    copy.args(["copy", "--follow"]);
    ok(copy, "copy --follow").await;
    (sb, app)
}

/// Waits for a background `follow` to end: its exit code and output.
async fn ended(follower: std::process::Child) -> (Option<i32>, String) {
    let done = tokio::task::spawn_blocking(move || follower.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (done.status.code(), output_text(&done))
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// Polls until `sql` on `c` counts `want`, for up to 30 s.
async fn wait_for(c: &Client, sql: &str, want: i64) {
    for _ in 0..300 {
        if count(c, sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql}: never {want} (now {})", count(c, sql).await);
}

/// A table without a primary key is refused before anything is created on
/// the source, with its name and the way forward for each: a join table's
/// unique index on NOT NULL columns (as ORMs make them) as its replica
/// identity, else REPLICA IDENTITY FULL. Both ways then follow updates and
/// deletes.
#[tokio::test]
async fn a_table_without_a_key_is_refused_before_anything_is_created() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute(
        "create table public.fw_nokey (a int, b text); insert into public.fw_nokey values (1, 'x');
         create table public.\"_fw_Pair\" (\"A\" int not null, \"B\" int not null);
         create unique index \"_fw_Pair_AB_unique\" on public.\"_fw_Pair\" (\"A\", \"B\");
         insert into public.\"_fw_Pair\" select g, g % 3 from generate_series(1, 30) g;",
    )
    .await
    .unwrap();
    crate::common::provision_and_pre_data(&sb).await;
    let mut copy = bin(&sb);
    copy.args(["copy", "--follow"]);
    let out = run(copy).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("public.fw_nokey")
            && text.contains("no primary key")
            && text.contains("ALTER TABLE public.fw_nokey REPLICA IDENTITY FULL")
            && text.contains("ALTER TABLE public.\"_fw_Pair\" REPLICA IDENTITY USING INDEX \"_fw_Pair_AB_unique\""),
        "{text}"
    );
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    let created = count(
        &admin,
        "select (select count(*) from pg_replication_slots) + (select count(*) from pg_publication where pubname like 'supamigrate%')",
    )
    .await;
    assert_eq!(created, 0, "nothing was created on the source");

    // As the hint says: then updates and deletes of both are followed.
    app.batch_execute(
        "alter table public.fw_nokey replica identity full;
         alter table public.\"_fw_Pair\" replica identity using index \"_fw_Pair_AB_unique\";",
    )
    .await
    .unwrap();
    let mut copy = bin(&sb);
    copy.args(["copy", "--follow"]);
    ok(copy, "copy --follow").await;
    for sql in [
        "delete from public.\"_fw_Pair\" where \"B\" = 0",
        "update public.\"_fw_Pair\" set \"B\" = 7 where \"A\" = 1",
        "update public.fw_nokey set b = 'y'",
    ] {
        app.batch_execute(sql).await.unwrap();
    }
    let mut f = bin(&sb);
    f.args(["follow", "--until-caught-up"]);
    ok(f, "follow --until-caught-up").await;
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let pairs = "select count(*) filter (where \"B\" = 0) * 1000 + count(*) filter (where \"B\" = 7) * 100 + count(*) from public.\"_fw_Pair\"";
    assert_eq!(count(&tgt, pairs).await, count(&app, pairs).await);
    assert_eq!(count(&tgt, pairs).await, 100 + 20);
    assert_eq!(
        count(&tgt, "select count(*) from public.fw_nokey where b = 'y'").await,
        1
    );
    let mut abort = bin(&sb);
    abort.args(["cutover", "--abort"]);
    ok(abort, "cutover --abort").await;
}

/// A follow rides out a source restart; a dropped slot stops it with the
/// way forward; a column added on the source stops it before the change
/// reaches the target.
#[tokio::test]
async fn restart_dropped_slot_and_schema_change() {
    let (sb, app) =
        copied_under_a_slot("create table public.fw_t (id bigint primary key, v text);").await;
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();

    // --until-caught-up: applies what the source had written, then ends.
    app.batch_execute("insert into public.fw_t select g, 'first' from generate_series(-20, -1) g")
        .await
        .unwrap();
    let mut f = bin(&sb);
    f.args(["follow", "--until-caught-up"]);
    let out = ok(f, "follow --until-caught-up").await;
    assert!(
        output_text(&out).contains("follow: applied 1 transactions (20 rows)"),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        count(&tgt, "select count(*) from public.fw_t where id < 0").await,
        20
    );
    app.batch_execute("delete from public.fw_t where id < 0")
        .await
        .unwrap();

    // A source restart during the follow.
    let follower = spawn_follow(&sb);
    app.batch_execute("insert into public.fw_t select g, 'before' from generate_series(1, 100) g")
        .await
        .unwrap();
    wait_for(&tgt, "select count(*) from public.fw_t", 100).await;
    sb.source_cluster().restart().expect("the source restarts");
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute("insert into public.fw_t select g, 'after' from generate_series(101, 150) g")
        .await
        .unwrap();
    wait_for(&tgt, "select count(*) from public.fw_t", 150).await;

    // The slot dropped under the follow: a clear stop, nothing more applied.
    let admin = {
        drop(admin);
        connect(&sb.source_superuser("postgres")).await.unwrap()
    };
    let mut dropped = false;
    for _ in 0..100 {
        admin
            .batch_execute("select pg_terminate_backend(pid) from pg_stat_replication")
            .await
            .unwrap();
        if admin
            .batch_execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'supamigrate%'")
            .await
            .is_ok()
        {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped, "the slot could be dropped");
    let (code, text) = ended(follower).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("no longer exists") && text.contains("fresh copy"),
        "{text}"
    );
    assert_eq!(
        text.matches("no longer exists").count(),
        1,
        "said once: {text}"
    );

    // A new follow copy (every table again, under a new slot), then a
    // column added on the source while following.
    let mut copy = bin(&sb);
    copy.args(["copy", "--follow"]);
    let out = ok(copy, "copy --follow again").await;
    assert!(
        output_text(&out).contains("copied again"),
        "{}",
        output_text(&out)
    );
    let follower = spawn_follow(&sb);
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    wait_for(
        &admin,
        "select count(*) from pg_replication_slots where active",
        1,
    )
    .await;
    // (Three transactions: one multi-statement query would be one.)
    for sql in [
        "insert into public.fw_t values (1000, 'fine')",
        "alter table public.fw_t add column extra int",
        "insert into public.fw_t values (1001, 'new column', 7)",
    ] {
        app.batch_execute(sql).await.unwrap();
    }
    let (code, text) = ended(follower).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("\"extra\"") && text.contains("public.fw_t"),
        "{text}"
    );
    assert_eq!(
        count(&tgt, "select count(*) from public.fw_t where id = 1000").await,
        1
    );
    assert_eq!(
        count(&tgt, "select count(*) from public.fw_t where id = 1001").await,
        0
    );
    // The abort ends the follow: slot and publication gone from the source.
    let mut abort = bin(&sb);
    abort.args(["cutover", "--abort"]);
    ok(abort, "cutover --abort").await;
    assert_eq!(slots_and_publications(&sb).await, 0);
}

/// Our replication slots and publications on the source.
async fn slots_and_publications(sb: &Sandbox) -> i64 {
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    count(
        &admin,
        "select (select count(*) from pg_replication_slots where slot_name like 'supamigrate%') \
         + (select count(*) from pg_publication where pubname like 'supamigrate%')",
    )
    .await
}

/// The hard cases of the stream: a table matched on whole rows (replica
/// identity full, duplicates included), a TRUNCATE, and one source
/// transaction of 30 000 rows (applied in batches, in one target
/// transaction). Then the cutover's fast verify finds a changed row someone
/// altered on the target, refuses to finish, and finishes once it is put
/// right.
#[tokio::test]
async fn identity_full_truncate_large_transaction_and_the_fast_verify() {
    let (sb, app) = copied_under_a_slot(
        "create table public.fw_full (a int, b text);
         alter table public.fw_full replica identity full;
         insert into public.fw_full values (1, 'x'), (1, 'x'), (2, null), (3, 'y');
         create table public.fw_tr (id int primary key, v text);
         insert into public.fw_tr select g, 'old' from generate_series(1, 50) g;
         create table public.fw_big (id bigint primary key, v text, n int not null default 0);",
    )
    .await;
    for sql in [
        // One of two equal rows, a NULL matched, a row changed.
        "delete from public.fw_full where a = 1",
        "insert into public.fw_full values (1, 'x'), (1, 'x')",
        "with one as (select ctid from public.fw_full where a = 1 limit 1) \
         update public.fw_full set b = 'one' where ctid in (select ctid from one)",
        "update public.fw_full set b = 'was null' where a = 2",
        "delete from public.fw_full where a = 3",
        "truncate public.fw_tr",
        "insert into public.fw_tr values (7, 'after the truncate')",
        "begin; insert into public.fw_big (id, v) select g, md5(g::text) from generate_series(1, 30000) g; \
         update public.fw_big set n = 1 where id % 6 = 0; delete from public.fw_big where id % 10 = 0; commit",
    ] {
        app.batch_execute(sql).await.unwrap();
    }
    let mut f = bin(&sb);
    f.args(["follow", "--until-caught-up"]);
    ok(f, "follow --until-caught-up").await;
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    for sql in [
        "select * from public.fw_full",
        "select * from public.fw_tr",
        "select * from public.fw_big",
    ] {
        assert_eq!(digest(&src, sql).await, digest(&tgt, sql).await, "{sql}");
    }
    assert_eq!(
        count(&tgt, "select count(*) from public.fw_big").await,
        27000
    );

    // A changed row altered on the target behind the follow's back.
    tgt.batch_execute("update public.fw_big set v = 'tampered' where id = 6")
        .await
        .unwrap();
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]);
    let out = run(cut).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("row differs: public.fw_big where id = 6: values differ"),
        "{text}"
    );
    assert_eq!(text.matches("row differs").count(), 1, "{text}");
    // The changed rows were compared by content (inserts, updates and
    // deletes of fw_big, fw_tr's), the keyless and truncated ones counted.
    let by_content: u64 = text
        .split("compared: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(by_content >= 30_000, "{text}");
    assert!(text.contains("3 table(s) by count"), "{text}");
    // The slot is kept; put right, the cutover finishes.
    tgt.batch_execute("update public.fw_big set v = md5('6') where id = 6")
        .await
        .unwrap();
    // Killed at each step of the cutover: the source stays read-only, the
    // next run continues (or, once recorded, only drops the slot).
    for point in ["cutover-writes-stopped", "cutover-caught-up"] {
        let mut cut = bin(&sb);
        cut.args(["cutover", "--yes"])
            .env("SUPAMIGRATE_FAILPOINTS", point);
        let out = run(cut).await;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: {}",
            output_text(&out)
        );
        let app = connect(&sb.source_url()).await.unwrap();
        let refused = app
            .batch_execute("insert into public.fw_tr values (8, 'while cutting over')")
            .await
            .expect_err("the source is read-only after a killed cutover");
        let why = refused.as_db_error().map(|d| d.message().to_string());
        assert!(
            why.as_deref().is_some_and(|m| m.contains("read-only")),
            "{point}: {refused:?}"
        );
    }
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"])
        .env("SUPAMIGRATE_FAILPOINTS", "cutover-recorded");
    let out = run(cut).await;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    assert_eq!(slots_and_publications(&sb).await, 2, "left by the kill");
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]);
    let out = ok(cut, "cutover after the kills").await;
    assert!(
        output_text(&out).contains("the cutover had finished in an earlier run"),
        "{}",
        output_text(&out)
    );
    assert_eq!(slots_and_publications(&sb).await, 0);
    let mut verify = bin(&sb);
    verify.arg("verify");
    ok(verify, "verify after the cutover").await;
}

/// While following, the changed rows are compared with the source and the
/// equal ones forgotten (the cutover compares only the rest), but never a
/// row the follow changed again after the comparison: here a row is changed
/// on the source while the comparison that found it equal waits to forget
/// it, then altered on the target behind the follow's back. The cutover
/// still compares it and finds it.
#[tokio::test]
async fn compared_while_following_but_changed_again() {
    let (sb, app) =
        copied_under_a_slot("create table public.fw_cmp (id int primary key, v text)").await;
    let mut f = bin(&sb);
    f.arg("follow")
        .env("SUPAMIGRATE_FAILPOINTS", "follow-compared@1=sleep:4000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let follower = f.spawn().unwrap();
    let tgt = connect(&sb.target_superuser("tms_production"))
        .await
        .unwrap();
    app.batch_execute("insert into public.fw_cmp values (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    // Applied, then compared (a pass each second) and found equal: the
    // comparison now waits 4 s before forgetting them.
    wait_for(&tgt, "select count(*) from public.fw_cmp", 2).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    app.batch_execute("update public.fw_cmp set v = 'changed' where id = 1")
        .await
        .unwrap();
    // The follow goes on applying while the comparison waits.
    for i in 0..15 {
        if count(
            &tgt,
            "select count(*) from public.fw_cmp where v = 'changed'",
        )
        .await
            == 1
        {
            break;
        }
        assert!(i < 14, "the follow stalled while the comparison waited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tgt.batch_execute("update public.fw_cmp set v = 'tampered' where id = 1")
        .await
        .unwrap();
    // The comparison's wait is over: row 2 is forgotten, row 1 is not.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]);
    let out = run(cut).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("row differs: public.fw_cmp where id = 1: values differ"),
        "{text}"
    );
    assert!(text.contains("(1 more while following)"), "{text}");
    let (code, followed) = ended(follower).await;
    assert_eq!(code, Some(0), "{followed}");
    assert!(
        followed.contains("failpoint follow-compared@1: sleeping 4000 ms"),
        "{followed}"
    );
    // Put right, the cutover finishes. With auth.uid() broken on the
    // target, its fast application check says so (the data is equal: the
    // cutover finishes, naming it).
    tgt.batch_execute(
        "update public.fw_cmp set v = 'changed' where id = 1; \
         create or replace function auth.uid() returns uuid language sql stable as $$ select null::uuid $$",
    )
    .await
    .unwrap();
    // (The application's session was ended by the first cutover.)
    let first: String = connect(&sb.source_superuser("postgres"))
        .await
        .unwrap()
        .query_one("select id::text from auth.users order by id limit 1", &[])
        .await
        .unwrap()
        .get(0);
    let mut cut = bin(&sb);
    cut.args(["cutover", "--yes"]);
    let out = ok(cut, "cutover once put right").await;
    let text = output_text(&out);
    assert!(
        text.contains("application: 3 difference(s) on the target"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "✗ auth.uid() as {first}: source {first}, target NULL"
        )),
        "{text}"
    );
    assert!(text.contains(", application "), "{text}");
}
