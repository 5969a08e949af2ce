//! Extensions: which the target gets, and which (allowed by the user) are
//! left behind with everything that depends on them. Refused before any
//! other decision when the target lacks one the user did not let go.

use std::collections::BTreeSet;

use super::{Action, Conversion, ConvertOptions};
use crate::catalog::Extension;
use crate::error::{Error, Result};

/// Extensions every target gets when available: the runbook's.
pub const SEED_EXTENSIONS: &[&str] = &["uuid-ossp", "pgcrypto", "pg_trgm"];

/// Extensions that come with every database.
const BUILTIN_EXTENSIONS: &[&str] = &["plpgsql"];

/// Decides which extensions to create, and fails on unsupported ones not allowed
/// to be dropped. Returns the objects that depend on dropped extensions.
pub(super) fn plan(
    exts: &[Extension],
    opts: &ConvertOptions,
    out: &mut Conversion,
) -> Result<BTreeSet<String>> {
    let mut refused = Vec::new();
    let mut dropped_objects = BTreeSet::new();
    let available = |name: &str| {
        opts.available_extensions
            .as_ref()
            .is_none_or(|a| a.contains(name))
    };
    for e in exts
        .iter()
        .filter(|e| !BUILTIN_EXTENSIONS.contains(&e.name.as_str()))
    {
        if available(&e.name) {
            out.extensions.push(e.name.clone());
            out.note(
                Action::Kept,
                format!("extension {}", e.name),
                "available on the target; created by provision",
            );
        } else if opts.allow_drop_extensions.contains(&e.name) {
            out.note(
                Action::Dropped,
                format!("extension {}", e.name),
                "not available on the target; allowed by --allow-drop-extension",
            );
            for d in &e.dependents {
                dropped_objects.insert(d.clone());
                out.note(
                    Action::Dropped,
                    d.clone(),
                    format!("depends on extension {}", e.name),
                );
            }
        } else {
            refused.push(e);
        }
    }
    if !refused.is_empty() {
        return Err(refusal(&refused));
    }
    for s in SEED_EXTENSIONS {
        if available(s) && !out.extensions.iter().any(|e| e == s) {
            out.extensions.push(s.to_string());
            out.note_with(
                Action::Added,
                format!("extension {s}"),
                "the runbook enables it on every target",
                super::Impact::None,
            );
        }
    }
    Ok(dropped_objects)
}

/// The error for extensions the target lacks: each with what uses it, and the flags that would let them go.
fn refusal(refused: &[&Extension]) -> Error {
    let list = refused
        .iter()
        .map(|e| {
            if e.dependents.is_empty() {
                format!("{} (nothing depends on it)", e.name)
            } else {
                format!("{} (used by {})", e.name, e.dependents.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Error::invalid_input(format!(
            "the source uses extensions the target does not offer: {list}"
        ))
        .with_hint(format!(
            "make them available on the target (RDS: see SHOW rds.extensions), or pass {} to migrate without them and drop what depends on them",
            refused.iter().map(|e| format!("--allow-drop-extension {}", e.name)).collect::<Vec<_>>().join(" ")
    ))
}
