//! Extensions: which the target gets (in the schema they had), which are
//! left behind, and which the user let go with what depends on them.
//!
//! - Offered by the target: created there, in the schema it had on the
//!   source (`extensions`, `public`…). pg_cron is the exception: RDS runs it
//!   in the `postgres` database only, so its jobs are planned apart.
//! - Not offered, and no column of the application holds its type: left
//!   behind, no flag needed. Whatever of the application's code uses it
//!   (functions, triggers, defaults, indexes…) is left out too, each with
//!   its own line (see `reach`).
//! - Not offered, and columns hold its type: their data would be lost. The
//!   plan is refused, naming the columns and their rows, unless the user
//!   passes `--allow-drop-extension`; the columns then leave the schema and
//!   the copy.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Action, Conversion, ConvertOptions, Impact};
use crate::catalog::{Extension, ExtensionConfig};
use crate::error::{Error, Result};
use crate::sql::uses::Name;

/// Extensions every target gets when available: the runbook's.
pub const SEED_EXTENSIONS: &[&str] = &["uuid-ossp", "pgcrypto", "pg_trgm"];

/// Extensions that come with every database.
const BUILTIN_EXTENSIONS: &[&str] = &["plpgsql"];

/// RDS runs pg_cron in one database (`cron.database_name`, `postgres`).
pub const PG_CRON: &str = "pg_cron";

/// An extension the target gets, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedExtension {
    /// Its name.
    pub name: String,
    /// The schema it is created in: the one it had on the source.
    pub schema: String,
}

/// Why an extension's members are not on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gone {
    /// Not offered; nothing of the application's data needs it.
    LeftBehind,
    /// Not offered; the user let it go (`--allow-drop-extension`).
    Dropped,
}

/// The extensions' fate, as the rest of the conversion needs it.
#[derive(Debug, Default)]
pub(super) struct Fate {
    /// Extensions not on the target.
    pub gone: BTreeMap<String, Gone>,
    /// Every extension's functions and relations, by extension.
    pub members: BTreeMap<String, Members>,
    /// Objects the catalog records as depending on a gone extension.
    pub dependents: BTreeMap<String, String>,
}

/// An extension's functions and relations; `builtin_named` are the names
/// of functions a built-in also has.
#[derive(Debug, Default)]
pub(super) struct Members {
    pub functions: BTreeSet<Name>,
    pub relations: BTreeSet<Name>,
    pub builtin_named: BTreeSet<String>,
}

impl Fate {
    /// The gone extension `f` (a function call) belongs to, if any.
    pub fn gone_function(&self, f: &Name) -> Option<(&str, Gone)> {
        self.gone_member(f, |m| &m.functions)
    }

    /// The gone extension relation `r` belongs to, if any.
    pub fn gone_relation(&self, r: &Name) -> Option<(&str, Gone)> {
        self.gone_member(r, |m| &m.relations)
    }

    fn gone_member<'a>(
        &'a self,
        n: &Name,
        set: impl Fn(&Members) -> &BTreeSet<Name>,
    ) -> Option<(&'a str, Gone)> {
        self.gone.iter().find_map(|(ext, g)| {
            let m = self.members.get(ext)?;
            let members = set(m);
            let hit = if n.schema.is_empty() {
                !m.builtin_named.contains(&n.name) && members.iter().any(|x| x.name == n.name)
            } else {
                members.contains(n)
            };
            hit.then_some((ext.as_str(), *g))
        })
    }

    /// Whether the source has extension `ext` and the target gets it.
    pub fn carries(&self, ext: &str) -> bool {
        self.members.contains_key(ext) && !self.gone.contains_key(ext)
    }

    /// Whether `f` is a member of an extension the target gets.
    pub fn carried_function(&self, f: &Name) -> bool {
        self.members
            .iter()
            .any(|(ext, m)| !self.gone.contains_key(ext) && m.functions.contains(f))
    }

    /// Whether `r` is a relation of an extension the target gets.
    pub fn carried_relation(&self, r: &Name) -> bool {
        self.members
            .iter()
            .any(|(ext, m)| !self.gone.contains_key(ext) && m.relations.contains(r))
    }
}

/// Decides which extensions to create and which are gone; refuses, before
/// anything else, extensions whose loss would lose data the user did not
/// let go.
pub(super) fn plan(
    exts: &[Extension],
    opts: &ConvertOptions,
    out: &mut Conversion,
) -> Result<Fate> {
    let mut fate = Fate {
        members: exts
            .iter()
            .map(|e| (e.name.clone(), members_of(e)))
            .collect(),
        ..Fate::default()
    };
    let mut refused = Vec::new();
    for e in exts
        .iter()
        .filter(|e| !BUILTIN_EXTENSIONS.contains(&e.name.as_str()))
    {
        if let Some(columns) = decide(e, opts, out, &mut fate) {
            refused.push((e, columns));
        }
    }
    if !refused.is_empty() {
        return Err(refusal(&refused, opts));
    }
    for s in SEED_EXTENSIONS {
        let present = exts.iter().any(|e| e.name == *s);
        if available(opts, s) && !present {
            out.extensions.push(PlannedExtension {
                name: s.to_string(),
                schema: "extensions".into(),
            });
            out.note_with(
                Action::Added,
                format!("extension {s}"),
                "the runbook enables it on every target",
                Impact::None,
            );
        }
    }
    Ok(fate)
}

fn available(opts: &ConvertOptions, name: &str) -> bool {
    opts.available_extensions
        .as_ref()
        .is_none_or(|a| a.contains(name))
}

fn members_of(e: &Extension) -> Members {
    let names = |list: &[String]| -> BTreeSet<Name> {
        list.iter()
            .filter_map(|q| q.split_once('.').map(|(s, n)| Name::new(s, n)))
            .collect()
    };
    Members {
        functions: names(&e.functions),
        relations: names(&e.relations),
        builtin_named: e
            .builtin_named
            .iter()
            .filter_map(|q| q.split_once('.').map(|(_, n)| n.to_string()))
            .collect(),
    }
}

/// One extension's fate; `Some(columns)` when it is refused (its loss
/// would lose those columns' data).
fn decide<'a>(
    e: &'a Extension,
    opts: &ConvertOptions,
    out: &mut Conversion,
    fate: &mut Fate,
) -> Option<Vec<&'a String>> {
    let columns: Vec<&String> = e
        .dependents
        .iter()
        .filter(|d| d.starts_with("column "))
        .collect();
    if e.name == PG_CRON {
        // Planned with the jobs (see `platform`): never in the application database.
        fate.gone.insert(e.name.clone(), Gone::LeftBehind);
    } else if available(opts, &e.name) {
        out.extensions.push(PlannedExtension {
            name: e.name.clone(),
            schema: e.schema.clone(),
        });
        out.note(
            Action::Kept,
            format!("extension {}", e.name),
            format!(
                "offered by the target; created by provision in schema {}",
                e.schema
            ),
        );
        for c in &e.config {
            config_decision(c, out);
        }
    } else if opts.allow_drop_extensions.contains(&e.name) {
        fate.gone.insert(e.name.clone(), Gone::Dropped);
        out.note_todo(
            Action::Dropped,
            format!("extension {}", e.name),
            "not offered by the target; let go with --allow-drop-extension",
            if columns.is_empty() {
                String::new()
            } else {
                format!(
                    "the data of {} is not copied: keep the backup",
                    list(&columns)
                )
            },
        );
        dependents(e, Gone::Dropped, fate);
        for c in &columns {
            out.note_todo(
                Action::Dropped,
                c.to_string(),
                format!(
                    "typed by extension {}: neither created nor copied (--allow-drop-extension)",
                    e.name
                ),
                "its data stays only in the source and the backup",
            );
        }
    } else if columns.is_empty() {
        fate.gone.insert(e.name.clone(), Gone::LeftBehind);
        out.note_with(
            Action::Dropped,
            format!("extension {}", e.name),
            "not offered by the target, and no column of the application holds its data: left behind",
            if e.dependents.is_empty() { Impact::None } else { Impact::Behaviour },
        );
        dependents(e, Gone::LeftBehind, fate);
    } else {
        return Some(columns);
    }
    None
}

/// The rows the project added to a kept extension's configuration table
/// (or a used configuration sequence): `CREATE EXTENSION` on the target
/// makes only the extension's own, so the copy carries them before the data.
fn config_decision(c: &ExtensionConfig, out: &mut Conversion) {
    let object = format!(
        "{} {} of extension {}",
        if c.sequence {
            "configuration sequence"
        } else {
            "configuration table"
        },
        c.relation,
        c.extension
    );
    match c.rows {
        Some(0) => {}
        Some(_) if c.sequence => {
            out.extension_config.push(c.clone());
            out.note(
                Action::Kept,
                object,
                "its value is set on the target before the data (CREATE EXTENSION starts it again)",
            );
        }
        Some(n) => {
            out.extension_config.push(c.clone());
            out.note(
                Action::Kept,
                object,
                format!(
                    "{n} row(s) the project added are copied before the data (CREATE EXTENSION on the target makes only the extension's own); \
                     the target user needs INSERT on it: where an extension's table belongs to another role (rdsadmin on RDS) the copy makes the target user its owner first, and says so if it may not"
                ),
            );
        }
        None => out.note_todo(
            Action::Dropped,
            object,
            "the source user may not read it, so the rows the project added to it are not known or copied",
            "grant SELECT on it to the migration user and plan again, or copy the rows the project added yourself",
        ),
    }
}

fn dependents(e: &Extension, g: Gone, fate: &mut Fate) {
    // pgmq gone, its shim stands in (`runtime`): what depends on its types
    // or tables is kept, and a call to what the shim lacks is still found
    // (reach: a gone extension's function the shim does not provide).
    if e.name == "pgmq" {
        return;
    }
    let how = match g {
        Gone::Dropped => "dropped with --allow-drop-extension",
        Gone::LeftBehind => "not offered by the target",
    };
    for d in &e.dependents {
        fate.dependents
            .insert(d.clone(), format!("uses extension {} ({how})", e.name));
    }
}

fn list(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for extensions the target lacks whose loss loses data: each
/// with the columns, and the flags that would let them go.
fn refusal(refused: &[(&Extension, Vec<&String>)], opts: &ConvertOptions) -> Error {
    let text = refused
        .iter()
        .map(|(e, columns)| {
            let cols = columns
                .iter()
                .map(|c| {
                    let col = c.trim_start_matches("column ");
                    let table = col.rsplit_once('.').map(|(t, _)| t).unwrap_or(col);
                    match opts.table_rows.get(table) {
                        Some(n) => format!("{col} (about {n} rows)"),
                        None => col.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{}: the data of {cols} would be lost", e.name)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Error::invalid_input(format!(
            "the source uses extensions the target does not offer: {text}"
        ))
        .with_hint(format!(
            "make them available on the target (RDS: see SHOW rds.extensions), or pass {} to migrate without them: those columns are then neither created nor copied",
            refused.iter().map(|(e, _)| format!("--allow-drop-extension {}", e.name)).collect::<Vec<_>>().join(" ")
    ))
}
