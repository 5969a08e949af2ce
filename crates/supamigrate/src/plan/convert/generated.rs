//! Stored generated columns whose rows hold a value their expression no
//! longer gives (the function the expression calls was redefined after the
//! rows were written). A copy cannot carry such a value into a generated
//! column: the target computes it again. The user chooses, once, before
//! anything is written.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Action, Conversion, Impact};
use crate::catalog::data::GeneratedColumn;
use crate::error::{Error, Result};

/// What to do with stale generated columns (`--stale-generated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratedChoice {
    /// The target computes the values again: the stale rows change.
    Recompute,
    /// The column becomes a plain column holding the source's values.
    Keep,
}

impl GeneratedChoice {
    /// `recompute` / `keep`.
    pub fn name(self) -> &'static str {
        match self {
            GeneratedChoice::Recompute => "recompute",
            GeneratedChoice::Keep => "keep",
        }
    }
}

/// Decides; returns the columns that become plain (`schema.table.column`).
pub(super) fn plan(
    columns: &[GeneratedColumn],
    choice: Option<GeneratedChoice>,
    out: &mut Conversion,
) -> Result<BTreeSet<String>> {
    let stale: Vec<&GeneratedColumn> = columns.iter().filter(|c| c.stale_rows > 0).collect();
    if stale.is_empty() {
        return Ok(BTreeSet::new());
    }
    let list = stale
        .iter()
        .map(|c| format!("{}.{} ({} rows)", c.table, c.column, c.stale_rows))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(choice) = choice else {
        return Err(Error::invalid_input(format!(
            "stored generated columns hold values their expression no longer gives (the function it calls changed after the rows were written): {list}"
        ))
        .with_hint("choose one: --stale-generated recompute (the target computes them again, so those rows change) or --stale-generated keep (the columns become plain columns holding the source's values)"));
    };
    let mut plain = BTreeSet::new();
    for c in stale {
        let object = format!("generated column {}.{}", c.table, c.column);
        match choice {
            GeneratedChoice::Recompute => {
                out.recomputed_generated
                    .insert(format!("{}.{}", c.table, c.column));
                out.note_todo(
                Action::Rewritten,
                object,
                format!(
                    "{} rows hold a value GENERATED ALWAYS AS ({}) no longer gives; the target computes it again (--stale-generated recompute)",
                    c.stale_rows, c.expression
                ),
                "nothing, if the new values are right; else restore the old ones from the backup",
                )
            }
            GeneratedChoice::Keep => {
                plain.insert(format!("{}.{}", c.table, c.column));
                out.note_with(
                    Action::Rewritten,
                    object,
                    format!(
                        "becomes a plain column holding the source's values ({} rows differ from {}): --stale-generated keep",
                        c.stale_rows, c.expression
                    ),
                    Impact::Behaviour,
                );
            }
        }
    }
    Ok(plain)
}
