//! Passwords never reach a child process's argv or environment, nor the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use supamigrate::connect::{connect, find_pg_tool, probe, PgCommand};
use supamigrate_sandbox::Sandbox;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_in_child_argv_environment_or_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    // Global, not a thread's default: the only subscriber of this test
    // binary, so no callsite's cached interest (decided on another test's
    // thread, with no subscriber) can keep an event from it.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    // The driver logs through `log` (statement text at debug): capture it too.
    tracing_log::LogTracer::init().unwrap();

    // Scale 0: the whole Supabase-like set-up and schema, no data (fast).
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let source = sb.source_url();
    let target = sb.target_url();
    let secrets = [
        source.password.as_ref().unwrap().expose().to_string(),
        target.password.as_ref().unwrap().expose().to_string(),
        sb.source_cluster()
            .superuser_password()
            .expose()
            .to_string(),
    ];
    probe(&source).await.unwrap();
    probe(&target).await.unwrap();
    connect(&source)
        .await
        .unwrap()
        .batch_execute("select 1")
        .await
        .unwrap();

    // A real libpq child, inspected through /proc while it runs.
    let psql = find_pg_tool("psql").expect("psql installed");
    let mut pc = PgCommand::new(&psql, &source).unwrap();
    let child = pc
        .command()
        .args(["-X", "-At", "-c", "select current_user, pg_sleep(1)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Read once psql itself runs (right after spawn, exec may not have happened).
    let mut cmdline = Vec::new();
    for _ in 0..200 {
        cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("pg_sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("pg_sleep"),
        "read psql's own argv"
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "psql connected through the passfile");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("postgres|"));
    let cmdline = String::from_utf8_lossy(&cmdline);
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("PGPASSFILE="),
        "password passed through a passfile"
    );
    for s in &secrets {
        assert!(!cmdline.contains(s.as_str()), "password in argv: {cmdline}");
        assert!(
            !environ.contains(s.as_str()),
            "password in the child's environment"
        );
    }
    drop(pc);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("installing the RDS-like target"),
        "logs were captured"
    );
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "password in the logs");
    }
}
