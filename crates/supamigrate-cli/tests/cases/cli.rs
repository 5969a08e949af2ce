//! The `supamigrate` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    for var in [
        "SUPABASE_DB_URL",
        "RDS_URL",
        "RDS_HOST",
        "RDS_PASSWORD",
        "SUPABASE_PROJECT_REF",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Removes the sandbox when the test ends, however it ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = bin()
            .args(["-q", "sandbox", "stop", "--remove", "--dir"])
            .arg(&self.0)
            .output();
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn sandbox_dir() -> (Cleanup, PathBuf) {
    let base = tempfile::Builder::new()
        .prefix("supamigrate-cli-")
        .tempdir()
        .unwrap()
        .keep();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = base.join("sandbox");
    (Cleanup(dir.clone()), dir)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().next() != Some("Z"))
        })
        .unwrap_or(false)
}

fn pids(status: &str) -> Vec<i32> {
    status
        .lines()
        .filter_map(|l| l.split("pid ").nth(1))
        .filter_map(|rest| rest.split(',').next()?.trim().parse().ok())
        .collect()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn sandbox_start_eval_psql_check_stop() {
    let (_cleanup, dir) = sandbox_dir();
    let start = run(bin()
        .args(["-vv", "sandbox", "start", "--scale", "1", "--dir"])
        .arg(&dir)
        .env("RUST_LOG", "trace"));
    let exports = text(&start.stdout);
    assert!(
        exports.lines().all(|l| l.starts_with("export ")),
        "stdout is only export lines:\n{exports}"
    );
    for var in [
        "SUPABASE_DB_URL",
        "RDS_URL",
        "SUPABASE_PROJECT_REF",
        "SUPAMIGRATE_STORAGE_DIR",
    ] {
        assert!(
            exports.contains(&format!("export {var}='")),
            "{var} exported"
        );
    }

    // eval "$(supamigrate sandbox start)"; psql "$SUPABASE_DB_URL" -c '…'
    let script = format!(
        "eval \"$(cat {})\" && psql \"$SUPABASE_DB_URL\" -XAtc 'select count(*) from public.trips'",
        write_file(dir.parent().unwrap(), "exports.sh", &exports).display()
    );
    let psql = run(Command::new("bash").args(["-c", &script]));
    let trips: i64 = text(&psql.stdout).trim().parse().unwrap();
    assert!(trips > 0, "trips has data");

    // check, with the exported environment.
    let env: Vec<(String, String)> = exports
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let mut check = bin();
    check.args(["-vv", "check"]).env("RUST_LOG", "trace");
    for (k, v) in &env {
        check.env(k, v);
    }
    let checked = run(&mut check);
    let report = text(&checked.stdout);
    assert!(
        report.contains("PostgreSQL 15") || report.contains("PostgreSQL 1"),
        "{report}"
    );
    assert!(report.contains("postgres (not superuser)"), "{report}");
    assert!(
        report.contains("tms_production does not exist yet"),
        "{report}"
    );

    // No password in any log output, at the most verbose level.
    let passwords: Vec<String> = env
        .iter()
        .filter(|(k, _)| k.ends_with("_URL"))
        .map(|(_, url)| {
            url.split("://")
                .nth(1)
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .split(':')
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(passwords.len(), 2);
    for p in &passwords {
        for (what, out) in [
            ("start stderr", &start.stderr),
            ("check stdout", &checked.stdout),
            ("check stderr", &checked.stderr),
        ] {
            assert!(
                !text(out).contains(p.as_str()),
                "a password appears in {what}"
            );
        }
    }

    // status, then stop: no process left behind.
    let status = text(&run(bin().args(["sandbox", "status", "--dir"]).arg(&dir)).stdout);
    let running = pids(&status);
    assert_eq!(running.len(), 2, "{status}");
    assert!(running.iter().all(|p| alive(*p)));
    run(bin().args(["sandbox", "stop", "--dir"]).arg(&dir));
    assert!(
        running.iter().all(|p| !alive(*p)),
        "a postmaster survived sandbox stop"
    );
    let status = text(&run(bin().args(["sandbox", "status", "--dir"]).arg(&dir)).stdout);
    assert!(
        status.contains("source: stopped") && status.contains("target: stopped"),
        "{status}"
    );

    // start again: same data, servers back.
    let again = run(bin().args(["-q", "sandbox", "start", "--dir"]).arg(&dir));
    assert!(text(&again.stdout).contains("export SUPABASE_DB_URL="));
    let status = text(&run(bin().args(["sandbox", "status", "--dir"]).arg(&dir)).stdout);
    assert_eq!(pids(&status).len(), 2, "{status}");
    // A different scale on the same directory is refused, nothing changed.
    let refused = bin()
        .args(["sandbox", "start", "--scale", "2", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("hint:"));

    run(bin()
        .args(["sandbox", "stop", "--remove", "--dir"])
        .arg(&dir));
    assert!(!dir.exists());
    assert!(pids(&status).iter().all(|p| !alive(*p)));
}

#[test]
fn bad_input_exits_2_with_a_hint() {
    // (environment, what stderr must say)
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "no source database given"),
        (
            &[("SUPABASE_DB_URL", "postgresql://u@h/db")],
            "no target database given",
        ),
        (
            &[
                ("SUPABASE_DB_URL", "mysql://root@h/db"),
                ("RDS_URL", "postgresql://u@h/db"),
            ],
            "SUPABASE_DB_URL: connection string is neither",
        ),
        (
            &[
                ("SUPABASE_DB_URL", "postgresql://u@h/db"),
                ("RDS_URL", "postgresql://u:pw@h/db?sslmode=verify-full"),
            ],
            "needs sslrootcert",
        ),
    ];
    for (env, needle) in cases {
        let mut c = bin();
        c.arg("check").current_dir(std::env::temp_dir());
        for (k, v) in *env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(needle), "{env:?}: {err}");
        assert!(err.contains("hint:"), "{env:?}: {err}");
    }

    // A configuration file with a typo is named.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "supamigrate.toml", "[target]\nhots = \"x\"\n");
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("supamigrate.toml is not valid"),
        "{}",
        text(&out.stderr)
    );

    // Status of a directory that holds no sandbox.
    let out = bin()
        .args(["sandbox", "status", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no sandbox in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unreachable_server_is_reported_per_side() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin()
        .arg("check")
        .current_dir(std::env::temp_dir())
        .env(
            "SUPABASE_DB_URL",
            format!("postgresql://postgres:hunter2@127.0.0.1:{port}/postgres?connect_timeout=2"),
        )
        .env(
            "RDS_URL",
            format!(
                "postgresql://postgres:hunter3@127.0.0.1:{port}/tms_production?connect_timeout=2"
            ),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("source: postgresql://postgres@127.0.0.1"),
        "{all}"
    );
    assert!(
        all.contains("check that the host and port are right"),
        "{all}"
    );
    assert!(
        !all.contains("hunter2") && !all.contains("hunter3"),
        "{all}"
    );
}

fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[tokio::test]
async fn schema_apply_refuses_an_unsupported_extension_with_exit_2() {
    use supamigrate::connect::connect;
    let sb = supamigrate_sandbox::Sandbox::ephemeral(0)
        .await
        .expect("sandbox starts");
    connect(&sb.source_superuser("postgres"))
        .await
        .unwrap()
        .batch_execute(
            "create extension hstore with schema extensions; \
             create table public.tagged (id int primary key, tags extensions.hstore);",
        )
        .await
        .unwrap();
    sb.set_target_allowed_extensions(&["pgcrypto", "uuid-ossp", "pg_trgm"])
        .await
        .unwrap();
    let env = [
        ("SUPABASE_DB_URL", sb.source_url().to_url_with_password()),
        ("RDS_URL", sb.target_url().to_url_with_password()),
    ];
    for args in [&["schema", "apply"][..], &["provision"][..]] {
        let out = tokio::task::spawn_blocking({
            let env = env.clone();
            move || {
                bin()
                    .args(args)
                    .envs(env)
                    .current_dir(std::env::temp_dir())
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("extensions the target does not offer: hstore"),
            "{err}"
        );
        assert!(
            err.contains("hint: ") && err.contains("--allow-drop-extension hstore"),
            "{err}"
        );
    }
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "nothing was created on the target"
    );
}

#[test]
fn a_closed_stdout_ends_quietly_without_a_panic() {
    let script = format!(
        "'{}' --help | head -c 10 >/dev/null",
        env!("CARGO_BIN_EXE_supamigrate")
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let err = text(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}
