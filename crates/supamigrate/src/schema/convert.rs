//! Supabase → standard PostgreSQL, on parsed SQL. Pure: no I/O.
//!
//! Each statement of the dump goes through [`Rules::apply`], which keeps it,
//! rewrites it (editing the parse tree, then deparsing), or drops it, and says
//! why. Everything not kept as is lands in the report.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, AccessPriv, ObjectType, RangeVar, RoleSpec};
use pg_query::NodeEnum;
use serde::Serialize;

use super::export::{Extension, SchemaSource};
use super::sql::{excerpt, qualified, rangevar_name, split, Statement};
use super::{is_internal_schema, is_supabase_role, API_ROLES};
use crate::error::{Error, Result};

/// What happens to RLS policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

/// One line of the conversion report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportItem {
    /// What happened.
    pub action: Action,
    /// The object, e.g. `table public.trips` or `GRANT ALL ON TABLE public.trips TO anon`.
    pub object: String,
    /// Why.
    pub reason: String,
}

/// The converted schema.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conversion {
    /// Types, functions, tables without constraints: applied before the data.
    pub pre_data: Vec<String>,
    /// Constraints, indexes, triggers, policies: applied after the data.
    pub post_data: Vec<String>,
    /// Extensions provisioning must create on the target.
    pub extensions: Vec<String>,
    /// Whether the RLS shim (auth schema, API roles) is part of the result.
    pub shim: bool,
    /// Every object kept, rewritten, dropped or added, and why.
    pub report: Vec<ReportItem>,
}

impl Conversion {
    /// Reviewable SQL, like the runbook's `03_converted_schema.sql`.
    pub fn sql(&self) -> String {
        let mut s = String::from(
            "-- Converted by supamigrate from a Supabase schema dump.\n\
             -- Review it; `supamigrate schema apply` applies pre-data, then (after the data) post-data.\n\n\
             -- ===== pre-data =====\n\n",
        );
        for st in &self.pre_data {
            s.push_str(st);
            s.push_str("\n\n");
        }
        s.push_str("-- ===== post-data =====\n\n");
        for st in &self.post_data {
            s.push_str(st);
            s.push_str("\n\n");
        }
        s
    }

    /// The report as text: counts, then every item not kept, grouped by action.
    pub fn report_text(&self) -> String {
        let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
        for r in &self.report {
            *counts.entry(r.action).or_default() += 1;
        }
        let mut s = format!(
            "conversion: {} kept, {} rewritten, {} dropped, {} added\n",
            counts.get(&Action::Kept).unwrap_or(&0),
            counts.get(&Action::Rewritten).unwrap_or(&0),
            counts.get(&Action::Dropped).unwrap_or(&0),
            counts.get(&Action::Added).unwrap_or(&0)
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
        self.report.push(ReportItem {
            action,
            object: object.into(),
            reason: reason.into(),
        });
    }
}

/// `auth.users` column → `app_users` column: the runbook's mapping.
pub const USER_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("email", "email"),
    ("encrypted_password", "encrypted_password"),
    ("email_confirmed_at", "email_confirmed_at"),
    ("invited_at", "invited_at"),
    ("confirmation_token", "confirmation_token"),
    ("confirmation_sent_at", "confirmation_sent_at"),
    ("recovery_token", "recovery_token"),
    ("recovery_sent_at", "recovery_sent_at"),
    ("email_change_token_new", "email_change_token"),
    ("email_change", "email_change"),
    ("email_change_sent_at", "email_change_sent_at"),
    ("last_sign_in_at", "last_sign_in_at"),
    ("raw_app_meta_data", "raw_app_meta_data"),
    ("raw_user_meta_data", "raw_user_meta_data"),
    ("is_super_admin", "is_super_admin"),
    ("phone", "phone"),
    ("phone_confirmed_at", "phone_confirmed_at"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("banned_until", "banned_until"),
    ("deleted_at", "deleted_at"),
];

/// The table `auth.users` becomes.
pub const APP_USERS: &str = "public.app_users";

const APP_USERS_TABLE: &str = "CREATE TABLE public.app_users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    encrypted_password text,
    email_confirmed_at timestamp with time zone,
    invited_at timestamp with time zone,
    confirmation_token text,
    confirmation_sent_at timestamp with time zone,
    recovery_token text,
    recovery_sent_at timestamp with time zone,
    email_change_token text,
    email_change text,
    email_change_sent_at timestamp with time zone,
    last_sign_in_at timestamp with time zone,
    raw_app_meta_data jsonb DEFAULT '{}'::jsonb,
    raw_user_meta_data jsonb DEFAULT '{}'::jsonb,
    is_super_admin boolean DEFAULT false,
    phone text,
    phone_confirmed_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    banned_until timestamp with time zone,
    deleted_at timestamp with time zone
);";

const APP_USERS_POST: &[&str] = &[
    "ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_pkey PRIMARY KEY (id);",
    "ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_email_key UNIQUE (email);",
    "CREATE INDEX idx_app_users_email ON public.app_users USING btree (email);",
    "CREATE INDEX idx_app_users_phone ON public.app_users USING btree (phone);",
];

/// The `auth` shim for `--policies shim`: Supabase's own definitions, reading
/// the JSON claims PostgREST sets.
const AUTH_SHIM: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS auth;",
    "CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;",
    "CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;",
    "CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;",
    "CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;",
    "GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;",
];

/// Extensions every target gets when available: the runbook's.
pub const SEED_EXTENSIONS: &[&str] = &["uuid-ossp", "pgcrypto", "pg_trgm"];

/// Extensions that come with every database.
const BUILTIN_EXTENSIONS: &[&str] = &["plpgsql"];

/// Converts `src` for a target described by `opts`.
///
/// Fails, before anything else, when the source uses an extension the target
/// does not offer and the user did not allow leaving it behind.
pub fn convert(src: &SchemaSource, opts: &ConvertOptions) -> Result<Conversion> {
    let mut out = Conversion {
        shim: opts.policies == PolicyMode::Shim,
        ..Conversion::default()
    };
    let dropped_objects = plan_extensions(&src.extensions, opts, &mut out)?;

    let rules = Rules {
        opts,
        has_auth_users: src.auth_users_columns.is_some(),
        dropped_objects,
    };

    if out.shim {
        for s in AUTH_SHIM {
            out.pre_data.push(s.to_string());
        }
        out.note(
            Action::Added,
            "schema auth with uid(), role(), email(), jwt()",
            "--policies shim: RLS policies call them; they read request.jwt.claims as on Supabase",
        );
    }

    for (section, text) in [
        (Section::Pre, &src.pre_data),
        (Section::Post, &src.post_data),
    ] {
        let (stmts, meta) = split(text)?;
        for m in meta {
            out.note(
                Action::Dropped,
                format!("psql meta-command {}", m.0),
                "not SQL (pg_dump 17.6+/16.10+/15.14+ security wrapper)",
            );
        }
        for st in stmts {
            rules.apply(st, section, &mut out)?;
        }
    }

    if let Some(columns) = &src.auth_users_columns {
        out.pre_data.push(APP_USERS_TABLE.to_string());
        // First in post-data: foreign keys re-pointed at app_users need its key.
        out.post_data
            .splice(0..0, APP_USERS_POST.iter().map(|s| s.to_string()));
        out.note(
            Action::Added,
            format!("table {APP_USERS}"),
            "replaces auth.users, with the runbook's column set",
        );
        for c in columns {
            match USER_COLUMNS.iter().find(|(from, _)| from == c) {
                Some((from, to)) if from != to => out.note(
                    Action::Rewritten,
                    format!("column auth.users.{from}"),
                    format!("becomes {APP_USERS}.{to}"),
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
    }
    for def in &src.auth_user_triggers {
        let st = Statement::parse(def)?;
        rules.apply(st, Section::Post, &mut out)?;
    }
    for p in &src.publications {
        out.note(
            Action::Dropped,
            format!("publication {} ({})", p.name, p.tables.join(", ")),
            "serves Supabase Realtime, which the target does not run",
        );
    }
    for e in &src.event_triggers {
        out.note(
            Action::Dropped,
            format!("event trigger {e}"),
            "Supabase platform (PostgREST schema reload, extension grants)",
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

    // Identical statements (several API roles mapped to one role) once only.
    for list in [&mut out.pre_data, &mut out.post_data] {
        let mut seen = BTreeSet::new();
        list.retain(|s| seen.insert(s.clone()));
    }
    Ok(out)
}

/// Decides which extensions to create and fails on unsupported ones not allowed
/// to be dropped. Returns the objects that depend on dropped extensions.
fn plan_extensions(
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
        return Err(Error::invalid_input(format!(
            "the source uses extensions the target does not offer: {list}"
        ))
        .with_hint(format!(
            "make them available on the target (RDS: see SHOW rds.extensions), or pass {} to migrate without them and drop what depends on them",
            refused.iter().map(|e| format!("--allow-drop-extension {}", e.name)).collect::<Vec<_>>().join(" ")
        )));
    }
    for s in SEED_EXTENSIONS {
        if available(s) && !out.extensions.iter().any(|e| e == s) {
            out.extensions.push(s.to_string());
            out.note(
                Action::Added,
                format!("extension {s}"),
                "the runbook enables it on every target",
            );
        }
    }
    Ok(dropped_objects)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Pre,
    Post,
}

struct Rules<'a> {
    opts: &'a ConvertOptions,
    has_auth_users: bool,
    /// Objects (as `kind schema.name`) depending on dropped extensions.
    dropped_objects: BTreeSet<String>,
}

/// What a rule decided.
enum Outcome {
    Keep,
    Rewrite(Vec<Statement>, String),
    Drop(String),
}

impl Rules<'_> {
    fn apply(&self, mut st: Statement, section: Section, out: &mut Conversion) -> Result<()> {
        let what = describe(&st);
        let outcome = self.decide(&mut st)?;
        let list = match section {
            Section::Pre => &mut out.pre_data,
            Section::Post => &mut out.post_data,
        };
        match outcome {
            Outcome::Keep => {
                list.push(st.original());
                out.note(Action::Kept, what, "standard PostgreSQL");
            }
            Outcome::Rewrite(stmts, reason) => {
                for s in &stmts {
                    list.push(format!("{};", s.deparse()?));
                }
                if stmts.is_empty() {
                    out.note(Action::Dropped, what, reason);
                } else {
                    out.note(Action::Rewritten, what, reason);
                }
            }
            Outcome::Drop(reason) => out.note(Action::Dropped, what, reason),
        }
        Ok(())
    }

    fn decide(&self, st: &mut Statement) -> Result<Outcome> {
        if let Some(schema) = target_schema(st) {
            if is_internal_schema(&schema) && !self.is_auth_users_trigger(st) {
                return Ok(Outcome::Drop(format!(
                    "in Supabase-internal schema {schema}"
                )));
            }
        }
        if let Some(obj) = self.depends_on_dropped_extension(st) {
            return Ok(Outcome::Drop(format!(
                "{obj} depends on a dropped extension"
            )));
        }
        let shim = self.opts.policies == PolicyMode::Shim;
        let Some(node) = st.node_mut() else {
            return Ok(Outcome::Keep);
        };
        Ok(match node {
            NodeEnum::VariableSetStmt(v) if v.name == "transaction_timeout" && self.opts.target_major < 17 => {
                Outcome::Drop(format!("transaction_timeout needs PostgreSQL 17; the target is {}", self.opts.target_major))
            }
            NodeEnum::CreatePublicationStmt(p) if p.pubname.starts_with("supabase_realtime") => {
                Outcome::Drop("serves Supabase Realtime, which the target does not run".into())
            }
            NodeEnum::AlterPublicationStmt(p) if p.pubname.starts_with("supabase_realtime") => {
                Outcome::Drop("serves Supabase Realtime, which the target does not run".into())
            }
            NodeEnum::CreateEventTrigStmt(_) | NodeEnum::AlterEventTrigStmt(_) => {
                Outcome::Drop("Supabase platform event trigger (PostgREST schema reload, extension grants)".into())
            }
            NodeEnum::CommentStmt(c) if c.objtype == ObjectType::ObjectExtension as i32 => {
                Outcome::Drop("only the extension's owner may comment on it; provision creates extensions".into())
            }
            NodeEnum::CreateExtensionStmt(_) => Outcome::Drop("provision creates extensions before the schema".into()),
            NodeEnum::AlterOwnerStmt(_) => {
                Outcome::Drop("ownership: objects belong to the role that applies the schema".into())
            }
            NodeEnum::AlterDefaultPrivilegesStmt(_) => Outcome::Drop(
                "default privileges of Supabase roles; provision gives the application role its own".into(),
            ),
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => {
                s.if_not_exists = true;
                s.authrole = None;
                Outcome::Rewrite(vec![st.clone()], "provision creates the schema (public exists anyway): IF NOT EXISTS".into())
            }
            NodeEnum::CreatePolicyStmt(p) => {
                if !shim {
                    Outcome::Drop("--policies drop: row level security is not migrated".into())
                } else {
                    let before = p.roles.len();
                    p.roles.retain(|r| role_of(r).is_none_or(|n| API_ROLES.contains(&n) || !is_supabase_role(n)));
                    if p.roles.is_empty() && before > 0 {
                        Outcome::Drop("applies only to Supabase roles that do not exist on the target".into())
                    } else if p.roles.len() < before {
                        Outcome::Rewrite(vec![st.clone()], "Supabase-only roles removed from TO".into())
                    } else {
                        Outcome::Keep
                    }
                }
            }
            NodeEnum::GrantStmt(_) => self.grant(st),
            NodeEnum::AlterTableStmt(_) => self.alter_table(st, shim),
            NodeEnum::CreateStmt(c) => {
                let mut reasons = Vec::new();
                let table = c.relation.as_ref().map(rangevar_name).unwrap_or_default();
                let before = c.table_elts.len();
                c.table_elts.retain(|elt| match elt.node.as_ref() {
                    Some(NodeEnum::ColumnDef(cd)) => {
                        !self.dropped_objects.contains(&format!("column {table}.{}", cd.colname))
                    }
                    _ => true,
                });
                if c.table_elts.len() < before {
                    reasons.push("columns typed by a dropped extension removed".to_string());
                }
                let mut repointed = false;
                for elt in &mut c.table_elts {
                    repointed |= repoint_fks_in(elt);
                }
                if repointed {
                    reasons.push(format!("foreign keys to auth.users now reference {APP_USERS}"));
                }
                if reasons.is_empty() {
                    Outcome::Keep
                } else {
                    Outcome::Rewrite(vec![st.clone()], reasons.join("; "))
                }
            }
            NodeEnum::CreateTrigStmt(t) => {
                let on_auth_users = t.relation.as_ref().is_some_and(is_auth_users);
                if on_auth_users && self.has_auth_users {
                    t.relation = Some(app_users_rangevar());
                    Outcome::Rewrite(vec![st.clone()], format!("trigger moved from auth.users to {APP_USERS}"))
                } else {
                    Outcome::Keep
                }
            }
            _ => Outcome::Keep,
        })
    }

    fn is_auth_users_trigger(&self, st: &Statement) -> bool {
        matches!(st.node(), Some(NodeEnum::CreateTrigStmt(t)) if t.relation.as_ref().is_some_and(is_auth_users))
    }

    fn depends_on_dropped_extension(&self, st: &Statement) -> Option<String> {
        if self.dropped_objects.is_empty() {
            return None;
        }
        let name = match st.node()? {
            NodeEnum::CreateFunctionStmt(f) => format!("function {}", qualified(&f.funcname)),
            NodeEnum::CreateStmt(c) => format!("table {}", rangevar_name(c.relation.as_ref()?)),
            NodeEnum::ViewStmt(v) => format!("view {}", rangevar_name(v.view.as_ref()?)),
            NodeEnum::GrantStmt(g) => {
                return g.objects.iter().find_map(|o| {
                    let n = match o.node.as_ref()? {
                        NodeEnum::ObjectWithArgs(f) => {
                            format!("function {}", qualified(&f.objname))
                        }
                        NodeEnum::RangeVar(r) => format!("table {}", rangevar_name(r)),
                        _ => return None,
                    };
                    self.dropped_objects.contains(&n).then_some(n)
                })
            }
            _ => return None,
        };
        self.dropped_objects.contains(&name).then_some(name)
    }

    /// GRANT/REVOKE: Supabase roles removed; in `drop` mode the API roles' DML
    /// privileges go to the application role.
    fn grant(&self, st: &mut Statement) -> Outcome {
        let shim = self.opts.policies == PolicyMode::Shim;
        let Some(NodeEnum::GrantStmt(g)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let mut kept = Vec::new();
        let mut mapped = false;
        let mut removed = Vec::new();
        for r in g.grantees.drain(..) {
            match role_of(&r) {
                Some(n) if API_ROLES.contains(&n) && shim => kept.push(r),
                Some(n) if API_ROLES.contains(&n) => {
                    mapped = true;
                    removed.push(n.to_string());
                }
                Some(n) if is_supabase_role(n) => removed.push(n.to_string()),
                _ => kept.push(r),
            }
        }
        if removed.is_empty() {
            g.grantees = kept;
            return Outcome::Keep;
        }
        let mut stmts = Vec::new();
        if !kept.is_empty() {
            g.grantees = kept;
            stmts.push(st.clone());
        }
        let mut mapped_to_app = false;
        if mapped && g_is_grant(st) {
            if let Some(privs) = dml_privileges(st) {
                let mut m = st.clone();
                if let Some(NodeEnum::GrantStmt(mg)) = m.node_mut() {
                    mg.grantees = vec![role_node(&self.opts.app_role)];
                    mg.privileges = privs;
                    mg.grant_option = false;
                    mg.grantor = None;
                }
                stmts.push(m);
                mapped_to_app = true;
            }
        }
        let reason = if mapped_to_app {
            format!(
                "{} removed; their DML privileges go to {}",
                removed.join(", "),
                self.opts.app_role
            )
        } else {
            format!("{}: Supabase-only roles", removed.join(", "))
        };
        Outcome::Rewrite(stmts, reason)
    }

    fn alter_table(&self, st: &mut Statement, shim: bool) -> Outcome {
        let Some(NodeEnum::AlterTableStmt(a)) = st.node_mut() else {
            return Outcome::Keep;
        };
        let before = a.cmds.len();
        let mut reasons = BTreeSet::new();
        let mut fk_repointed = false;
        let mut fk_dropped = false;
        a.cmds.retain_mut(|c| {
            let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_mut() else {
                return true;
            };
            let sub = cmd.subtype;
            if sub == protobuf::AlterTableType::AtChangeOwner as i32 {
                reasons.insert(
                    "ownership: objects belong to the role that applies the schema".to_string(),
                );
                return false;
            }
            if !shim
                && (sub == protobuf::AlterTableType::AtEnableRowSecurity as i32
                    || sub == protobuf::AlterTableType::AtForceRowSecurity as i32)
            {
                reasons.insert("--policies drop: row level security is not migrated".to_string());
                return false;
            }
            if sub == protobuf::AlterTableType::AtAddConstraint as i32 {
                if let Some(NodeEnum::Constraint(con)) =
                    cmd.def.as_mut().and_then(|d| d.node.as_mut())
                {
                    match fk_target(con) {
                        FkTarget::AuthUsers => {
                            con.pktable = Some(app_users_rangevar());
                            fk_repointed = true;
                        }
                        FkTarget::OtherInternal(t) => {
                            reasons
                                .insert(format!("references {t}, which the target does not have"));
                            fk_dropped = true;
                            return false;
                        }
                        FkTarget::None => {}
                    }
                }
            }
            true
        });
        if fk_repointed {
            reasons.insert(format!(
                "foreign key to auth.users now references {APP_USERS}"
            ));
        }
        let _ = fk_dropped;
        if a.cmds.len() == before && !fk_repointed {
            return Outcome::Keep;
        }
        let reason = reasons.into_iter().collect::<Vec<_>>().join("; ");
        if a.cmds.is_empty() {
            Outcome::Drop(reason)
        } else {
            Outcome::Rewrite(vec![st.clone()], reason)
        }
    }
}

fn g_is_grant(st: &Statement) -> bool {
    matches!(st.node(), Some(NodeEnum::GrantStmt(g)) if g.is_grant)
}

/// The DML subset of a GRANT's privileges for its object type, or `None` when
/// nothing of it concerns data access.
fn dml_privileges(st: &Statement) -> Option<Vec<protobuf::Node>> {
    let Some(NodeEnum::GrantStmt(g)) = st.node() else {
        return None;
    };
    let allowed: &[&str] = match ObjectType::try_from(g.objtype).ok()? {
        ObjectType::ObjectTable => &["select", "insert", "update", "delete"],
        ObjectType::ObjectSequence => &["usage", "select"],
        ObjectType::ObjectFunction | ObjectType::ObjectProcedure | ObjectType::ObjectRoutine => {
            &["execute"]
        }
        ObjectType::ObjectSchema | ObjectType::ObjectType => &["usage"],
        _ => return None,
    };
    let granted: Vec<String> = g
        .privileges
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(NodeEnum::AccessPriv(a)) => Some(a.priv_name.clone()),
            _ => None,
        })
        .collect();
    // No list means ALL PRIVILEGES.
    let chosen: Vec<&str> = if granted.is_empty() {
        allowed.to_vec()
    } else {
        allowed
            .iter()
            .copied()
            .filter(|a| granted.iter().any(|g| g == a))
            .collect()
    };
    if chosen.is_empty() {
        return None;
    }
    Some(
        chosen
            .into_iter()
            .map(|p| protobuf::Node {
                node: Some(NodeEnum::AccessPriv(AccessPriv {
                    priv_name: p.to_string(),
                    cols: vec![],
                })),
            })
            .collect(),
    )
}

fn role_of(n: &protobuf::Node) -> Option<&str> {
    match n.node.as_ref() {
        Some(NodeEnum::RoleSpec(r))
            if r.roletype == protobuf::RoleSpecType::RolespecCstring as i32 =>
        {
            Some(r.rolename.as_str())
        }
        _ => None,
    }
}

fn role_node(name: &str) -> protobuf::Node {
    protobuf::Node {
        node: Some(NodeEnum::RoleSpec(RoleSpec {
            roletype: protobuf::RoleSpecType::RolespecCstring as i32,
            rolename: name.to_string(),
            location: -1,
        })),
    }
}

fn is_auth_users(rv: &RangeVar) -> bool {
    rv.schemaname == "auth" && rv.relname == "users"
}

fn app_users_rangevar() -> RangeVar {
    RangeVar {
        schemaname: "public".into(),
        relname: "app_users".into(),
        inh: true,
        relpersistence: "p".into(),
        location: -1,
        ..RangeVar::default()
    }
}

enum FkTarget {
    AuthUsers,
    OtherInternal(String),
    None,
}

fn fk_target(con: &protobuf::Constraint) -> FkTarget {
    if con.contype != protobuf::ConstrType::ConstrForeign as i32 {
        return FkTarget::None;
    }
    match con.pktable.as_ref() {
        Some(t) if is_auth_users(t) => FkTarget::AuthUsers,
        Some(t) if is_internal_schema(&t.schemaname) => FkTarget::OtherInternal(rangevar_name(t)),
        _ => FkTarget::None,
    }
}

/// Re-points FKs to auth.users inside a CREATE TABLE element.
fn repoint_fks_in(elt: &mut protobuf::Node) -> bool {
    let mut changed = false;
    let mut fix = |con: &mut protobuf::Constraint| {
        if matches!(fk_target(con), FkTarget::AuthUsers) {
            con.pktable = Some(app_users_rangevar());
            changed = true;
        }
    };
    match elt.node.as_mut() {
        Some(NodeEnum::Constraint(c)) => fix(c),
        Some(NodeEnum::ColumnDef(cd)) => {
            for c in &mut cd.constraints {
                if let Some(NodeEnum::Constraint(con)) = c.node.as_mut() {
                    fix(con);
                }
            }
        }
        _ => {}
    }
    changed
}

/// The schema of the object a statement creates or changes, when it names one.
fn target_schema(st: &Statement) -> Option<String> {
    let schema_of = |rv: &Option<RangeVar>| {
        rv.as_ref()
            .map(|r| r.schemaname.clone())
            .filter(|s| !s.is_empty())
    };
    let first_of = |names: &[protobuf::Node]| {
        (names.len() > 1)
            .then(|| qualified(&names[..1]))
            .filter(|s| !s.is_empty())
    };
    match st.node()? {
        NodeEnum::CreateStmt(c) => schema_of(&c.relation),
        NodeEnum::IndexStmt(i) => schema_of(&i.relation),
        NodeEnum::AlterTableStmt(a) => schema_of(&a.relation),
        NodeEnum::CreateTrigStmt(t) => schema_of(&t.relation),
        NodeEnum::CreatePolicyStmt(p) => schema_of(&p.table),
        NodeEnum::ViewStmt(v) => schema_of(&v.view),
        NodeEnum::CreateSeqStmt(s) => schema_of(&s.sequence),
        NodeEnum::CreateFunctionStmt(f) => first_of(&f.funcname),
        NodeEnum::CreateEnumStmt(e) => first_of(&e.type_name),
        NodeEnum::CompositeTypeStmt(c) => schema_of(&c.typevar),
        NodeEnum::CreateDomainStmt(d) => first_of(&d.domainname),
        NodeEnum::CreateSchemaStmt(s) => Some(s.schemaname.clone()),
        _ => None,
    }
}

/// A short name for the report: `table public.trips`, `GRANT … TO anon`, or an excerpt.
fn describe(st: &Statement) -> String {
    let name = match st.node() {
        Some(NodeEnum::CreateStmt(c)) => c
            .relation
            .as_ref()
            .map(|r| format!("table {}", rangevar_name(r))),
        Some(NodeEnum::CreateEnumStmt(e)) => Some(format!("type {}", qualified(&e.type_name))),
        Some(NodeEnum::CreateFunctionStmt(f)) => {
            Some(format!("function {}", qualified(&f.funcname)))
        }
        Some(NodeEnum::IndexStmt(i)) => Some(format!("index {}", i.idxname)),
        Some(NodeEnum::CreateTrigStmt(t)) => Some(format!(
            "trigger {} on {}",
            t.trigname,
            t.relation.as_ref().map(rangevar_name).unwrap_or_default()
        )),
        Some(NodeEnum::CreatePolicyStmt(p)) => Some(format!(
            "policy \"{}\" on {}",
            p.policy_name,
            p.table.as_ref().map(rangevar_name).unwrap_or_default()
        )),
        _ => None,
    };
    name.unwrap_or_else(|| excerpt(&st.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(policies: PolicyMode) -> ConvertOptions {
        ConvertOptions {
            policies,
            app_role: "tms_app".into(),
            target_major: 15,
            available_extensions: None,
            allow_drop_extensions: BTreeSet::new(),
        }
    }

    fn source(pre: &str, post: &str) -> SchemaSource {
        SchemaSource {
            pre_data: pre.into(),
            post_data: post.into(),
            ..SchemaSource::default()
        }
    }

    /// Converts one pg_dump-style statement and returns the SQL that comes out.
    fn one(sql: &str, policies: PolicyMode) -> Vec<String> {
        let c = convert(&source("", sql), &opts(policies)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.post_data
    }

    /// (rule, input as pg_dump writes it, output with --policies drop, output with --policies shim)
    const CASES: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "plain DDL is kept as written",
            "CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text)",
            &["CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text);"],
            &["CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text);"],
        ),
        (
            "grants to API roles go to the application role (drop) or stay (shim)",
            "GRANT ALL ON TABLE public.trips TO anon",
            &["GRANT select, insert, update, delete ON public.trips TO tms_app;"],
            &["GRANT ALL ON TABLE public.trips TO anon;"],
        ),
        (
            "only DML privileges are mapped",
            "GRANT SELECT,TRUNCATE,REFERENCES ON TABLE public.trips TO authenticated",
            &["GRANT select ON public.trips TO tms_app;"],
            &["GRANT SELECT,TRUNCATE,REFERENCES ON TABLE public.trips TO authenticated;"],
        ),
        (
            "sequence grants map to USAGE, SELECT",
            "GRANT ALL ON SEQUENCE public.\"Order_seq\" TO service_role",
            &["GRANT usage, select ON SEQUENCE public.\"Order_seq\" TO tms_app;"],
            &["GRANT ALL ON SEQUENCE public.\"Order_seq\" TO service_role;"],
        ),
        (
            "function grants map to EXECUTE",
            "GRANT ALL ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO anon",
            &["GRANT execute ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO tms_app;"],
            &["GRANT ALL ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO anon;"],
        ),
        (
            "grants to other Supabase roles are dropped",
            "GRANT ALL ON TABLE public.trips TO supabase_admin",
            &[],
            &[],
        ),
        (
            "grants to postgres are dropped",
            "GRANT ALL ON SCHEMA public TO postgres",
            &[],
            &[],
        ),
        (
            "grants to the project's own roles are kept",
            "GRANT SELECT ON TABLE public.trips TO reporting",
            &["GRANT SELECT ON TABLE public.trips TO reporting;"],
            &["GRANT SELECT ON TABLE public.trips TO reporting;"],
        ),
        (
            "mixed grantees split",
            "GRANT SELECT ON TABLE public.trips TO reporting, supabase_read_only_user",
            &["GRANT select ON public.trips TO reporting;"],
            &["GRANT select ON public.trips TO reporting;"],
        ),
        (
            "revokes from Supabase roles are dropped, from PUBLIC kept",
            "REVOKE ALL ON FUNCTION public.f() FROM PUBLIC",
            &["REVOKE ALL ON FUNCTION public.f() FROM PUBLIC;"],
            &["REVOKE ALL ON FUNCTION public.f() FROM PUBLIC;"],
        ),
        (
            "revoke from anon is dropped in drop mode",
            "REVOKE ALL ON TABLE public.secrets FROM anon",
            &[],
            &["REVOKE ALL ON TABLE public.secrets FROM anon;"],
        ),
        (
            "default privileges are dropped",
            "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon",
            &[],
            &[],
        ),
        (
            "ownership is dropped",
            "ALTER TABLE public.trips OWNER TO postgres",
            &[],
            &[],
        ),
        (
            "function ownership is dropped",
            "ALTER FUNCTION public.handle_new_user() OWNER TO supabase_admin",
            &[],
            &[],
        ),
        (
            "foreign keys to auth.users point at app_users",
            "ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
            &["ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users (id) ON DELETE CASCADE;"],
            &["ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users (id) ON DELETE CASCADE;"],
        ),
        (
            "foreign keys to storage.objects are dropped",
            "ALTER TABLE ONLY public.documents ADD CONSTRAINT documents_object_fkey FOREIGN KEY (object_id) REFERENCES storage.objects(id)",
            &[],
            &[],
        ),
        (
            "inline foreign keys to auth.users in CREATE TABLE",
            "CREATE TABLE public.notes (id uuid, author uuid REFERENCES auth.users(id))",
            &["CREATE TABLE public.notes (id uuid, author uuid REFERENCES public.app_users (id));"],
            &["CREATE TABLE public.notes (id uuid, author uuid REFERENCES public.app_users (id));"],
        ),
        (
            "policies: dropped, or kept for API roles",
            "CREATE POLICY \"Own rows\" ON public.profiles FOR SELECT TO authenticated USING ((auth.uid() = user_id))",
            &[],
            &["CREATE POLICY \"Own rows\" ON public.profiles FOR SELECT TO authenticated USING ((auth.uid() = user_id));"],
        ),
        (
            "policy roles that are Supabase-internal are removed",
            "CREATE POLICY p ON public.t TO authenticated, supabase_auth_admin USING (true)",
            &[],
            &["CREATE POLICY p ON public.t TO authenticated USING (true);"],
        ),
        (
            "RLS is enabled only with the shim",
            "ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY",
            &[],
            &["ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;"],
        ),
        (
            "the Realtime publication is dropped",
            "ALTER PUBLICATION supabase_realtime ADD TABLE ONLY public.trips",
            &[],
            &[],
        ),
        (
            "creating the Realtime publication is dropped",
            "CREATE PUBLICATION supabase_realtime WITH (publish = 'insert, update, delete, truncate')",
            &[],
            &[],
        ),
        (
            "the project's own publications are kept",
            "CREATE PUBLICATION analytics FOR TABLE public.trips",
            &["CREATE PUBLICATION analytics FOR TABLE public.trips;"],
            &["CREATE PUBLICATION analytics FOR TABLE public.trips;"],
        ),
        (
            "event triggers are dropped",
            "CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end EXECUTE FUNCTION extensions.pgrst_ddl_watch()",
            &[],
            &[],
        ),
        (
            "COMMENT ON EXTENSION is dropped",
            "COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions'",
            &[],
            &[],
        ),
        (
            "CREATE EXTENSION is left to provision",
            "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA extensions",
            &[],
            &[],
        ),
        (
            "transaction_timeout is dropped below PostgreSQL 17",
            "SET transaction_timeout = 0",
            &[],
            &[],
        ),
        (
            "other SET statements are kept",
            "SET statement_timeout = 0",
            &["SET statement_timeout = 0;"],
            &["SET statement_timeout = 0;"],
        ),
        (
            "objects in Supabase-internal schemas are dropped",
            "CREATE TABLE storage.objects_archive (id uuid)",
            &[],
            &[],
        ),
        (
            "CREATE SCHEMA public becomes IF NOT EXISTS",
            "CREATE SCHEMA public",
            &["CREATE SCHEMA IF NOT EXISTS public;"],
            &["CREATE SCHEMA IF NOT EXISTS public;"],
        ),
        (
            "any CREATE SCHEMA becomes IF NOT EXISTS, without its owner",
            "CREATE SCHEMA \"Billing\" AUTHORIZATION postgres",
            &["CREATE SCHEMA IF NOT EXISTS \"Billing\";"],
            &["CREATE SCHEMA IF NOT EXISTS \"Billing\";"],
        ),
        (
            "triggers on auth.users move to app_users",
            "CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user()",
            &["CREATE TRIGGER on_auth_user_created AFTER INSERT ON public.app_users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();"],
            &["CREATE TRIGGER on_auth_user_created AFTER INSERT ON public.app_users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();"],
        ),
    ];

    #[test]
    fn each_rule() {
        let mut failures = Vec::new();
        for (rule, input, want_drop, want_shim) in CASES {
            for (mode, want) in [(PolicyMode::Drop, want_drop), (PolicyMode::Shim, want_shim)] {
                let mut src = source("", input);
                src.auth_users_columns =
                    input.contains("auth.users").then(|| vec!["id".to_string()]);
                let got = convert(&src, &opts(mode)).unwrap_or_else(|e| panic!("{rule}: {e}"));
                let got: Vec<&String> = got
                    .post_data
                    .iter()
                    .filter(|s| {
                        !s.contains("app_users_pkey")
                            && !s.contains("app_users_email_key")
                            && !s.contains("idx_app_users")
                    })
                    .collect();
                let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                if got.iter().map(|s| s.as_str()).collect::<Vec<_>>()
                    != want.iter().map(|s| s.as_str()).collect::<Vec<_>>()
                {
                    failures.push(format!(
                        "{rule} ({mode:?}):\n   got  {got:?}\n   want {want:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn everything_not_kept_is_reported_with_a_reason() {
        let c = convert(
            &source(
                "SET transaction_timeout = 0;",
                "GRANT ALL ON TABLE public.t TO anon;\nALTER TABLE public.t OWNER TO postgres;",
            ),
            &opts(PolicyMode::Drop),
        )
        .unwrap();
        let not_kept: Vec<_> = c
            .report
            .iter()
            .filter(|r| r.action != Action::Kept && !r.object.starts_with("extension"))
            .collect();
        assert_eq!(not_kept.len(), 3, "{not_kept:?}");
        assert!(not_kept.iter().all(|r| !r.reason.is_empty()));
        let text = c.report_text();
        assert!(
            text.contains("transaction_timeout needs PostgreSQL 17"),
            "{text}"
        );
        assert!(text.contains("GRANT ALL ON TABLE public.t TO anon — anon removed; their DML privileges go to tms_app"), "{text}");
        assert!(
            text.contains("ALTER TABLE public.t OWNER TO postgres — ownership"),
            "{text}"
        );
    }

    #[test]
    fn meta_commands_are_reported() {
        let c = convert(
            &source("\\restrict abc\nSET x = 1;\n\\unrestrict abc\n", ""),
            &opts(PolicyMode::Drop),
        )
        .unwrap();
        assert_eq!(c.pre_data, vec!["SET x = 1;".to_string()]);
        assert_eq!(
            c.report
                .iter()
                .filter(|r| r.object.starts_with("psql meta-command"))
                .count(),
            2
        );
    }

    #[test]
    fn transaction_timeout_is_kept_for_17() {
        let mut o = opts(PolicyMode::Drop);
        o.target_major = 17;
        let c = convert(&source("SET transaction_timeout = 0;", ""), &o).unwrap();
        assert_eq!(c.pre_data, vec!["SET transaction_timeout = 0;".to_string()]);
    }

    #[test]
    fn grants_to_three_api_roles_become_one() {
        let post = "GRANT ALL ON TABLE public.trips TO anon;\nGRANT ALL ON TABLE public.trips TO authenticated;\nGRANT ALL ON TABLE public.trips TO service_role;";
        assert_eq!(
            one(post, PolicyMode::Drop),
            vec!["GRANT select, insert, update, delete ON public.trips TO tms_app;"]
        );
    }

    #[test]
    fn unsupported_extensions_fail_before_anything_unless_allowed() {
        let mut src = source("CREATE FUNCTION public.tags(h extensions.hstore) RETURNS text[] LANGUAGE sql AS $$ select akeys(h) $$;\nCREATE TABLE public.t (id int, attrs extensions.hstore);", "");
        src.extensions = vec![
            Extension {
                name: "pgcrypto".into(),
                schema: "extensions".into(),
                dependents: vec![],
            },
            Extension {
                name: "hstore".into(),
                schema: "extensions".into(),
                dependents: vec![
                    "function public.tags".into(),
                    "column public.t.attrs".into(),
                ],
            },
            Extension {
                name: "plpgsql".into(),
                schema: "pg_catalog".into(),
                dependents: vec![],
            },
        ];
        let mut o = opts(PolicyMode::Drop);
        o.available_extensions = Some(
            ["pgcrypto", "uuid-ossp", "pg_trgm", "plpgsql"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let e = convert(&src, &o).unwrap_err();
        assert!(e.is_bad_input());
        assert!(
            e.to_string()
                .contains("hstore (used by function public.tags, column public.t.attrs)"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("--allow-drop-extension hstore"));

        o.allow_drop_extensions.insert("hstore".into());
        let c = convert(&src, &o).unwrap();
        assert_eq!(c.extensions, vec!["pgcrypto", "uuid-ossp", "pg_trgm"]);
        assert_eq!(
            c.pre_data,
            vec!["CREATE TABLE public.t (id int);".to_string()]
        );
        assert!(c
            .report
            .iter()
            .any(|r| r.action == Action::Dropped && r.object == "column public.t.attrs"));
        assert!(c
            .report
            .iter()
            .any(|r| r.action == Action::Dropped && r.object == "extension hstore"));
        assert!(c
            .report
            .iter()
            .any(|r| r.action == Action::Dropped && r.object == "function public.tags"));
    }

    #[test]
    fn auth_users_becomes_app_users_with_the_mapping_reported() {
        let mut src = source("", "");
        src.auth_users_columns = Some(
            [
                "instance_id",
                "id",
                "email",
                "email_change_token_new",
                "confirmed_at",
                "is_anonymous",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
        let c = convert(&src, &opts(PolicyMode::Drop)).unwrap();
        assert!(c
            .pre_data
            .iter()
            .any(|s| s.starts_with("CREATE TABLE public.app_users")));
        let r = c.report_text();
        assert!(r.contains("column auth.users.email_change_token_new — becomes public.app_users.email_change_token"), "{r}");
        assert!(
            r.contains("column auth.users.confirmed_at — generated"),
            "{r}"
        );
        assert!(
            r.contains("column auth.users.is_anonymous — Supabase Auth internal"),
            "{r}"
        );
    }

    #[test]
    fn shim_adds_the_auth_functions() {
        let c = convert(&source("", ""), &opts(PolicyMode::Shim)).unwrap();
        assert!(c.pre_data.iter().any(|s| s.contains("FUNCTION auth.uid()")));
        assert!(c.shim);
        let c = convert(&source("", ""), &opts(PolicyMode::Drop)).unwrap();
        assert!(!c.pre_data.iter().any(|s| s.contains("auth.uid")));
    }
}
