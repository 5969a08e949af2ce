//! The plan on disk: `plan.json` in the state folder (and `plan --out FILE`).

use std::path::Path;

use super::{MigrationPlan, PLAN_FORMAT};
use crate::error::{Error, Result};

/// The plan's file name in a state folder.
pub const PLAN_FILE: &str = "plan.json";

/// Writes `plan` to `path`, whole or not at all (owner-only: it names the
/// servers).
pub fn save(path: &Path, plan: &MigrationPlan) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let text = to_json(plan)?;
    crate::fsutil::write_atomically(path, text.as_bytes(), 0o600)
}

/// The plan as JSON.
pub fn to_json(plan: &MigrationPlan) -> Result<String> {
    serde_json::to_string_pretty(plan)
        .map_err(|e| Error::internal(format!("serializing the plan: {e}")))
}

/// Reads a plan from JSON, refusing formats this version does not know.
pub fn from_json(text: &str, what: &str) -> Result<MigrationPlan> {
    #[derive(serde::Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(format!("{what} is not a supamigrate plan: {e}"))
            .with_hint("make a new one with `supamigrate plan`")
    })?;
    if head.format > PLAN_FORMAT {
        return Err(Error::invalid_input(format!(
            "{what} was written by a newer supamigrate (plan format {}, this version reads {PLAN_FORMAT})",
            head.format
        ))
        .with_hint("use the supamigrate version that made it"));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(format!("{what} is not a supamigrate plan: {e}"))
            .with_hint("make a new one with `supamigrate plan`")
    })
}

/// Reads `path`; `None` when it does not exist.
pub fn load(path: &Path) -> Result<Option<MigrationPlan>> {
    match std::fs::read_to_string(path) {
        Ok(text) => from_json(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}
