//! Helpers the CLI tests share: run the binary off the async runtime's
//! threads, and read what it printed.

#![allow(dead_code)]

use std::process::{Command, Output};

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
