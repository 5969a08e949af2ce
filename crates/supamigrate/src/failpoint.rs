//! Failpoints for crash tests: `SUPAMIGRATE_FAILPOINTS=name@N,…` makes the
//! process SIGKILL itself the N-th time (default 1st) it passes `name`;
//! `name@N=sleep:MS` makes it sleep MS milliseconds there instead (a window
//! for a test to restart a server or start a second run). With the variable
//! unset, [`hit`] costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// A batch of COPY data was sent to the target (inside the task's transaction).
pub const COPY_CHUNK: &str = "copy-chunk";
/// A copy task's rows and checkpoint are written, not yet committed.
pub const COPY_BEFORE_COMMIT: &str = "copy-before-commit";
/// A copy task has committed.
pub const COPY_TASK_DONE: &str = "copy-task-done";
/// A post-data statement ran, its record not yet committed.
pub const POST_DATA_BEFORE_COMMIT: &str = "post-data-before-commit";
/// A post-data statement and its record have committed.
pub const POST_DATA_STATEMENT: &str = "post-data-statement";
/// A table was made ready for traffic (ANALYZE, VACUUM) and recorded.
pub const READY_TABLE: &str = "ready-table";
/// A Storage object was uploaded, not yet checked.
pub const STORAGE_OBJECT_UPLOADED: &str = "storage-object-uploaded";
/// A source transaction's changes and position are written on the target,
/// not yet committed (follow).
pub const FOLLOW_BEFORE_COMMIT: &str = "follow-before-commit";
/// A source transaction is committed on the target, not yet acknowledged to
/// the source (follow).
pub const FOLLOW_APPLIED: &str = "follow-applied";
/// The cutover made the roles read-only and recorded it; nothing sent down
/// the stream yet.
pub const CUTOVER_WRITES_STOPPED: &str = "cutover-writes-stopped";
/// The cutover's follow reached its sentinel; sequences and the fast verify
/// not yet done.
pub const CUTOVER_CAUGHT_UP: &str = "cutover-caught-up";
/// The cutover is recorded as finished on the target; the slot and
/// publication not yet dropped on the source.
pub const CUTOVER_RECORDED: &str = "cutover-recorded";
/// An extension's configuration rows and their mark are written on the
/// target, not yet committed.
pub const EXTENSION_CONFIG_BEFORE_COMMIT: &str = "extension-config-before-commit";
/// A part of a schema section too large for one transaction committed.
pub const SCHEMA_PART: &str = "schema-part";
/// While following, a page of changed rows was compared and some found
/// equal; they are not forgotten yet (an async point: a sleep here lets the
/// follow go on applying).
pub const FOLLOW_COMPARED: &str = "follow-compared";
/// A step of `run` finished and its state was saved.
pub const RUN_STEP_DONE: &str = "run-step-done";

/// What a failpoint does when reached.
#[derive(Debug, Clone, Copy)]
enum Action {
    Kill,
    Sleep(u64),
}

static ENABLED: OnceLock<Option<HashMap<String, (u64, Action)>>> = OnceLock::new();
static COUNTS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
static ANY: AtomicBool = AtomicBool::new(true);

fn config() -> &'static Option<HashMap<String, (u64, Action)>> {
    ENABLED.get_or_init(|| {
        let v = std::env::var("SUPAMIGRATE_FAILPOINTS")
            .ok()
            .filter(|v| !v.is_empty());
        if v.is_none() {
            ANY.store(false, Ordering::Relaxed);
        }
        v.map(|v| {
            v.split(',')
                .filter_map(|item| {
                    let (item, action) = match item.split_once('=') {
                        Some((i, a)) => (i, a.trim()),
                        None => (item, "kill"),
                    };
                    let action = match action.strip_prefix("sleep:") {
                        Some(ms) => Action::Sleep(ms.parse().ok()?),
                        None => Action::Kill,
                    };
                    let (name, n) = item.split_once('@').unwrap_or((item, "1"));
                    Some((name.trim().to_string(), (n.trim().parse().ok()?, action)))
                })
                .collect()
        })
    })
}

/// Passes failpoint `name`: SIGKILLs the process when configured to.
pub fn hit(name: &str) {
    if let Some(ms) = reached(name) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// [`hit`] inside a task that shares its thread with others: a sleep here
/// lets them go on.
pub async fn hit_async(name: &str) {
    if let Some(ms) = reached(name) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Counts a pass of `name`; kills the process, or says how long to sleep,
/// when this is the configured pass.
fn reached(name: &str) -> Option<u64> {
    if !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let points = config().as_ref()?;
    let &(at, action) = points.get(name)?;
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts
        .get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_insert(0);
    *n += 1;
    if *n == at {
        match action {
            Action::Kill => {
                eprintln!("failpoint {name}@{at}: SIGKILL");
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
            Action::Sleep(ms) => {
                eprintln!("failpoint {name}@{at}: sleeping {ms} ms");
                return Some(ms);
            }
        }
    }
    None
}
