//! Fault injection: what a careful operator hits in the first hour. Wrong
//! URLs, leaked secrets, a killed backup, a source that changes between a
//! kill and the resume, a target that already holds rows, a silent server,
//! too many workers, a target restart mid-copy, two runs at once, a full
//! disk, a killed restore test. Each case on real clusters, through the
//! real binary.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{ok, output_text, run};

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

fn passwords(sb: &Sandbox) -> Vec<String> {
    [sb.source_url(), sb.target_url()]
        .into_iter()
        .filter_map(|u| u.password.map(|p| p.expose().to_string()))
        .collect()
}

async fn superuser(sb: &Sandbox, source: bool, db: &str) -> Client {
    let info = if source {
        sb.source_superuser(db)
    } else {
        sb.target_superuser(db)
    };
    connect(&info).await.expect("superuser connects")
}

/// Processes whose parent is `pid`, with their command name.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if field("PPid:").and_then(|v| v.parse::<u32>().ok()) == Some(pid) {
            out.push((p, field("Name:").unwrap_or_default()));
        }
    }
    out
}

/// Waits up to `secs` for `cond`.
async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every regular file under `root` changed since `since` (bigger ones and
/// `skip` left out) that holds one of `secrets`.
fn files_with_secrets(
    root: &Path,
    skip: &Path,
    since: SystemTime,
    secrets: &[String],
) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.starts_with(skip) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && meta.len() < 64 * 1024 * 1024
                && meta.modified().is_ok_and(|m| m >= since)
            {
                if let Ok(bytes) = std::fs::read(&path) {
                    let text = String::from_utf8_lossy(&bytes);
                    if secrets.iter().any(|s| text.contains(s.as_str())) {
                        found.push(path);
                    }
                }
            }
        }
    }
    found
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("the binary starts")
}

async fn wait_child(child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn wrong_sides_are_refused_before_any_write() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let source = sb.source_url().to_url_with_password();
    let target = sb.target_url().to_url_with_password();
    // (what, SUPABASE_DB_URL, RDS_URL, expected message)
    let cases = [
        (
            "target = source",
            &source,
            &source,
            "point at the same database",
        ),
        (
            "swapped",
            &target,
            &source,
            "the target looks like a Supabase project",
        ),
    ];
    for (what, src, tgt, message) in cases {
        for command in [
            &["provision", "--yes"][..],
            &["plan"],
            &["preflight"],
            &["copy"],
        ] {
            let mut c = bin(&sb);
            c.env("SUPABASE_DB_URL", src)
                .env("RDS_URL", tgt)
                .args(command);
            let out = run(c).await;
            let text = output_text(&out);
            assert_eq!(out.status.code(), Some(2), "{what} {command:?}: {text}");
            assert!(text.contains(message), "{what} {command:?}: {text}");
            assert!(text.contains("nothing was changed"), "{what}: {text}");
        }
    }
    // Neither side was written to.
    let s = superuser(&sb, true, "postgres").await;
    let written: i64 = s
        .query_one(
            "select (select count(*) from pg_roles where rolname = 'tms_app') \
                  + (select count(*) from pg_namespace where nspname = 'supamigrate')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0, "nothing created on the source");
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "no target database"
    );
}

#[tokio::test]
async fn killed_backup_leaves_no_secret_no_child_and_no_partial_folder() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let since = SystemTime::now() - Duration::from_secs(1);
    let out_dir = sb.dir().join("fault-backups");
    let app_password = "app-Pa55-w0rd-for-leak-test";
    let mut secrets = passwords(&sb);
    secrets.push(app_password.to_string());
    // pg_dump waits on this lock, so it is running when we look.
    let locker = superuser(&sb, true, "postgres").await;
    locker
        .batch_execute("begin; lock table public.shipments in access exclusive mode")
        .await
        .unwrap();
    let mut c = bin(&sb);
    c.env("APP_DB_PASSWORD", app_password)
        .args(["backup", "--out"])
        .arg(&out_dir);
    let child = spawn(c);
    let pid = child.id();
    let mut dump = None;
    // The data dump (not `pg_dump --version`): it reads the backup's snapshot.
    wait_for(60, "pg_dump to start", || {
        dump = children(pid).into_iter().find(|(p, n)| {
            n == "pg_dump"
                && std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--snapshot"))
        });
        dump.is_some()
    })
    .await;
    let (dump_pid, _) = dump.unwrap();
    let environ = std::fs::read(format!("/proc/{dump_pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
    for s in &secrets {
        assert!(
            !environ.contains(s.as_str()),
            "a secret in pg_dump's environment:\n{environ}"
        );
    }
    for var in ["SUPABASE_DB_URL", "RDS_URL", "APP_DB_PASSWORD"] {
        assert!(!environ.contains(var), "{var} passed to pg_dump");
    }
    let cmdline = std::fs::read(format!("/proc/{dump_pid}/cmdline")).unwrap();
    assert!(secrets
        .iter()
        .all(|s| !String::from_utf8_lossy(&cmdline).contains(s.as_str())));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = wait_child(child).await;
    assert_eq!(out.status.signal(), Some(9));
    wait_for(10, "pg_dump to die with its parent", || {
        !Path::new(&format!("/proc/{dump_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{dump_pid}/status"))
                .is_ok_and(|s| s.contains("State:\tZ"))
    })
    .await;
    locker.batch_execute("rollback").await.unwrap();

    let tmp = std::env::temp_dir();
    let leaked = files_with_secrets(&tmp, sb.dir(), since, &secrets);
    let leaked: Vec<_> = leaked
        .into_iter()
        .chain(files_with_secrets(
            &sb.dir().join("cli-state"),
            Path::new("/nonexistent"),
            since,
            &secrets,
        ))
        .chain(files_with_secrets(
            &out_dir,
            Path::new("/nonexistent"),
            since,
            &secrets,
        ))
        .collect();
    assert!(leaked.is_empty(), "files holding a password: {leaked:?}");
    let partial: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
        .collect();
    assert_eq!(partial.len(), 1, "the killed backup's unfinished folder");

    // The next backup removes it and succeeds.
    let mut c = bin(&sb);
    c.args(["backup", "--out"]).arg(&out_dir);
    ok(c, "the next backup").await;
    let left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn full_disk_during_backup_leaves_no_partial_folder() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let small = sb.dir().join("small-disk");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mounting a small tmpfs (tests run as root)"
    );
    let mut c = bin(&sb);
    c.args(["backup", "--out"]).arg(&small);
    let out = run(c).await;
    let text = output_text(&out);
    let entries: Vec<String> = std::fs::read_dir(&small)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let _ = Command::new("umount").arg(&small).status();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("No space left"), "{text}");
    assert!(
        text.contains("disk holding"),
        "the hint names the disk, not the pooler: {text}"
    );
    assert!(!text.contains("6543"), "{text}");
    assert!(
        entries.iter().all(|n| !n.starts_with(".partial-")),
        "{entries:?}"
    );
}

async fn scratch(admin: &Client) -> i64 {
    admin
        .query_one(
            "select count(*) from pg_database where datname like 'supamigrate_restore_check_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn killed_restore_test_is_cleaned_at_the_next_start() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let out_dir = sb.dir().join("rt-backups");
    let mut c = bin(&sb);
    c.args(["backup", "--out"]).arg(&out_dir);
    ok(c, "backup").await;
    let latest = out_dir.join("latest");
    let mut c = bin(&sb);
    c.args(["backup", "verify"]).arg(&latest);
    let child = spawn(c);
    let pid = child.id();
    wait_for(60, "pg_restore to start", || {
        children(pid).iter().any(|(p, n)| {
            n == "pg_restore"
                && std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--dbname"))
        })
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_child(child).await;
    let admin = superuser(&sb, false, "postgres").await;
    assert_eq!(
        scratch(&admin).await,
        1,
        "the killed test left its scratch database"
    );
    let mut c = bin(&sb);
    c.args(["backup", "verify"]).arg(&latest);
    let out = ok(c, "the next restore test").await;
    assert!(
        output_text(&out).contains("dropping a scratch database an interrupted restore test left"),
        "said: {}",
        output_text(&out)
    );
    assert_eq!(scratch(&admin).await, 0, "dropped at the next start");
}

/// `--jobs` is bounded: 0 and huge numbers are refused by the parser, and a
/// number the servers have no connections for is refused before any work.
#[tokio::test]
async fn jobs_are_bounded_by_the_servers_connections() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let cases: &[(&[&str], &str)] = &[
        (&["copy", "--jobs", "0"], "0 is not in 1..=256"),
        (&["copy", "--jobs", "100000"], "is not in 1..=256"),
        (
            &["verify", "--jobs", "250"],
            "--jobs 250 needs 256 connections",
        ),
        (
            &["storage", "copy", "--part-size-mib", "1"],
            "1 is not in 5..=5120",
        ),
        (&["run", "--copy-jobs", "0"], "0 is not in 1..=256"),
    ];
    for (args, message) in cases {
        let mut c = bin(&sb);
        c.args(*args);
        let out = run(c).await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
        assert!(
            !text.contains("remaining connection slots"),
            "{args:?}: {text}"
        );
    }
    assert!(!sb.target_database_exists().await.unwrap());
}

/// A server that accepts TCP and never answers: `check` gives up within the
/// connection string's connect_timeout, as psql does.
#[tokio::test]
async fn a_silent_server_times_out_within_connect_timeout() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    for (url, limit) in [
        (
            format!("postgresql://u:p@127.0.0.1:{port}/db?connect_timeout=2"),
            6,
        ),
        (format!("postgresql://u:p@127.0.0.1:{port}/db"), 25),
    ] {
        let mut c = bin(&sb);
        c.env("SUPABASE_DB_URL", &url).arg("check");
        let started = Instant::now();
        let out = run(c).await;
        let took = started.elapsed();
        let text = output_text(&out);
        assert!(took < Duration::from_secs(limit), "{url}: {took:?}\n{text}");
        assert!(text.contains("no answer from the server within"), "{text}");
        assert!(!out.status.success(), "{text}");
    }
}

/// Waits (up to a minute) until at least `n` copy tasks have committed.
async fn tasks_done(t: &Client, n: i64) {
    let started = Instant::now();
    loop {
        let done: i64 = t
            .query_one(
                "select count(*) from supamigrate.copy_tasks where done_at is not null",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{done} of {n} tasks done"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Provisions and applies pre-data for a `copy` test.
async fn prepared(sb: &Sandbox) {
    let mut p = bin(sb);
    p.args(["provision", "--yes"]);
    ok(p, "provision").await;
    let mut a = bin(sb);
    a.args(["schema", "apply", "--section", "pre-data"]);
    ok(a, "pre-data").await;
}

#[tokio::test]
async fn copy_refuses_target_tables_holding_rows_it_did_not_copy() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    prepared(&sb).await;
    let t = superuser(&sb, false, "tms_production").await;
    t.batch_execute("insert into public.customers (display_name) values ('already here')")
        .await
        .expect("a row written on the target before the copy");
    let mut c = bin(&sb);
    c.arg("copy");
    let out = run(c).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("already hold rows this migration did not copy: public.customers"),
        "{text}"
    );
    let tasks: i64 = t
        .query_one("select count(*) from supamigrate.copy_tasks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tasks, 0, "nothing written");
}

/// Kill a copy while one table is still waiting; then the source changes:
/// a parent row and a child row referencing it (the child not copied yet,
/// the parent already: the foreign key would break), and an update of a
/// copied table. The resume copies the changed tables again, whole, and
/// verify is green.
#[tokio::test]
async fn drift_after_a_kill_is_copied_again_and_verify_is_green() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let s = superuser(&sb, true, "postgres").await;
    s.batch_execute(
        "create table public.drift_parent (id int primary key, name text); \
         create table public.drift_child (id int primary key, parent_id int not null references public.drift_parent(id)); \
         create table public.drift_notes (id int primary key, body text); \
         insert into public.drift_parent select g, repeat('p', 200) || g from generate_series(1, 2000) g; \
         insert into public.drift_child select g, g from generate_series(1, 50) g; \
         insert into public.drift_notes select g, repeat('n', 200) || g from generate_series(1, 2000) g; \
         analyze public.drift_parent, public.drift_child, public.drift_notes;",
    )
    .await
    .unwrap();
    prepared(&sb).await;
    let t = superuser(&sb, false, "tms_production").await;
    // Tasks run biggest first (one worker: in the plan's order); the kill
    // comes right after the parent's and the notes' tasks committed, before
    // the child's.
    let body: String = t
        .query_one("select body from supamigrate.plan", &[])
        .await
        .unwrap()
        .get(0);
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = plan["copy_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let at = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    let kill_after = at("public.drift_parent").max(at("public.drift_notes")) + 1;
    assert!(at("public.drift_child") >= kill_after, "{ids:?}");
    let mut c = bin(&sb);
    c.args(["copy", "--jobs", "1"]).env(
        "SUPAMIGRATE_FAILPOINTS",
        format!("copy-task-done@{kill_after}"),
    );
    let out = run(c).await;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    // The source moves on (from sessions that end, as an application's would).
    let w = superuser(&sb, true, "postgres").await;
    w.batch_execute(
        "insert into public.drift_parent values (2001, 'new'); \
         insert into public.drift_child values (51, 2001); \
         update public.drift_notes set body = 'changed' where id = 7;",
    )
    .await
    .unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut c = bin(&sb);
    c.args(["copy", "--jobs", "2"]);
    let out = ok(c, "the resumed copy").await;
    let text = output_text(&out);
    for table in ["public.drift_parent", "public.drift_notes"] {
        assert!(
            text.contains(&format!(
                "copied again, whole: {table} (the source table changed"
            )),
            "{table}: {text}"
        );
    }
    assert!(
        !text.contains("copied again, whole: public.customers"),
        "{text}"
    );
    let mut v = bin(&sb);
    v.arg("verify");
    ok(v, "verify after the resume").await;
    let note: String = t
        .query_one("select body from public.drift_notes where id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "changed");
}

/// `--recopy` copies a table again on request; an unknown name is refused.
#[tokio::test]
async fn recopy_on_request_and_unknown_tables_refused() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    prepared(&sb).await;
    let mut c = bin(&sb);
    c.args(["copy", "--no-post-data"]);
    ok(c, "copy").await;
    let mut c = bin(&sb);
    c.args(["copy", "--no-post-data", "--recopy", "public.nope"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("--recopy public.nope: the plan copies no such table"));
    let mut c = bin(&sb);
    c.args(["copy", "--no-post-data", "--recopy", "public.customers"]);
    let out = ok(c, "copy --recopy").await;
    assert!(
        output_text(&out).contains("copied again, whole: public.customers (--recopy)"),
        "{}",
        output_text(&out)
    );
}

/// The target restarts while the copy runs: the workers reconnect with
/// backoff and the copy completes in the same invocation.
#[tokio::test]
async fn a_target_restart_mid_copy_completes_without_a_rerun() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    prepared(&sb).await;
    let mut c = bin(&sb);
    c.args(["copy", "--jobs", "1"])
        .env("SUPAMIGRATE_FAILPOINTS", "copy-task-done@3=sleep:2500");
    let child = spawn(c);
    let t = superuser(&sb, false, "tms_production").await;
    tasks_done(&t, 3).await;
    drop(t);
    sb.target_cluster().restart().expect("the target restarts");
    let out = wait_child(child).await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("retried"), "{text}");
    let mut v = bin(&sb);
    v.arg("verify");
    ok(v, "verify after the restart").await;
}

/// Two runs at once: the second is refused (exit 2) naming the first, both
/// through the state folder's lock and, from another state folder, the
/// target's advisory lock. `run` sets the application role's password from
/// APP_DB_PASSWORD.
#[tokio::test]
async fn one_run_at_a_time_and_run_honours_app_db_password() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let run_cmd = |state: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
        c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
            .env("RDS_URL", sb.target_url().to_url_with_password())
            .env("APP_DB_USER", "tms_app")
            .env_remove("SUPAMIGRATE_FAILPOINTS")
            .env_remove("RUST_LOG")
            .current_dir(work.path())
            .arg("--state-dir")
            .arg(state)
            .args(["-q", "run", "--yes", "--backup-dir"])
            .arg(work.path().join("backups"))
            .arg("--report-dir")
            .arg(work.path().join("report"))
            .arg("--source-dir")
            .arg(sb.storage_dir())
            .arg("--dest-dir")
            .arg(work.path().join("s3"));
        for r in supamigrate_sandbox::fixture::REFERENCES {
            c.args(["--reference", r]);
        }
        c.args([
            "--bucket-prefix",
            supamigrate_sandbox::fixture::BUCKET_PREFIX,
        ]);
        c
    };
    let state = work.path().join("state");
    let mut first = run_cmd(&state);
    first
        .env("APP_DB_PASSWORD", "app-run-Pa55")
        .env("SUPAMIGRATE_FAILPOINTS", "run-step-done@2=sleep:6000");
    let first = spawn(first);
    let lock = state.join("lock");
    wait_for(30, "the first run's lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("\"pid\""))
    })
    .await;
    for (what, dir) in [
        ("same state folder", state.clone()),
        ("another state folder", work.path().join("other")),
    ] {
        let out = run(run_cmd(&dir)).await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {text}");
        assert!(
            text.contains("another migration is running"),
            "{what}: {text}"
        );
        assert!(
            text.contains(&format!("pid={}", first.id()))
                || text.contains(&format!("pid {}", first.id())),
            "{what}: names the holder: {text}"
        );
    }
    let out = wait_child(first).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let mut app = sb.target_url();
    app.user = "tms_app".into();
    app.password = Some(supamigrate::connect::Password::new("app-run-Pa55"));
    let c = connect(&app)
        .await
        .expect("the app role logs in with APP_DB_PASSWORD");
    c.query_one("select 1", &[]).await.unwrap();

    // A finished run, run again, verifies again before saying green.
    let out = ok(run_cmd(&state), "the finished run again").await;
    assert!(
        output_text(&out).contains("✓ migration complete: data equal; 5 policies left behind"),
        "{}",
        output_text(&out)
    );
    let s = superuser(&sb, true, "postgres").await;
    s.batch_execute(
        "insert into public.customers (display_name) values ('signed up after the run')",
    )
    .await
    .unwrap();
    let out = run(run_cmd(&state)).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("verify found"), "{text}");
    assert!(text.contains("public.customers"), "{text}");
}

/// Bad input: each message names what is wrong and how to fix it, once,
/// with exit code 2 (1 for a server that cannot be reached), and never
/// echoes a secret.
#[tokio::test]
async fn bad_input_gets_a_clear_message() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let config = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let numeric = config(
        "numeric.toml",
        "[target]\nhost = \"h\"\npassword = 98765432\n",
    );
    let syntax = config("syntax.toml", "project_ref = \n");
    let unknown = config("unknown.toml", "[target]\nhots = \"db.example.com\"\n");
    let target = sb.target_url();
    let fresh = target.with_dbname("not_provisioned").to_url_with_password();
    let port = target.port.to_string();
    struct Case<'a> {
        what: &'a str,
        env: Vec<(&'a str, String)>,
        unset: &'a [&'a str],
        args: Vec<String>,
        code: i32,
        says: &'a [&'a str],
        never: &'a [&'a str],
    }
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases = vec![
        Case {
            what: "URL without a host",
            env: vec![("SUPABASE_DB_URL", "postgresql://u:pw@/db".into())],
            unset: &[],
            args: args(&["plan"]),
            code: 2,
            says: &["has no host", "host name after the '@'"],
            never: &["localhost"],
        },
        Case {
            what: "a '/' in the password",
            env: vec![(
                "SUPABASE_DB_URL",
                "postgresql://u:p@ss/w@127.0.0.1:5432/db".into(),
            )],
            unset: &[],
            args: args(&["plan"]),
            code: 2,
            says: &["'/' in the password", "%2F"],
            never: &["p@ss/w", "invalid port"],
        },
        Case {
            what: "a port that is not a number",
            env: vec![("SUPABASE_DB_URL", "postgresql://u@127.0.0.1:54x2/db".into())],
            unset: &[],
            args: args(&["plan"]),
            code: 2,
            says: &["invalid port \"54x2\"", "percent-encode"],
            never: &[],
        },
        Case {
            what: "RDS_* without a password",
            env: vec![
                ("RDS_HOST", "127.0.0.1".into()),
                ("RDS_PORT", port.clone()),
                ("RDS_USER", target.user.clone()),
                ("RDS_DATABASE", "postgres".into()),
            ],
            unset: &["RDS_URL", "RDS_PASSWORD"],
            args: args(&["plan"]),
            code: 2,
            says: &["asks for a password and none was given", "RDS_PASSWORD"],
            never: &[],
        },
        Case {
            what: "a numeric password in supamigrate.toml",
            env: vec![],
            unset: &["RDS_URL"],
            args: vec!["--config".into(), numeric.clone(), "plan".into()],
            code: 2,
            says: &["key target.password must be a string", "quote it"],
            never: &["98765432"],
        },
        Case {
            what: "a TOML syntax error",
            env: vec![],
            unset: &[],
            args: vec!["--config".into(), syntax.clone(), "plan".into()],
            code: 2,
            says: &["line 1", "not TOML"],
            never: &[],
        },
        Case {
            what: "an unknown TOML key",
            env: vec![],
            unset: &[],
            args: vec!["--config".into(), unknown.clone(), "plan".into()],
            code: 2,
            says: &["line 2 (key hots)", "unknown field"],
            never: &[],
        },
        Case {
            what: "copy before provision",
            env: vec![("RDS_URL", fresh.clone())],
            unset: &[],
            args: args(&["copy"]),
            code: 2,
            says: &["does not exist yet", "supamigrate provision"],
            never: &["re-run", "resume", "schema_sections"],
        },
        Case {
            what: "run without RDS_URL",
            env: vec![],
            unset: &["RDS_URL"],
            args: args(&["run", "--yes"]),
            code: 2,
            says: &["no target database given", "set RDS_URL"],
            never: &["IMDS"],
        },
        Case {
            what: "--out naming a file",
            env: vec![],
            unset: &[],
            args: vec![
                "backup".into(),
                "--out".into(),
                file.to_string_lossy().into_owned(),
            ],
            code: 2,
            says: &["is a file, not a folder"],
            never: &["File exists"],
        },
        Case {
            what: "the transaction pooler's port (backup)",
            env: vec![(
                "SUPABASE_DB_URL",
                "postgresql://u:pw@127.0.0.1:6543/postgres?connect_timeout=2".into(),
            )],
            unset: &[],
            args: args(&["backup", "--out", "/nonexistent-backups"]),
            code: 1,
            says: &["uses port 6543, Supabase's transaction pooler"],
            never: &[],
        },
        Case {
            what: "the transaction pooler's port (plan)",
            env: vec![(
                "SUPABASE_DB_URL",
                "postgresql://u:pw@127.0.0.1:6543/postgres?connect_timeout=2".into(),
            )],
            unset: &[],
            args: args(&["plan"]),
            code: 1,
            says: &["uses port 6543, Supabase's transaction pooler"],
            never: &[],
        },
    ];
    for case in cases {
        let mut c = bin(&sb);
        c.current_dir(work.path());
        for v in case.unset {
            c.env_remove(v);
        }
        for (k, v) in &case.env {
            c.env(k, v);
        }
        c.args(&case.args);
        let out = run(c).await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(case.code), "{}: {text}", case.what);
        for s in case.says {
            assert!(text.contains(s), "{}: should say {s:?}: {text}", case.what);
            assert_eq!(
                text.matches(s).count(),
                1,
                "{}: said once: {text}",
                case.what
            );
        }
        for s in case.never {
            assert!(
                !text.contains(s),
                "{}: should not say {s:?}: {text}",
                case.what
            );
        }
        for secret in passwords(&sb) {
            assert!(
                !text.contains(&secret),
                "{}: a password in {text}",
                case.what
            );
        }
    }
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "nothing created"
    );
}

/// `storage copy` with references to rewrite and no provisioned target
/// stops before uploading anything.
#[tokio::test]
async fn storage_copy_before_provision_uploads_nothing() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("s3");
    let mut c = bin(&sb);
    c.args(["storage", "copy", "--source-dir"])
        .arg(sb.storage_dir())
        .arg("--dest-dir")
        .arg(&dest);
    let out = run(c).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("has not been provisioned"), "{text}");
    assert!(text.contains("nothing was uploaded"), "{text}");
    assert!(!dest.exists(), "nothing uploaded");
}

/// Ctrl-C mid-copy says what was interrupted and how to resume (exit 130);
/// the re-run completes.
#[tokio::test]
async fn ctrl_c_says_what_was_interrupted_and_a_rerun_resumes() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    prepared(&sb).await;
    let mut c = bin(&sb);
    c.args(["copy", "--jobs", "1"])
        .env("SUPAMIGRATE_FAILPOINTS", "copy-task-done@2=sleep:4000");
    let child = spawn(c);
    let pid = child.id();
    let t = superuser(&sb, false, "tms_production").await;
    tasks_done(&t, 2).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = wait_child(child).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    assert!(
        text.contains("Run the same command again to resume"),
        "{text}"
    );
    let mut c = bin(&sb);
    c.arg("copy");
    ok(c, "the copy after Ctrl-C").await;
    let mut v = bin(&sb);
    v.arg("verify");
    ok(v, "verify").await;
}

/// `provision` on an existing role leaves its password alone unless
/// APP_DB_PASSWORD is given, and says which.
#[tokio::test]
async fn provision_says_what_it_did_to_an_existing_role() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let login = |pw: &str| {
        let mut app = sb.target_url();
        app.user = "tms_app".into();
        app.password = Some(supamigrate::connect::Password::new(pw));
        async move { connect(&app).await.is_ok() }
    };
    let provision = |pw: Option<&str>| {
        let mut c = bin(&sb);
        c.args(["provision", "--yes"]);
        match pw {
            Some(p) => c.env("APP_DB_PASSWORD", p),
            None => c.env_remove("APP_DB_PASSWORD"),
        };
        c
    };
    let out = ok(provision(Some("first-Pa55")), "provision").await;
    assert!(output_text(&out).contains("created, with the password from APP_DB_PASSWORD"));
    let out = ok(provision(None), "provision again").await;
    assert!(
        output_text(&out).contains("exists (its password is unchanged)"),
        "{}",
        output_text(&out)
    );
    assert!(login("first-Pa55").await, "the password is unchanged");
    let out = ok(
        provision(Some("second-Pa55")),
        "provision with a new password",
    )
    .await;
    assert!(
        output_text(&out).contains("exists; its password was set from APP_DB_PASSWORD"),
        "{}",
        output_text(&out)
    );
    assert!(login("second-Pa55").await && !login("first-Pa55").await);
}

/// libpq's conventions: the target's URL has no password; it comes from
/// PGPASSWORD alone (provision, pre-data), then from the password file
/// PGPASSFILE names (copy, verify), and the migration works.
#[tokio::test]
async fn pgpassword_and_the_password_file_are_enough() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let mut tgt = sb.target_url();
    let tgt_pw = tgt.password.take().unwrap().expose().to_string();
    let pgpass = work.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "{}:{}:*:{}:{}\n",
            tgt.host,
            tgt.port,
            tgt.user,
            tgt_pw.replace('\\', "\\\\").replace(':', "\\:")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cmd = |args: &[&str], env: (&str, &str)| {
        let mut c = bin(&sb);
        c.env("RDS_URL", tgt.to_url_with_password())
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", work.path())
            .env(env.0, env.1)
            .args(args);
        c
    };
    let by_env = ("PGPASSWORD", tgt_pw.as_str());
    let pgpass = pgpass.to_string_lossy().into_owned();
    let by_file = ("PGPASSFILE", pgpass.as_str());
    ok(cmd(&["provision", "--yes"], by_env), "provision").await;
    ok(
        cmd(&["schema", "apply", "--section", "pre-data"], by_env),
        "pre-data",
    )
    .await;
    ok(cmd(&["copy"], by_file), "copy").await;
    ok(cmd(&["verify"], by_file), "verify").await;
    // Without either, the error says every place a password may come from.
    let out = run(cmd(&["plan"], ("PGAPPNAME", "test"))).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for place in ["RDS_PASSWORD", "PGPASSWORD", "~/.pgpass", "PGPASSFILE"] {
        assert!(text.contains(place), "{place}: {text}");
    }
    assert!(!text.contains("password missing"), "{text}");
}
