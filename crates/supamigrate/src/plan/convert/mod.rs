//! Supabase → standard PostgreSQL, on parsed SQL. Pure: no I/O.
//!
//! Each statement of the dump goes through [`rules::Rules::apply`], which
//! keeps it, rewrites it (editing the parse tree, then deparsing), or drops
//! it, and says why. Every decision lands in the report, with whether it
//! changes how the application behaves.

mod access;
mod comments;
mod compat;
mod defaults;
mod extensions;
mod generated;
mod platform;
mod reach;
mod rules;
mod runtime;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use access::{AccessEffect, RestrictiveChoice};
pub use extensions::{PlannedExtension, PG_CRON, SEED_EXTENSIONS};
pub use generated::GeneratedChoice;
pub use platform::{CronPlan, PlannedJob, CRON_DATABASE};
pub use reach::{PlatformSchema, PLATFORM};
pub use runtime::Shim;

use super::statements::{PlannedStatement, Section};
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
    /// What to do with stored generated columns whose rows are stale.
    pub stale_generated: Option<GeneratedChoice>,
    /// Estimated rows per table (`schema.table`), for messages.
    pub table_rows: BTreeMap<String, i64>,
    /// The target database (pg_cron jobs are scheduled into it).
    pub target_database: String,
    /// What a restrictive policy the target cannot keep becomes.
    pub restrictive: RestrictiveChoice,
    /// Restrictive policies the user lets go although access widens
    /// (`schema.table.policy` or the policy's name).
    pub allow_wider_access: BTreeSet<String>,
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
    /// What the user must do about it ("" when nothing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub todo: String,
    /// What it does to who may read or change what.
    #[serde(default, skip_serializing_if = "AccessEffect::is_unchanged")]
    pub access: AccessEffect,
}

/// The converted schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// Every statement, pre-data first, in the order they run.
    pub statements: Vec<PlannedStatement>,
    /// Extensions provisioning must create on the target, in their schemas.
    pub extensions: Vec<PlannedExtension>,
    /// pg_cron jobs provisioning schedules (RDS runs pg_cron in the
    /// `postgres` database, into this one).
    pub cron: Option<CronPlan>,
    /// Stored generated columns that become plain columns holding the
    /// source's values (`schema.table.column`, `--stale-generated keep`).
    pub plain_generated: BTreeSet<String>,
    /// Columns whose default is removed: it uses an extension the target
    /// does not get (`schema.table.column`).
    #[serde(default)]
    pub dropped_defaults: BTreeSet<String>,
    /// Stale generated columns the target computes again
    /// (`--stale-generated recompute`): their values differ on purpose.
    #[serde(default)]
    pub recomputed_generated: BTreeSet<String>,
    /// Whether the RLS shim (auth schema, API roles) is part of the result.
    pub shim: bool,
    /// Supabase Auth's tables beyond `auth.users` that move as tables
    /// (names in `auth`).
    #[serde(default)]
    pub auth_tables: Vec<String>,
    /// Columns left out with a dropped extension (`schema.table.column`): not copied.
    pub dropped_columns: BTreeSet<String>,
    /// Kept extensions' configuration tables and sequences holding what the
    /// project added: the copy carries them before the data.
    #[serde(default)]
    pub extension_config: Vec<crate::catalog::ExtensionConfig>,
    /// Every decision, and why.
    pub report: Vec<Decision>,
}

/// What of the application the plan leaves behind, by kind: objects it
/// left out that the application sees (not Supabase's plumbing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBehind {
    /// Functions and procedures.
    pub functions: usize,
    /// RLS policies.
    pub policies: usize,
    /// pg_cron jobs.
    pub jobs: usize,
    /// Triggers.
    pub triggers: usize,
    /// Views and materialized views.
    pub views: usize,
}

impl LeftBehind {
    /// Nothing of the application was left out.
    pub fn is_empty(&self) -> bool {
        *self == LeftBehind::default()
    }

    /// `3 functions, 1 policy, 1 pg_cron job`.
    pub fn describe(&self) -> String {
        [
            (self.functions, "function", "functions"),
            (self.policies, "policy", "policies"),
            (self.jobs, "pg_cron job", "pg_cron jobs"),
            (self.triggers, "trigger", "triggers"),
            (self.views, "view", "views"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

impl Conversion {
    /// What of the application the plan leaves behind (decisions that drop
    /// an object the application sees), by kind.
    pub fn left_behind(&self) -> LeftBehind {
        let mut l = LeftBehind::default();
        for d in self
            .report
            .iter()
            .filter(|d| d.action == Action::Dropped && d.impact == Impact::Behaviour)
        {
            let o = d.object.as_str();
            let n = if o.starts_with("function ") || o.starts_with("procedure ") {
                &mut l.functions
            } else if o.starts_with("policy ") {
                &mut l.policies
            } else if o.starts_with("pg_cron job ") {
                &mut l.jobs
            } else if o.starts_with("trigger ") {
                &mut l.triggers
            } else if o.starts_with("view ") || o.starts_with("materialized view ") {
                &mut l.views
            } else {
                continue;
            };
            *n += 1;
        }
        l
    }

    /// The statements of `section`, in order.
    pub fn section(&self, section: Section) -> impl Iterator<Item = &PlannedStatement> {
        self.statements.iter().filter(move |s| s.section == section)
    }

    /// The materialized views post-data refreshes (those the source has
    /// populated), dependencies first: each one's name and statement.
    pub fn matview_refreshes(&self) -> Vec<(String, &str)> {
        self.section(Section::PostData)
            .filter_map(|s| {
                let st = Statement::parse(&s.sql).ok()?;
                match st.node()? {
                    pg_query::NodeEnum::RefreshMatViewStmt(r) => Some((
                        crate::sql::rangevar_name(r.relation.as_ref()?),
                        s.sql.as_str(),
                    )),
                    _ => None,
                }
            })
            .collect()
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
                if !r.todo.is_empty() {
                    s.push_str(&format!("      to do: {}\n", r.todo));
                }
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
            todo: String::new(),
            access: AccessEffect::Unchanged,
        });
    }

    /// A decision the user must act on: `todo` says how.
    fn note_todo(
        &mut self,
        action: Action,
        object: impl Into<String>,
        reason: impl Into<String>,
        todo: impl Into<String>,
    ) {
        self.report.push(Decision {
            action,
            object: object.into(),
            reason: reason.into(),
            impact: Impact::Behaviour,
            todo: todo.into(),
            access: AccessEffect::Unchanged,
        });
    }

    fn push(&mut self, st: PlannedStatement) {
        self.statements.push(st);
    }
}

/// Each statement's fate, in dump order: left out when reach says it uses
/// what the target lacks (or it comments on what is left out), else as
/// the rules decide. A restrictive policy is never left out that way
/// while its table stays ([`access`]); every decision on a policy, grant,
/// revoke or row level security says what it does to access.
fn decide_each(
    stmts: Vec<(Section, Statement)>,
    reach: &reach::Reach,
    rules: &rules::Rules,
    out: &mut Conversion,
) -> Result<()> {
    let mut fates = comments::Fates::default();
    let rls_kept = rules.opts.policies == PolicyMode::Shim;
    let mut refused = Vec::new();
    for (i, (section, st)) in stmts.into_iter().enumerate() {
        if let Some(why) = fates.comment_left_out(&st, &out.dropped_columns) {
            out.note_with(Action::Dropped, rules::describe(&st), why, Impact::None);
            continue;
        }
        let key = comments::created_key(&st);
        let guard = access::guard(&st);
        let decided = out.report.len();
        match &reach.verdict[i] {
            Some(m) => {
                let restrictive = match &guard {
                    Some(access::Guard::Restrictive { id, table })
                        if rls_kept && !reach.relation_dropped(table) =>
                    {
                        Some(id.as_str())
                    }
                    _ => None,
                };
                match restrictive {
                    Some(id) if !access::allowed(id, &rules.opts.allow_wider_access) => {
                        if rules.opts.restrictive == RestrictiveChoice::FailClosed {
                            fates.record(key, None);
                            keep_failing_closed(&st, section, m, rules, out)?;
                        } else {
                            refused.push(format!("{id} ({})", m.reason));
                        }
                        continue;
                    }
                    Some(_) => {
                        fates.record(key, Some(&m.reason));
                        let why = format!(
                            "{}; --allow-wider-access: the target lets through what it stopped",
                            m.reason
                        );
                        out.note_todo(Action::Dropped, rules::describe(&st), why, &m.todo);
                    }
                    None => {
                        fates.record(key, Some(&m.reason));
                        out.note_todo(Action::Dropped, rules::describe(&st), &m.reason, &m.todo);
                    }
                }
            }
            None => {
                let before = out.statements.len();
                rules.apply(st, section, out)?;
                let why = (out.statements.len() == before)
                    .then(|| out.report.last().map(|d| d.reason.clone()))
                    .flatten();
                fates.record(key, why.as_deref());
            }
        }
        if let (Some(g), Some(d)) = (&guard, out.report.get_mut(decided)) {
            if d.action == Action::Dropped {
                d.access = access::dropped_effect(g, rls_kept);
            }
        }
    }
    match refused.is_empty() {
        true => Ok(()),
        false => Err(wider_access(&refused)),
    }
}

/// A restrictive policy the target cannot keep, kept denying every row to
/// its roles (`--restrictive fail-closed`).
fn keep_failing_closed(
    st: &Statement,
    section: Section,
    m: &reach::Missing,
    rules: &rules::Rules,
    out: &mut Conversion,
) -> Result<()> {
    rules.apply(access::fail_closed(st)?, section, out)?;
    if let Some(d) = out.report.last_mut() {
        d.action = Action::Rewritten;
        d.impact = Impact::Behaviour;
        d.reason = format!(
            "{}; kept failing closed (--restrictive fail-closed): it denies every row to its roles",
            m.reason
        );
        d.todo = format!(
            "rewrite it for the target ({}), then apply it there",
            m.todo
        );
        d.access = AccessEffect::Narrows;
    }
    Ok(())
}

/// The refusal: restrictive policies that would be left out, each with
/// what it needs.
fn wider_access(refused: &[String]) -> Error {
    let one = refused.len() == 1;
    Error::invalid_input(format!(
        "access would be wider on the target than on the source: {} restrictive polic{} use{} what the target will not have and would be left out: {}; nothing was changed",
        refused.len(),
        if one { "y" } else { "ies" },
        if one { "s" } else { "" },
        refused.join("; ")
    ))
    .with_hint("keep them denying every row to their roles with --restrictive fail-closed (then rewrite them for the target), or let one go with --allow-wider-access SCHEMA.TABLE.POLICY once the application enforces it")
}

/// Converts `src` for a target described by `opts`.
///
/// Fails, before anything else, when the source uses an extension the target
/// does not offer and its data would be lost, or holds stale generated
/// columns, and the user did not choose what to do.
pub fn convert(src: &SchemaSource, opts: &ConvertOptions) -> Result<Conversion> {
    let mut out = Conversion {
        shim: opts.policies == PolicyMode::Shim,
        ..Conversion::default()
    };
    let fate = extensions::plan(&src.extensions, opts, &mut out)?;
    out.dropped_columns = fate
        .dependents
        .keys()
        .filter_map(|d| d.strip_prefix("column "))
        .map(str::to_string)
        .collect();
    out.dropped_defaults = fate
        .dependents
        .keys()
        .filter_map(|d| d.strip_prefix("default of column "))
        .map(str::to_string)
        .collect();
    out.plain_generated = generated::plan(&src.generated_columns, opts.stale_generated, &mut out)?;
    let stmts = statements(src, &mut out)?;
    // The application's triggers on Supabase's tables (but auth.users) are left out.
    let dropped_trigger_functions: BTreeSet<crate::sql::uses::Name> = src
        .platform
        .internal_triggers
        .iter()
        .filter(|t| !(t.schema == "auth" && t.table == "users"))
        .filter_map(|t| t.function.split_once('.'))
        .map(|(s, n)| crate::sql::uses::Name::new(s, n))
        .collect();
    let runtime = runtime::Available {
        pgmq: !fate.carries("pgmq"),
    };
    let auth_tables: BTreeSet<String> = src.auth_tables.iter().map(|t| t.name.clone()).collect();
    let ctx = reach::Context {
        auth_tables: &auth_tables,
        runtime: &runtime,
        schemas: &src.schemas,
        has_auth: src.auth_users_columns.is_some(),
        has_storage: src.storage_columns.is_some(),
        fate: &fate,
        dropped_trigger_functions: &dropped_trigger_functions,
    };
    let refs: Vec<&Statement> = stmts.iter().map(|(_, st)| st).collect();
    let reach = reach::analyze(&refs, &ctx);
    let user_columns = users_of(src);
    let rules = rules::Rules {
        opts,
        has_auth_users: ctx.has_auth,
        has_storage: ctx.has_storage,
        fate: &fate,
        plain_generated: &out.plain_generated.clone(),
        user_columns: &user_columns,
        row_security: src.row_security.as_ref(),
    };
    decide_each(stmts, &reach, &rules, &mut out)?;
    compat::add(
        src,
        out.shim,
        &opts.app_role,
        &reach.needs,
        &reach.users_used_by,
        &runtime,
        &mut out,
    )?;
    platform::note(src, opts, &reach, &ctx, &mut out)?;
    note_project_roles(src, opts, &mut out);
    note_database_settings(src, &mut out);
    defaults::plan(src, opts, &mut out)?;
    out.statements.sort_by_key(|s| s.section);
    // Identical statements (several API roles mapped to one role) once only.
    let mut seen = BTreeSet::new();
    out.statements
        .retain(|s| seen.insert((s.section, s.sql.clone())));
    Ok(out)
}

/// `auth.users`' columns and their names in `app_users` (none without it).
fn users_of(src: &SchemaSource) -> Vec<crate::plan::users::UserColumn> {
    src.auth_users_columns
        .as_deref()
        .map(crate::plan::users::user_columns)
        .unwrap_or_default()
}

/// What is left to do for a project role provision creates: its login,
/// its memberships of PostgreSQL's predefined roles.
fn role_todo(r: &crate::catalog::data::ProjectRole) -> String {
    let mut todo = Vec::new();
    if r.login {
        todo.push("it logs in on the source, and Supabase does not let its password be read: give it LOGIN and a password on the target (ALTER ROLE … LOGIN PASSWORD …)".to_string());
    }
    let predefined: Vec<&str> = r
        .member_of
        .iter()
        .filter(|g| g.starts_with("pg_"))
        .map(String::as_str)
        .collect();
    if !predefined.is_empty() {
        todo.push(format!(
            "it is a member of {} on the source: grant it there if it needs them",
            predefined.join(", ")
        ));
    }
    todo.join("; ")
}

/// The project's own roles: provision creates them.
fn note_project_roles(src: &SchemaSource, opts: &ConvertOptions, out: &mut Conversion) {
    for r in src.project_roles.iter().filter(|r| r.name != opts.app_role) {
        out.note_todo(
            Action::Added,
            format!("role {}", r.name),
            "the project's own role (grants, policies or memberships name it): provision creates it NOLOGIN",
            role_todo(r),
        );
        for s in &r.settings {
            note_setting(
                out,
                format!("role {} setting {} = {}", r.name, s.name, s.value),
                &s.name,
                SettingTexts {
                    custom: "a custom setting: on RDS only a superuser may store one for a role (ALTER ROLE … SET), and the master user is not one",
                    todo: format!(
                        "have the sessions of {} set it (options=-c {}=… in the connection string, or SET)",
                        r.name, s.name
                    ),
                    kept: "provision sets it for the role in the target database (ALTER ROLE … IN DATABASE … SET): its sessions get it as on Supabase",
                },
            );
        }
    }
}

/// Why a database setting of the source is not carried (`None`: it is):
/// the platform's own, which nothing on the target reads.
pub fn platform_setting(name: &str) -> Option<&'static str> {
    const PREFIXES: &[&str] = &[
        "pgrst.",
        "supautils.",
        "pgsodium.",
        "pg_net.",
        "supabase.",
        "safeupdate.",
        "cron.",
    ];
    if PREFIXES.iter().any(|p| name.starts_with(p))
        || matches!(
            name,
            "session_preload_libraries" | "shared_preload_libraries"
        )
    {
        Some("a Supabase platform setting (PostgREST, supautils, pgsodium, pg_net, pg_cron): nothing on the target reads it")
    } else {
        None
    }
}

/// A custom setting (`app.region`; an extension's `pgaudit.log`): on the
/// target only a superuser may store one for a database (PostgreSQL 15+
/// treats an unknown parameter as a placeholder), and RDS's master user is
/// not one.
pub fn custom_setting(name: &str) -> bool {
    name.contains('.')
}

/// The source database's settings: each carried to the target database by
/// provision, or left out as the platform's.
fn note_database_settings(src: &SchemaSource, out: &mut Conversion) {
    for s in &src.database_settings {
        note_setting(
            out,
            format!("database setting {} = {}", s.name, s.value),
            &s.name,
            SettingTexts {
                custom: "a custom setting: on RDS only a superuser may store one for a database (ALTER DATABASE … SET), and the master user is not one; current_setting() does not find it there",
                todo: format!(
                    "have the application set it per session (options=-c {}=… in its connection string, or SET), keep the value in a table (a secret in AWS Secrets Manager), or, for an extension's parameter, set it in the instance's parameter group",
                    s.name
                ),
                kept: "provision sets it on the target database (ALTER DATABASE … SET): sessions and current_setting() see it as on Supabase",
            },
        );
    }
}

/// What the plan says of a setting, by kind: why a custom one is not
/// stored and what to do instead, how a built-in one is set.
struct SettingTexts<'a> {
    custom: &'a str,
    todo: String,
    kept: &'a str,
}

/// A database's or a role's setting: the platform's left out, a custom one
/// a to-do (only a superuser may store it on RDS), a built-in one carried.
fn note_setting(out: &mut Conversion, what: String, name: &str, t: SettingTexts<'_>) {
    match platform_setting(name) {
        Some(why) => out.note_with(Action::Dropped, what, why, Impact::None),
        None if custom_setting(name) => out.note_todo(Action::Dropped, what, t.custom, t.todo),
        None => out.note(Action::Kept, what, t.kept),
    }
}

/// Every statement to decide on: the dump's, then the application's
/// triggers on `auth.users` (which move to `app_users`), then the refresh
/// of each populated materialized view.
fn statements(src: &SchemaSource, out: &mut Conversion) -> Result<Vec<(Section, Statement)>> {
    let mut all = Vec::new();
    for (section, text) in [
        (Section::PreData, &src.pre_data),
        (Section::PostData, &src.post_data),
    ] {
        let (stmts, meta) = split(text)?;
        for m in meta {
            out.note_with(
                Action::Dropped,
                format!("psql meta-command {}", m.0),
                "not SQL (pg_dump 17.6+/16.10+/15.14+ security wrapper)",
                Impact::None,
            );
        }
        all.extend(stmts.into_iter().map(|st| (section, st)));
    }
    for t in &src.platform.internal_triggers {
        if t.schema == "auth" && t.table == "users" {
            all.push((Section::PostData, Statement::parse(&t.definition)?));
        }
    }
    // The dump creates materialized views empty: those the source has
    // populated are refreshed once the data and indexes are in.
    for m in &src.populated_matviews {
        let sql = format!("REFRESH MATERIALIZED VIEW {}", m.quoted());
        all.push((Section::PostData, Statement::parse(&sql)?));
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
