//! Helpers the CLI tests share: run the binary off the async runtime's
//! threads, and read what it printed.

#![allow(dead_code)]

use std::process::{Command, Output};

use supamigrate_sandbox::Sandbox;

/// `supamigrate -q` pointed at the sandbox (source, target, `APP_DB_USER`),
/// with no failpoint or log filter inherited, run from the temp folder, with
/// the sandbox's own state folder (tests run side by side).
pub fn supamigrate(sb: &Sandbox) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("APP_DB_USER", "tms_app")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .arg("--state-dir")
        .arg(sb.dir().join("cli-state"))
        .arg("-q");
    c
}

/// Runs `cmd` to completion on a blocking thread.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .expect("the blocking task finishes")
}

/// stdout then stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and asserts it succeeded, showing its output when it did not.
pub async fn ok(cmd: Command, what: &str) -> Output {
    let out = run(cmd).await;
    assert!(out.status.success(), "{what}: {}", output_text(&out));
    out
}

/// Provisions the sandbox's target and applies pre-data.
pub async fn provision_and_pre_data(sb: &Sandbox) {
    let secrets = tempfile::tempdir().unwrap();
    let mut provision = supamigrate(sb);
    provision
        .args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    ok(provision, "provision").await;
    let mut pre = supamigrate(sb);
    pre.args(["schema", "apply", "--section", "pre-data"]);
    ok(pre, "pre-data").await;
}

/// `run --yes` with its backups and report in `work`.
pub fn run_in(sb: &Sandbox, work: &std::path::Path) -> Command {
    let mut c = supamigrate(sb);
    c.args(["run", "--yes", "--backup-dir"])
        .arg(work.join("backups"))
        .arg("--report-dir")
        .arg(work.join("report"));
    c
}

/// No AWS region from anywhere (environment, profile, configuration files).
pub fn without_aws_region(c: &mut Command) -> &mut Command {
    c.env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
}
