//! Failpoints for crash tests: `SUPAMIGRATE_FAILPOINTS=name@N,…` makes the
//! process SIGKILL itself the N-th time (default 1st) it passes `name`. With
//! the variable unset, [`hit`] costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

static ENABLED: OnceLock<Option<HashMap<String, u64>>> = OnceLock::new();
static COUNTS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
static ANY: AtomicBool = AtomicBool::new(true);

fn config() -> &'static Option<HashMap<String, u64>> {
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
                    let (name, n) = item.split_once('@').unwrap_or((item, "1"));
                    Some((name.trim().to_string(), n.trim().parse().ok()?))
                })
                .collect()
        })
    })
}

/// Passes failpoint `name`: SIGKILLs the process when configured to.
pub fn hit(name: &str) {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    let Some(points) = config() else {
        return;
    };
    let Some(&at) = points.get(name) else {
        return;
    };
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts
        .get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_insert(0);
    *n += 1;
    if *n == at {
        eprintln!("failpoint {name}@{at}: SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
