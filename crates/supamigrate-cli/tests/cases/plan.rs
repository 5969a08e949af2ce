//! The plan as the one artifact: shown and confirmed before the first write
//! (on a terminal, driven here through a pseudo-terminal), refused without a
//! terminal or --yes, made with one schema dump per migration whatever the
//! commands, and its Storage choices obeyed (no reference column, --no-rewrite).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;

use crate::common::{ok, output_text, run};

/// `supamigrate -q COMMAND` on the sandbox, state and cwd in `work`.
fn cli(sb: &Sandbox, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("SUPAMIGRATE_STORAGE_DIR", sb.storage_dir())
        .env("APP_DB_USER", "tms_app")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG")
        .env_remove("SUPAMIGRATE_PG_BIN")
        .current_dir(work)
        .arg("-q")
        .args(args);
    c
}

/// Reads the pty until `want` appears (or the child's side closes).
fn read_until(master: &mut std::fs::File, seen: &mut String, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) && Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => return seen.contains(want),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen.contains(want)
}

/// `run` on a terminal: the plan, the question, and the answer `answer`.
fn run_on_a_terminal(
    mut cmd: Command,
    answer: &str,
    target_exists_while_asking: &dyn Fn() -> bool,
) -> (bool, String) {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave: OwnedFd = pty.slave;
    let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = cmd
        .stdin(stdio(&slave))
        .stdout(stdio(&slave))
        .stderr(stdio(&slave))
        .spawn()
        .unwrap();
    // Only the child may hold the terminal's other side: its exit then ends
    // our reads.
    drop(cmd);
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    assert!(
        read_until(&mut master, &mut seen, "[y/N]"),
        "the question is asked: {seen}"
    );
    for want in [
        "Plan ",
        "Steps of `supamigrate run`",
        "what changes for the application:",
        "Data: ",
    ] {
        assert!(
            seen.contains(want),
            "the plan is shown before the question ({want}): {seen}"
        );
    }
    assert!(
        !target_exists_while_asking(),
        "nothing is written while the question waits"
    );
    master.write_all(format!("{answer}\n").as_bytes()).unwrap();
    read_until(&mut master, &mut seen, "\u{0}");
    let status = child.wait().unwrap();
    (status.success(), seen)
}

async fn database_exists(sb: &Sandbox) -> bool {
    sb.target_database_exists().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_shows_the_plan_and_writes_only_once_confirmed() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // No terminal, no --yes: stopped before any write, exit 2.
    let mut c = cli(&sb, w, &["run"]);
    c.stdin(Stdio::null());
    let out = run(c).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("there is no terminal to ask on; nothing was written") && t.contains("--yes"),
        "{t}"
    );
    assert!(
        t.contains("Steps of `supamigrate run`"),
        "the plan was shown: {t}"
    );
    assert!(
        !database_exists(&sb).await,
        "the target database does not exist"
    );

    // On a terminal, answered no: still nothing written.
    let handle = tokio::runtime::Handle::current();
    let exists = || handle.block_on(async { database_exists(&sb).await });
    let (ok_no, t) =
        tokio::task::block_in_place(|| run_on_a_terminal(cli(&sb, w, &["run"]), "n", &exists));
    assert!(!ok_no && t.contains("the plan was not confirmed"), "{t}");
    assert!(!database_exists(&sb).await);

    // Answered yes: the run goes on and ends green.
    let (ok_yes, t) =
        tokio::task::block_in_place(|| run_on_a_terminal(cli(&sb, w, &["run"]), "y", &exists));
    assert!(ok_yes, "{t}");
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    assert!(database_exists(&sb).await);
}

#[tokio::test]
async fn one_schema_dump_serves_every_command_of_a_migration() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A pg_dump that writes down each call, then is the real one.
    let bin = w.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = supamigrate::connect::find_pg_tool("pg_dump").unwrap();
    let log = w.join("pg_dump.log");
    let wrapper = bin.join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let counted = |args: &[&str]| {
        let mut c = cli(&sb, w, args);
        c.env("SUPAMIGRATE_PG_BIN", &bin);
        c
    };
    let schema_dumps = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("--schema-only"))
            .count()
    };
    ok(counted(&["provision", "--yes"]), "provision").await;
    ok(
        counted(&["schema", "apply", "--section", "pre-data"]),
        "pre-data",
    )
    .await;
    ok(counted(&["copy", "--jobs", "2"]), "copy").await;
    ok(counted(&["verify", "--jobs", "2"]), "verify").await;
    assert_eq!(
        schema_dumps(),
        1,
        "provision, apply, copy and verify share one dump"
    );
    let out = ok(
        counted(&["run", "--yes", "--dest-dir", w.join("s3").to_str().unwrap()]),
        "run",
    )
    .await;
    let t = output_text(&out);
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    assert!(
        t.contains("references: 2 column(s) will be rewritten")
            && t.contains("public.driver_documents.file_path=driver-documents: discovered")
            && t.contains("public.shipments.pod_file_path=pod-documents: discovered"),
        "no --reference: the columns are discovered, and the plan says how: {t}"
    );
    assert_eq!(schema_dumps(), 1, "run too: the plan comes from the target");
    let all = std::fs::read_to_string(&log).unwrap();
    let dumps: Vec<&str> = all.lines().filter(|l| *l != "--version").collect();
    assert_eq!(dumps.len(), 2, "and the backup's own dump: {all}");

    // The discovered reference columns: objects copied, columns rewritten.
    let s3_files = walk(&w.join("s3"));
    assert!(s3_files >= 625, "objects copied: {s3_files}");
    let (src, tgt) = (
        connect(&sb.source_superuser("postgres")).await.unwrap(),
        connect(&sb.target_superuser("tms_production"))
            .await
            .unwrap(),
    );
    let q = "select count(*) filter (where file_path like 's3://%'), count(file_path) from public.driver_documents";
    let (a, b): (i64, i64) = {
        let r = tgt.query_one(q, &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert!(b > 0 && a == b, "every reference rewritten: {a} of {b}");
    let n: i64 = src
        .query_one(
            "select count(*) from public.driver_documents where file_path like 's3://%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the source's are as they were");

    // The plan as an artifact: the target's, written out whole.
    let file = w.join("plan-out.json");
    let out = ok(
        cli(&sb, w, &["plan", "--out", file.to_str().unwrap()]),
        "plan --out",
    )
    .await;
    let t = output_text(&out);
    assert!(
        t.contains("The target is being migrated by this plan"),
        "{t}"
    );
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let id = plan["id"].as_str().unwrap();
    assert!(t.contains(&format!("Plan {id} ")), "{t}");
    assert!(plan["copy_tasks"].as_array().unwrap().len() >= 28);

    // A source whose schema changed since the plan is refused, not re-planned.
    connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute("alter table public.customers add column loyalty_tier text")
        .await
        .unwrap();
    let out = run(counted(&["copy"])).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "the source's schema changed since plan {id} was made"
        )),
        "{t}"
    );
    assert_eq!(schema_dumps(), 1, "and no new dump");
}

#[tokio::test]
async fn no_rewrite_leaves_references_alone() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut args = vec![
        "run",
        "--yes",
        "--no-rewrite",
        "--bucket-prefix",
        "tms-storage-",
    ];
    for r in supamigrate_sandbox::fixture::REFERENCES {
        args.extend(["--reference", r]);
    }
    let dest = w.join("s3");
    args.extend(["--dest-dir", dest.to_str().unwrap()]);
    let out = ok(cli(&sb, w, &args), "run --no-rewrite").await;
    let t = output_text(&out);
    assert!(t.contains("references: left alone (--no-rewrite)"), "{t}");
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    assert!(walk(&dest.join("tms-storage-driver-documents")) > 0);
    let (src, tgt) = (
        connect(&sb.source_superuser("postgres")).await.unwrap(),
        connect(&sb.target_superuser("tms_production"))
            .await
            .unwrap(),
    );
    for q in [
        "select md5(string_agg(file_path, ',' order by id)) from public.driver_documents",
        "select md5(string_agg(coalesce(pod_file_path, ''), ',' order by id)) from public.shipments",
    ] {
        let (a, b): (String, String) = (
            src.query_one(q, &[]).await.unwrap().get(0),
            tgt.query_one(q, &[]).await.unwrap().get(0),
        );
        assert_eq!(a, b, "{q}: left alone");
    }
}

/// Files under `dir`.
fn walk(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == ".supamigrate-meta") {
                    0
                } else {
                    walk(&p)
                }
            } else {
                1
            }
        })
        .sum()
}
