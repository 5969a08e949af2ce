//! `supamigrate run` end to end on the sandbox: a failing step (an extension
//! the target lacks) stops the run with nothing written; then a run SIGKILLed
//! after every step boundary resumes each time and ends green; the HTML report
//! is rendered by headless Chromium and shows what happened.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use supamigrate_sandbox::Sandbox;

use crate::common::{output_text, run};

/// `supamigrate -q <command>` against the sandbox, in `work`.
fn cli(sb: &Sandbox, work: &Path, command: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("SUPABASE_PROJECT_REF", "sbxtmsprojectref0001")
        .env("APP_DB_USER", "tms_app")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .current_dir(work)
        .args(["-q", command]);
    if command != "preflight" {
        // The fixture's Storage choices: the runbook's columns and buckets.
        for r in supamigrate_sandbox::fixture::REFERENCES {
            c.args(["--reference", r]);
        }
        c.args([
            "--bucket-prefix",
            supamigrate_sandbox::fixture::BUCKET_PREFIX,
        ]);
    }
    c
}

fn bin(sb: &Sandbox, work: &Path) -> Command {
    let mut c = cli(sb, work, "run");
    c.arg("--source-dir")
        .arg(sb.storage_dir())
        .arg("--dest-dir")
        .arg(work.join("s3"))
        .args(["--jobs", "2", "--yes"]);
    c
}

fn done_steps(work: &Path) -> usize {
    std::fs::read(work.join(".supamigrate/run.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["done"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[tokio::test]
async fn run_stops_cleanly_resumes_after_every_kill_and_reports() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A column whose data needs an extension (citext).
    supamigrate::connect::connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute(
            "create extension citext with schema extensions; \
             create table public.contacts (id int primary key, email extensions.citext); \
             insert into public.contacts values (1, 'A@example.com');",
        )
        .await
        .unwrap();

    // The plan names every step, object and reference, and changes nothing.
    let plan = cli(&sb, w, "plan");
    let out = run(plan).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    for want in [
        "11. report",
        "Added table public.app_users",
        "foreign key to auth.users now references public.app_users",
        "Storage: 625 objects",
        "bucket pod-documents → tms-storage-pod-documents",
        "references: 2 column(s) will be rewritten once the data is copied",
        "Nothing was changed.",
    ] {
        assert!(t.contains(want), "plan shows {want:?}: {t}");
    }
    assert!(!sb.target_database_exists().await.unwrap());

    // A failing step: citext, which a column of the source holds, is not
    // offered by the target.
    sb.set_target_allowed_extensions(&["plpgsql", "pgcrypto", "uuid-ossp", "pg_trgm"])
        .await
        .unwrap();
    let out = run(bin(&sb, w)).await;
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("→ preflight") && t.contains("citext"), "{t}");
    assert!(
        t.contains("--allow-drop-extension citext"),
        "the fix is named: {t}"
    );
    assert!(!t.contains("→ backup"), "no later step ran: {t}");
    let stopped = std::fs::read_to_string(w.join("supamigrate-report/report.html")).unwrap();
    assert!(
        stopped.contains("✗ stopped at preflight") && stopped.contains("citext"),
        "the report says where and why the run stopped"
    );
    let out = run(cli(&sb, w, "preflight")).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "✗ schema conversion: the source uses extensions the target does not offer: citext: the data of public.contacts.email"
        ),
        "{t}"
    );
    assert!(
        t.contains("    fix: ") && t.contains("✓ source connection") && t.contains("✓ pg_dump"),
        "{t}"
    );
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "the target is untouched"
    );
    assert_eq!(done_steps(w), 0);

    // Fixed; now every run is killed right after finishing one step.
    sb.set_target_allowed_extensions(&["plpgsql", "pgcrypto", "uuid-ossp", "pg_trgm", "citext"])
        .await
        .unwrap();
    let steps = supamigrate::steps::Step::ALL.len();
    for k in 1..=steps {
        let mut c = bin(&sb, w);
        c.env("SUPAMIGRATE_FAILPOINTS", "run-step-done@1");
        let out = run(c).await;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "run {k}: {}",
            output_text(&out)
        );
        assert_eq!(done_steps(w), k, "run {k} finished exactly one more step");
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(t.matches("(done by an earlier run)").count(), k - 1, "{t}");
    }
    let out = run(bin(&sb, w)).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("(done by an earlier run)").count(), steps, "{t}");
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    assert!(t.contains("  [x] Reset sequences"), "{t}");
    assert!(
        t.contains("  [you] Deploy updated Edge Functions to Lambda: deploy each Edge Function"),
        "{t}"
    );
    // What verify --app proved, ticked with the check; nothing is "manual".
    assert!(
        t.contains("  [x] Verify user authentication (verify --app: the sign-in data of all"),
        "{t}"
    );
    assert!(
        t.contains("  [x] Update database connection strings (verify --app: written to"),
        "{t}"
    );
    assert!(
        !t.contains("[manual]") && !t.contains("no tool can do this"),
        "{t}"
    );
    assert!(t.contains("application: "), "{t}");

    // The report, as a browser shows it.
    let html = w.join("supamigrate-report/report.html");
    assert!(html.exists());
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("chromium is installed (scripts/setup.sh installs it)");
    let dom = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        "✓ Migration complete",
        "☑ Backup Supabase database",
        "☑ Test backup restoration",
        "☑ Import users to app_users",
        "☑ Update file path references",
        "Deploy updated Edge Functions to Lambda (yours: deploy each Edge Function",
        "☑ Verify user authentication (verify --app",
        "Each user's access (RLS)",
        "<td>users-and-data</td>",
        "public.location_history",
        "<svg",
        "MB/s</text>",
        "auth.users → public.app_users",
        "✓ MATCH",
        "id=\"conversion\"",
        "everything matches",
    ] {
        assert!(dom.contains(want), "the rendered report shows {want:?}");
    }
    assert!(!dom.contains("✗ MISMATCH"));
    assert!(!dom.contains("<script"), "self-contained, no scripts");
    for secret in [
        sb.source_url().password.unwrap().expose().to_string(),
        sb.target_url().password.unwrap().expose().to_string(),
    ] {
        assert!(!dom.contains(&secret));
        let json = std::fs::read_to_string(w.join("supamigrate-report/report.json")).unwrap();
        assert!(!json.contains(&secret));
    }
}

#[tokio::test]
async fn demo_ends_green_and_prints_the_report_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.args(["-q", "demo", "--dir"])
        .arg(dir.path())
        .env_remove("SUPABASE_DB_URL")
        .env_remove("RDS_URL")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG");
    let out = run(c).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    let report = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("report/report.html");
    assert!(t.contains(&format!("report: {}", report.display())), "{t}");
    assert!(report.exists());
    assert!(
        t.contains("storage: uploaded to a local S3 server (moto) at http://127.0.0.1:"),
        "{t}"
    );
    assert!(t.contains("625 Storage objects"), "{t}");
    // The application's checks, in the summary and the report.
    assert!(
        t.contains("application: 120 user(s) in ")
            && t.contains("22 principal(s) × 28 RLS table(s) compared"),
        "{t}"
    );
    assert!(
        t.contains("[x] Verify user authentication (verify --app"),
        "{t}"
    );
    assert!(!t.contains("no tool can do this"), "{t}");
    let html = std::fs::read_to_string(&report).unwrap();
    for want in [
        "Logins",
        "Each user&#x27;s access (RLS)",
        "Query plans",
        "☑ Performance testing",
    ] {
        assert!(
            html.contains(want) || html.contains(&want.replace("&#x27;", "'")),
            "{want}"
        );
    }
    assert!(!html.contains("no tool can do this"));
    assert!(
        !dir.path().join("sandbox").exists(),
        "the demo removes its sandbox"
    );
}

/// The demo started in a folder the postgres OS user cannot reach (inside
/// a home of mode 700, like `/root`, or a `mktemp -d` folder): the clusters
/// go where it can, the report stays in the user's folder, and it ends green.
#[tokio::test]
async fn demo_starts_from_a_private_folder() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let work = home.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.args(["demo"])
        .current_dir(&work)
        .env_remove("SUPABASE_DB_URL")
        .env_remove("RDS_URL")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG");
    let out = run(c).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("✓ migration complete: data equal; 5 policies left behind"),
        "{t}"
    );
    assert!(
        t.contains("the clusters go there"),
        "says where the clusters are: {t}"
    );
    assert!(
        work.join("supamigrate-demo/report/report.html").exists(),
        "{t}"
    );
}

/// `run --follow`: the copy under a slot, then the run follows the source
/// while it keeps changing, until `cutover` (another process) switches
/// over; verify and the report come after, green.
#[tokio::test]
async fn run_follow_waits_for_the_cutover_then_verifies() {
    use supamigrate::connect::connect;
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute("create table public.fw_run (id bigint primary key, v text)")
        .await
        .unwrap();
    let mut r = bin(&sb, work.path());
    r.arg("--follow")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let runner = r.spawn().unwrap();
    let tgt_admin = sb.target_superuser("tms_production");
    // Writes while the run copies and follows, until the copy is done.
    let mut i = 0i64;
    loop {
        app.execute("insert into public.fw_run values ($1, 'during')", &[&i])
            .await
            .unwrap();
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let following = match connect(&tgt_admin).await {
            Ok(t) => t
                .query_opt("select copy_done from supamigrate.follow", &[])
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.get::<_, bool>(0)),
            Err(_) => false,
        };
        if following && i > 20 {
            break;
        }
        assert!(i < 3000, "the run never reached its follow");
    }
    for j in i..i + 50 {
        app.execute(
            "insert into public.fw_run values ($1, 'after the copy')",
            &[&j],
        )
        .await
        .unwrap();
    }
    // The cutover runs beside the run once it follows (before, the run
    // holds the migration lock alone: post-data, Storage).
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    for k in 0.. {
        let active: i64 = admin
            .query_one(
                "select count(*) from pg_replication_slots where active and slot_name like 'supamigrate%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if active == 1 {
            break;
        }
        assert!(k < 1200, "the run never followed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut cut = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    cut.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env_remove("RUST_LOG")
        .current_dir(work.path())
        .args(["-q", "cutover", "--yes"]);
    let out = run(cut).await;
    assert!(out.status.success(), "cutover: {}", output_text(&out));
    let done = tokio::task::spawn_blocking(move || runner.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        done.status.success(),
        "run --follow: {}",
        output_text(&done)
    );
    let tgt = connect(&tgt_admin).await.unwrap();
    let n: i64 = tgt
        .query_one("select count(*) from public.fw_run", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n,
        i + 50,
        "every row written during the copy and the follow"
    );
}
