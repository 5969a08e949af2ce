//! The project's `../shared` folder (the seed runbook, the Supabase platform
//! kit), and how tests that need it skip when it is absent: one line per
//! skipped test, said on stderr and appended to the skip log that
//! `scripts/test.sh` counts (and fails on when `../shared` is there).

use std::io::Write;
use std::path::PathBuf;

/// `$SUPAMIGRATE_SHARED`, else `../shared` beside the project.
pub fn dir() -> PathBuf {
    match std::env::var_os("SUPAMIGRATE_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// `relative` inside the shared folder.
pub fn path(relative: &str) -> PathBuf {
    dir().join(relative)
}

/// The skip log: `$SUPAMIGRATE_SKIP_LOG`, else `$TMPDIR/supamigrate-skipped.log`.
pub fn skip_log() -> PathBuf {
    std::env::var_os("SUPAMIGRATE_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("supamigrate-skipped.log"))
}

/// Records that `test` is skipped because `why`.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
    {
        // One write of the whole line: appends from parallel tests do not interleave.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// Whether `relative` exists in the shared folder; when not, records that
/// `test` is skipped and returns `false`.
pub fn require(test: &str, relative: &str) -> bool {
    let p = path(relative);
    if p.exists() {
        return true;
    }
    skip(
        test,
        &format!("needs {} (the project's ../shared folder)", p.display()),
    );
    false
}
