//! Supabase → standard PostgreSQL, on parsed SQL. Pure: no I/O.
//!
//! Each statement of the dump goes through [`rules::Rules::apply`], which
//! keeps it, rewrites it (editing the parse tree, then deparsing), or drops
//! it, and says why. Every decision lands in the report, with whether it
//! changes how the application behaves.

mod extensions;
mod rules;
mod shim;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use extensions::SEED_EXTENSIONS;

use super::statements::{added, PlannedStatement, Section};
use super::users::{APP_USERS, APP_USERS_POST, USER_COLUMNS};
use crate::catalog::dump::SchemaSource;
use crate::error::{Error, Result};
use crate::sql::{split, Statement};

/// What happens to RLS policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Drop policies and RLS: the runbook's result.
    Drop,
    /// Keep RLS and every policy working: an `auth` schema with `uid()`,
    /// `role()`, `email()`, `jwt()` and NOLOGIN roles anon/authenticated/service_role.
    Shim,
}

impl PolicyMode {
    /// Parses `drop` or `shim`.
    pub fn parse(s: &str) -> Result<PolicyMode> {
        match s {
            "drop" => Ok(PolicyMode::Drop),
            "shim" => Ok(PolicyMode::Shim),
            other => Err(Error::invalid_input(format!("unknown policy mode {other:?}"))
                .with_hint("use --policies shim (keep RLS working) or --policies drop (no RLS, as the runbook)")),
        }
    }
}

/// How to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// RLS policies.
    pub policies: PolicyMode,
    /// The application role grants to anon/authenticated/service_role map to.
    pub app_role: String,
    /// The target's major version (e.g. 15).
    pub target_major: u32,
    /// Extensions the target offers; `None` when converting without a target.
    pub available_extensions: Option<BTreeSet<String>>,
    /// Extensions the user allows to leave behind (`--allow-drop-extension`).
    pub allow_drop_extensions: BTreeSet<String>,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Kept as it is.
    Kept,
    /// Changed.
    Rewritten,
    /// Left out.
    Dropped,
    /// Created by the conversion.
    Added,
}

/// Whether a decision changes what the application sees or can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    /// Plumbing: ownership, platform roles, session settings, syntax.
    None,
    /// The application behaves differently on the target: listed one by one
    /// before anything is written.
    Behaviour,
}

/// One decision of the conversion, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What happened.
    pub action: Action,
    /// The object, e.g. `table public.orders` or `GRANT ALL ON TABLE public.orders TO anon`.
    pub object: String,
    /// Why.
    pub reason: String,
    /// Whether it changes behaviour.
    pub impact: Impact,
}

/// The converted schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// Every statement, pre-data first, in the order they run.
    pub statements: Vec<PlannedStatement>,
    /// Extensions provisioning must create on the target.
    pub extensions: Vec<String>,
    /// Whether the RLS shim (auth schema, API roles) is part of the result.
    pub shim: bool,
    /// Columns left out with a dropped extension (`schema.table.column`): not copied.
    pub dropped_columns: BTreeSet<String>,
    /// Every decision, and why.
    pub report: Vec<Decision>,
}

impl Conversion {
    /// The statements of `section`, in order.
    pub fn section(&self, section: Section) -> impl Iterator<Item = &PlannedStatement> {
        self.statements.iter().filter(move |s| s.section == section)
    }

    /// The SQL of `section`.
    pub fn section_sql(&self, section: Section) -> Vec<String> {
        self.section(section).map(|s| s.sql.clone()).collect()
    }

    /// Reviewable SQL, like the runbook's `03_converted_schema.sql`.
    pub fn sql(&self) -> String {
        let mut s = String::from(
            "-- Converted by supamigrate from a Supabase schema dump.\n\
             -- Review it; `supamigrate schema apply` applies pre-data, then (after the data) post-data.\n\n",
        );
        for section in [Section::PreData, Section::PostData] {
            s.push_str(&format!("-- ===== {} =====\n\n", section.name()));
            for st in self.section(section) {
                s.push_str(&st.sql);
                s.push_str("\n\n");
            }
        }
        s
    }

    /// How many decisions of each action.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
        for r in &self.report {
            *counts.entry(r.action).or_default() += 1;
        }
        counts
    }

    /// The report as text: counts, then every item not kept, grouped by action.
    pub fn report_text(&self) -> String {
        let counts = self.counts();
        let n = |a| counts.get(&a).copied().unwrap_or(0);
        let mut s = format!(
            "conversion: {} kept, {} rewritten, {} dropped, {} added\n",
            n(Action::Kept),
            n(Action::Rewritten),
            n(Action::Dropped),
            n(Action::Added)
        );
        for action in [Action::Added, Action::Rewritten, Action::Dropped] {
            let items: Vec<_> = self.report.iter().filter(|r| r.action == action).collect();
            if items.is_empty() {
                continue;
            }
            s.push_str(&format!("\n{action:?}:\n"));
            for r in items {
                s.push_str(&format!("  {} — {}\n", r.object, r.reason));
            }
        }
        s
    }

    fn note(&mut self, action: Action, object: impl Into<String>, reason: impl Into<String>) {
        let impact = match action {
            Action::Kept => Impact::None,
            Action::Rewritten | Action::Dropped | Action::Added => Impact::Behaviour,
        };
        self.note_with(action, object, reason, impact);
    }

    fn note_with(
        &mut self,
        action: Action,
        object: impl Into<String>,
        reason: impl Into<String>,
        impact: Impact,
    ) {
        self.report.push(Decision {
            action,
            object: object.into(),
            reason: reason.into(),
            impact,
        });
    }

    fn push(&mut self, st: PlannedStatement) {
        self.statements.push(st);
    }
}

/// Converts `src` for a target described by `opts`.
///
/// Fails, before anything else, when the source uses an extension the target
/// does not offer and the user did not allow leaving it behind.
pub fn convert(src: &SchemaSource, opts: &ConvertOptions) -> Result<Conversion> {
    let mut out = Conversion {
        shim: opts.policies == PolicyMode::Shim,
        ..Conversion::default()
    };
    let dropped_objects = extensions::plan(&src.extensions, opts, &mut out)?;
    out.dropped_columns = dropped_objects
        .iter()
        .filter_map(|d| d.strip_prefix("column "))
        .map(str::to_string)
        .collect();
    let rules = rules::Rules {
        opts,
        has_auth_users: src.auth_users_columns.is_some(),
        dropped_objects,
    };
    if out.shim {
        shim::add(&mut out)?;
    }
    for (section, text) in [
        (Section::PreData, &src.pre_data),
        (Section::PostData, &src.post_data),
    ] {
        convert_dump(&rules, section, text, &mut out)?;
    }
    if let Some(columns) = &src.auth_users_columns {
        add_app_users(columns, &mut out)?;
    }
    for def in &src.auth_user_triggers {
        let st = Statement::parse(def)?;
        rules.apply(st, Section::PostData, &mut out)?;
    }
    note_platform(src, &mut out);
    out.statements.sort_by_key(|s| s.section);
    // Identical statements (several API roles mapped to one role) once only.
    let mut seen = BTreeSet::new();
    out.statements
        .retain(|s| seen.insert((s.section, s.sql.clone())));
    Ok(out)
}

fn convert_dump(
    rules: &rules::Rules,
    section: Section,
    text: &str,
    out: &mut Conversion,
) -> Result<()> {
    let (stmts, meta) = split(text)?;
    for m in meta {
        out.note_with(
            Action::Dropped,
            format!("psql meta-command {}", m.0),
            "not SQL (pg_dump 17.6+/16.10+/15.14+ security wrapper)",
            Impact::None,
        );
    }
    for st in stmts {
        rules.apply(st, section, out)?;
    }
    Ok(())
}

/// `public.app_users` in place of `auth.users`: its table in pre-data, its
/// keys first in post-data (foreign keys re-pointed at it need them).
fn add_app_users(columns: &[String], out: &mut Conversion) -> Result<()> {
    out.push(added(super::users::APP_USERS_TABLE, Section::PreData)?);
    let first_post = out
        .statements
        .iter()
        .position(|s| s.section == Section::PostData)
        .unwrap_or(out.statements.len());
    let keys = APP_USERS_POST
        .iter()
        .map(|s| added(s, Section::PostData))
        .collect::<Result<Vec<_>>>()?;
    out.statements.splice(first_post..first_post, keys);
    out.note(
        Action::Added,
        format!("table {APP_USERS}"),
        "replaces auth.users, with the runbook's column set",
    );
    for c in columns {
        match USER_COLUMNS.iter().find(|(from, _)| from == c) {
            Some((from, to)) if from != to => out.note_with(
                Action::Rewritten,
                format!("column auth.users.{from}"),
                format!("becomes {APP_USERS}.{to}"),
                Impact::None,
            ),
            Some(_) => {}
            None => out.note(
                Action::Dropped,
                format!("column auth.users.{c}"),
                if c == "confirmed_at" {
                    "generated from email_confirmed_at and phone_confirmed_at".to_string()
                } else {
                    "Supabase Auth internal, not in app_users".to_string()
                },
            ),
        }
    }
    Ok(())
}

/// Publications, event triggers, bucket settings and Storage policies: the
/// platform's, reported as left behind.
fn note_platform(src: &SchemaSource, out: &mut Conversion) {
    for p in &src.publications {
        out.note(
            Action::Dropped,
            format!("publication {} ({})", p.name, p.tables.join(", ")),
            "serves Supabase Realtime, which the target does not run",
        );
    }
    for e in &src.event_triggers {
        out.note_with(
            Action::Dropped,
            format!("event trigger {e}"),
            "Supabase platform (PostgREST schema reload, extension grants)",
            Impact::None,
        );
    }
    for b in &src.storage_buckets {
        let mut settings = Vec::new();
        if b.public {
            settings.push("public".to_string());
        }
        if let Some(l) = b.file_size_limit {
            settings.push(format!("file_size_limit {l}"));
        }
        if !b.allowed_mime_types.is_empty() {
            settings.push(format!(
                "allowed_mime_types {}",
                b.allowed_mime_types.join(",")
            ));
        }
        if !settings.is_empty() {
            out.note(
                Action::Dropped,
                format!("bucket {} settings: {}", b.id, settings.join(", ")),
                "no S3 equivalent: use bucket policies, Block Public Access or presigned URLs (the objects move in the storage step)",
            );
        }
    }
    for p in &src.storage_policies {
        out.note(
            Action::Dropped,
            format!("policy {p} on storage.objects"),
            "Storage policies have no S3 equivalent: use bucket policies or presigned URLs",
        );
    }
}

#[cfg(test)]
mod tests;
