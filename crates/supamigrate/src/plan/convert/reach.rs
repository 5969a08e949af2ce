//! What the target will have, and which statements use something it will
//! not: each of those is left out, with what replaces it, and so is
//! everything that uses what was left out (to a fixed point), so that what
//! is applied runs.
//!
//! The target has: every object of the application's kept statements; the
//! members of the extensions it gets; `auth.users` (a view over
//! `public.app_users`) and `auth.uid()`, `auth.role()`, `auth.email()`,
//! `auth.jwt()` when the source has Supabase Auth; `storage.buckets`,
//! `storage.objects` and `storage.foldername()`/`filename()`/`extension()`
//! when it has Supabase Storage. Not Supabase's other schemas (`net`,
//! `realtime`, `vault`…): [`PLATFORM`] says, for each, what replaces it.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, ObjectType};
use pg_query::NodeEnum;

use super::extensions::{Fate, Gone};
use super::runtime::{Available, Shim};
use crate::sql::uses::{Name, Uses};
use crate::sql::{parts, Statement};
use crate::supabase::is_internal_schema;

/// A Supabase schema the target does not have: what code using it did, and
/// what replaces it. Data-driven: one row per schema.
pub struct PlatformSchema {
    /// The schema.
    pub schema: &'static str,
    /// What it is.
    pub what: &'static str,
    /// What the user does instead.
    pub instead: &'static str,
}

/// Supabase's schemas and their replacements on AWS.
pub const PLATFORM: &[PlatformSchema] = &[
    PlatformSchema { schema: "net", what: "pg_net (HTTP requests from the database)", instead: "call the endpoint from the application, or from an AWS Lambda function (on RDS a trigger can invoke one with the aws_lambda extension)" },
    PlatformSchema { schema: "supabase_functions", what: "a Database Webhook (supabase_functions.http_request)", instead: "send the event from the application, or invoke an AWS Lambda function from a trigger with the aws_lambda extension (RDS)" },
    PlatformSchema { schema: "realtime", what: "Supabase Realtime", instead: "publish the change from the application (AWS AppSync, API Gateway WebSockets) or stream changes with logical replication" },
    PlatformSchema { schema: "vault", what: "Supabase Vault", instead: "keep the secret in AWS Secrets Manager and read it from the application" },
    PlatformSchema { schema: "pgsodium", what: "pgsodium", instead: "encrypt with AWS KMS, or with pgcrypto (offered on RDS)" },
    PlatformSchema { schema: "pgmq", what: "pgmq queues", instead: "use Amazon SQS" },
    PlatformSchema { schema: "cron", what: "pg_cron from the application's database", instead: "on RDS pg_cron runs in the postgres database: schedule there with cron.schedule_in_database, or use Amazon EventBridge Scheduler" },
    PlatformSchema { schema: "graphql", what: "pg_graphql", instead: "serve GraphQL from the application (PostGraphile, AWS AppSync)" },
    PlatformSchema { schema: "graphql_public", what: "pg_graphql", instead: "serve GraphQL from the application (PostGraphile, AWS AppSync)" },
    PlatformSchema { schema: "auth", what: "Supabase Auth's own table (only auth.users, as public.app_users, and the Auth tables describing users or read by the application move)", instead: "read users from public.app_users, or move sign-in to Amazon Cognito or another identity provider" },
    PlatformSchema { schema: "storage", what: "Supabase Storage's internals (only storage.buckets and storage.objects move)", instead: "use the S3 API" },
    PlatformSchema { schema: "extensions", what: "an object in Supabase's extensions schema that no extension of the target provides", instead: "install the extension on the target, or rewrite the code without it" },
    PlatformSchema { schema: "supabase_migrations", what: "the Supabase CLI's migration history", instead: "keep migrations in your own tool" },
    PlatformSchema { schema: "pgbouncer", what: "Supavisor/PgBouncer's auth function", instead: "use RDS Proxy" },
];

/// Extensions whose functions do what a Supabase service does: what
/// replaces them.
const EXTENSION_INSTEAD: &[(&str, &str)] = &[
    ("http", "call the endpoint from the application, or from an AWS Lambda function (aws_lambda extension on RDS)"),
    ("pg_net", "call the endpoint from the application, or from an AWS Lambda function (aws_lambda extension on RDS)"),
    ("pgjwt", "sign and verify tokens in the application"),
    ("pg_graphql", "serve GraphQL from the application (PostGraphile, AWS AppSync)"),
    ("pgsodium", "encrypt with AWS KMS, or with pgcrypto (offered on RDS)"),
    ("supabase_vault", "keep the secret in AWS Secrets Manager"),
    ("wrappers", "read the external API from the application"),
    ("pgmq", "use Amazon SQS"),
    ("pg_jsonschema", "validate in the application, or with a CHECK constraint"),
];

/// Something a statement uses that the target will not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What happens (`calls net.http_post: pg_net (…) is not on the target`).
    pub reason: String,
    /// What the user does instead.
    pub todo: String,
}

/// What the conversion adds because kept statements use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The runtime shims kept statements call.
    pub runtime: BTreeSet<Shim>,
    /// Supabase Auth's tables (beyond users) kept statements read.
    pub auth_tables: BTreeSet<String>,
    /// `auth.users` is read or written.
    pub users_view: bool,
    /// `auth.uid()` & co. are called.
    pub auth_functions: bool,
}

/// The source's facts reach decides with.
pub struct Context<'a> {
    /// Application schemas.
    pub schemas: &'a [String],
    /// The source has auth.users.
    pub has_auth: bool,
    /// The source has storage.objects.
    pub has_storage: bool,
    /// The extensions' fate.
    pub fate: &'a Fate,
    /// Functions of the application's triggers on Supabase's tables that
    /// are left out (on auth.identities, storage.objects…).
    pub dropped_trigger_functions: &'a BTreeSet<Name>,
    /// The runtime shims the target can have.
    pub runtime: &'a Available,
    /// Supabase Auth's tables (beyond users) the source has: they can move.
    pub auth_tables: &'a BTreeSet<String>,
}

const AUTH_FUNCTIONS: &[&str] = &["uid", "role", "email", "jwt"];
const STORAGE_FUNCTIONS: &[&str] = &["foldername", "filename", "extension"];
const STORAGE_TABLES: &[&str] = &["buckets", "objects"];

/// What one statement provides, uses and is named as in the catalog.
struct Item {
    relations: BTreeSet<Name>,
    functions: BTreeSet<Name>,
    key: Option<String>,
    uses: Uses,
    subjects: (BTreeSet<Name>, BTreeSet<Name>),
    droppable: bool,
    /// For a trigger: its function.
    trigger_function: Option<Name>,
    /// A foreign table: its server is never migrated.
    foreign: bool,
}

/// The outcome: for each statement, what it uses that the target will not
/// have (`Some`: it is left out); what the kept ones need.
#[derive(Debug, Default)]
pub struct Reach {
    /// By statement index.
    pub verdict: Vec<Option<Missing>>,
    /// What kept statements need the conversion to add.
    pub needs: Needs,
    /// Kept statements' objects that read or change `auth.users`.
    pub users_used_by: Vec<String>,
    dropped_relations: BTreeSet<Name>,
    dropped_functions: BTreeSet<Name>,
}

impl Reach {
    /// Whether the relation `n` is left out.
    pub fn relation_dropped(&self, n: &Name) -> bool {
        self.dropped_relations.contains(n)
            || self
                .dropped_relations
                .iter()
                .any(|d| d.name == n.name && (d.schema.is_empty() || n.schema.is_empty()))
    }

    /// What of `uses` (a cron job's command…) the target will not have,
    /// left-out statements' objects included.
    pub fn missing(&self, uses: &Uses, ctx: &Context) -> Option<Missing> {
        for f in &uses.functions {
            if let Some(d) = through_search_path(&self.dropped_functions, f) {
                return Some(Missing {
                    reason: format!("calls {d}, which is left out"),
                    todo: format!("see the line for {d}"),
                });
            }
            if let Some(m) = function_missing(f, ctx) {
                return Some(m);
            }
        }
        for r in &uses.relations {
            if let Some(d) = through_search_path(&self.dropped_relations, r) {
                return Some(Missing {
                    reason: format!("reads {d}, which is left out"),
                    todo: format!("see the line for {d}"),
                });
            }
            if let Some(m) = relation_missing(r, ctx) {
                return Some(m);
            }
        }
        None
    }
}

/// The left-out object `n` names: itself, or for an unqualified name (a
/// cron job's `select cleanup()`) the one Supabase's default search path
/// (`"$user", public, extensions`) finds.
fn through_search_path<'a>(dropped: &'a BTreeSet<Name>, n: &Name) -> Option<&'a Name> {
    if let Some(d) = dropped.get(n) {
        return Some(d);
    }
    if !n.schema.is_empty() {
        return None;
    }
    ["public", "extensions"]
        .iter()
        .find_map(|s| dropped.get(&Name::new(s, &n.name)))
}

/// A column of a table it uses that is left out with its type's extension
/// (`--allow-drop-extension`): the body would fail on the target (a dump
/// creates functions unchecked, so nothing says so before they run).
fn reads_dropped_column(it: &Item, ctx: &Context) -> Option<Missing> {
    if it.uses.columns.is_empty() {
        return None;
    }
    ctx.fate.dependents.iter().find_map(|(key, why)| {
        let (table, column) = key.strip_prefix("column ")?.rsplit_once('.')?;
        let (schema, name) = table.split_once('.')?;
        let uses_table = it.uses.relations.contains(&Name::new(schema, name))
            || it.uses.relations.contains(&Name::new("", name));
        (uses_table && it.uses.columns.contains(column)).then(|| Missing {
            reason: format!("reads column {table}.{column}, which is left out ({why})"),
            todo: format!("rewrite it without {column}, or install the extension on the target"),
        })
    })
}

/// Decides, for each statement, whether it uses something the target will
/// not have, to a fixed point; and what the kept ones need.
pub fn analyze(stmts: &[&Statement], ctx: &Context) -> Reach {
    let items: Vec<Item> = stmts.iter().map(|st| item(st)).collect();
    let mut verdict: Vec<Option<Missing>> = vec![None; items.len()];
    loop {
        let dropped_rel: BTreeMap<&Name, usize> = dropped(&items, &verdict, |i| &i.relations);
        let dropped_fn: BTreeMap<&Name, usize> = dropped(&items, &verdict, |i| &i.functions);
        let mut changed = false;
        for (i, it) in items.iter().enumerate() {
            if verdict[i].is_some() || !it.droppable {
                continue;
            }
            let m = it
                .key
                .as_ref()
                .and_then(|k| ctx.fate.dependents.get(k))
                .map(|reason| Missing {
                    reason: reason.clone(),
                    todo: "install the extension on the target, or rewrite this without it".into(),
                })
                .or_else(|| check(it, ctx, &dropped_rel, &dropped_fn, &items, &verdict));
            if m.is_some() {
                verdict[i] = m;
                changed = true;
            }
        }
        if !changed && !orphans(&items, &mut verdict, ctx) {
            break;
        }
    }
    summarize(items, verdict, ctx)
}

/// Trigger functions all of whose triggers are left out are left out too
/// (nothing else can call them); true when one was.
fn orphans(items: &[Item], verdict: &mut [Option<Missing>], ctx: &Context) -> bool {
    let mut triggers: BTreeMap<&Name, (usize, usize)> = BTreeMap::new();
    for (it, v) in items.iter().zip(verdict.iter()) {
        if let Some(f) = &it.trigger_function {
            let e = triggers.entry(f).or_default();
            if v.is_some() {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    for f in ctx.dropped_trigger_functions {
        triggers.entry(f).or_default().1 += 1;
    }
    let mut changed = false;
    for (i, it) in items.iter().enumerate() {
        if verdict[i].is_some() {
            continue;
        }
        let orphan = it
            .functions
            .iter()
            .find(|f| matches!(triggers.get(f), Some((0, d)) if *d > 0));
        if let Some(f) = orphan {
            verdict[i] = Some(Missing {
                reason: format!(
                    "trigger function of triggers that are all left out: {f} would never run"
                ),
                todo: "see the lines for its triggers".into(),
            });
            changed = true;
        }
    }
    changed
}

fn summarize(items: Vec<Item>, verdict: Vec<Option<Missing>>, ctx: &Context) -> Reach {
    let mut r = Reach::default();
    for (it, v) in items.into_iter().zip(&verdict) {
        if v.is_some() {
            r.dropped_relations.extend(it.relations);
            r.dropped_functions.extend(it.functions);
            continue;
        }
        if it.uses.relations.iter().any(|x| x.is("auth", "users")) {
            r.needs.users_view = true;
            if let Some(k) = &it.key {
                r.users_used_by.push(k.clone());
            }
        }
        let shims = it
            .uses
            .functions
            .iter()
            .filter_map(|f| ctx.runtime.function(f));
        let shims: Vec<Shim> = shims
            .chain(
                it.uses
                    .relations
                    .iter()
                    .filter_map(|x| ctx.runtime.relation(x)),
            )
            .chain(
                it.trigger_function
                    .iter()
                    .filter_map(|f| ctx.runtime.function(f)),
            )
            .collect();
        r.needs.runtime.extend(shims);
        r.needs.auth_tables.extend(
            it.uses
                .relations
                .iter()
                .filter(|x| x.schema == "auth" && ctx.auth_tables.contains(&x.name))
                .map(|x| x.name.clone()),
        );
        r.needs.auth_functions |= it
            .uses
            .functions
            .iter()
            .any(|f| f.schema == "auth" && AUTH_FUNCTIONS.contains(&f.name.as_str()));
    }
    r.verdict = verdict;
    r
}

fn dropped<'a>(
    items: &'a [Item],
    verdict: &[Option<Missing>],
    set: impl Fn(&'a Item) -> &'a BTreeSet<Name>,
) -> BTreeMap<&'a Name, usize> {
    let mut out = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        if verdict[i].is_some() {
            for n in set(it) {
                out.insert(n, i);
            }
        }
    }
    out
}

fn check(
    it: &Item,
    ctx: &Context,
    dropped_rel: &BTreeMap<&Name, usize>,
    dropped_fn: &BTreeMap<&Name, usize>,
    items: &[Item],
    verdict: &[Option<Missing>],
) -> Option<Missing> {
    let left_out = |kind: &str, n: &Name, by: usize| {
        let why = verdict[by]
            .as_ref()
            .map(|m| m.reason.as_str())
            .unwrap_or("");
        let name = items[by]
            .key
            .clone()
            .unwrap_or_else(|| format!("{kind} {n}"));
        Missing {
            reason: format!("uses {name}, which is left out ({why})"),
            todo: format!("see the line for {name}"),
        }
    };
    if let Some(m) = reads_dropped_column(it, ctx) {
        return Some(m);
    }
    if it.foreign {
        return Some(Missing {
            reason: "its foreign server is not migrated (see the line for the server)".into(),
            todo: "read the external API from the application, or create the server and the foreign table on the target yourself".into(),
        });
    }
    // Calls first: they say best what the code did.
    for f in it.uses.functions.iter().chain(&it.subjects.1) {
        if let Some(by) = dropped_fn.get(f) {
            return Some(left_out("function", f, *by));
        }
        if let Some(m) = function_missing(f, ctx) {
            return Some(m);
        }
    }
    for r in it.uses.relations.iter().chain(&it.subjects.0) {
        if let Some(by) = dropped_rel.get(r) {
            return Some(left_out("relation", r, *by));
        }
        if let Some(m) = relation_missing(r, ctx) {
            return Some(m);
        }
    }
    None
}

fn relation_missing(r: &Name, ctx: &Context) -> Option<Missing> {
    if ctx.runtime.relation(r).is_some() {
        return None;
    }
    if let Some((ext, g)) = ctx.fate.gone_relation(r) {
        return Some(extension_missing("reads", r, ext, g));
    }
    if r.schema.is_empty() || ctx.schemas.contains(&r.schema) || !is_internal_schema(&r.schema) {
        return None;
    }
    if (r.is("auth", "users") && ctx.has_auth)
        || (r.schema == "auth" && ctx.auth_tables.contains(&r.name))
        || (r.schema == "storage" && STORAGE_TABLES.contains(&r.name.as_str()) && ctx.has_storage)
        || ctx.fate.carried_relation(r)
    {
        return None;
    }
    platform_missing("reads", r)
}

fn function_missing(f: &Name, ctx: &Context) -> Option<Missing> {
    if ctx.runtime.function(f).is_some() {
        return None;
    }
    if let Some((ext, g)) = ctx.fate.gone_function(f) {
        return Some(extension_missing("calls", f, ext, g));
    }
    if f.schema.is_empty() || ctx.schemas.contains(&f.schema) || !is_internal_schema(&f.schema) {
        return None;
    }
    // auth.uid() & co. are added whenever a kept statement calls them.
    if (f.schema == "auth" && AUTH_FUNCTIONS.contains(&f.name.as_str()))
        || (f.schema == "storage"
            && STORAGE_FUNCTIONS.contains(&f.name.as_str())
            && ctx.has_storage)
        || ctx.fate.carried_function(f)
    {
        return None;
    }
    platform_missing("calls", f)
}

fn extension_missing(verb: &str, n: &Name, ext: &str, g: Gone) -> Missing {
    if ext == super::PG_CRON {
        if let Some(m) = platform_missing(verb, &Name::new("cron", &n.name)) {
            return m;
        }
    }
    let how = match g {
        Gone::Dropped => "dropped with --allow-drop-extension",
        Gone::LeftBehind => "not offered by the target",
    };
    let todo = EXTENSION_INSTEAD
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| {
            format!("make extension {ext} available on the target, or rewrite this without it")
        });
    Missing {
        reason: format!("{verb} {n}, of extension {ext} ({how})"),
        todo,
    }
}

fn platform_missing(verb: &str, n: &Name) -> Option<Missing> {
    let p = PLATFORM.iter().find(|p| p.schema == n.schema)?;
    Some(Missing {
        reason: format!("{verb} {n}: {} is not on the target", p.what),
        todo: p.instead.to_string(),
    })
}

fn item(st: &Statement) -> Item {
    let mut uses = crate::sql::uses::of_statement(st);
    // Foreign keys to auth.users and triggers on it move to app_users (the
    // rules do it): they do not use the auth.users view.
    let moves_off_auth_users = match st.node() {
        Some(NodeEnum::CreateTrigStmt(t)) => t
            .relation
            .as_ref()
            .is_some_and(|r| r.schemaname == "auth" && r.relname == "users"),
        Some(NodeEnum::AlterTableStmt(_)) | Some(NodeEnum::CreateStmt(_)) => true,
        _ => false,
    };
    if moves_off_auth_users {
        uses.relations.remove(&Name::new("auth", "users"));
    }
    let mut it = Item {
        relations: BTreeSet::new(),
        functions: BTreeSet::new(),
        key: None,
        uses,
        subjects: (BTreeSet::new(), BTreeSet::new()),
        droppable: true,
        trigger_function: None,
        foreign: false,
    };
    if let Some(node) = st.node() {
        describe(&node, &mut it);
    }
    it
}

fn rel(rv: &Option<protobuf::RangeVar>) -> Name {
    rv.as_ref()
        .map(|r| Name::new(&r.schemaname, &r.relname))
        .unwrap_or_else(|| Name::new("", ""))
}

/// What `node` provides and what the catalog calls it.
fn describe(node: &NodeEnum, it: &mut Item) {
    let provide_rel = |it: &mut Item, kind: &str, n: Name| {
        it.key = Some(format!("{kind} {n}"));
        it.relations.insert(n);
    };
    match node {
        NodeEnum::CreateStmt(c) => {
            provide_rel(it, "table", rel(&c.relation));
            // Tables hold data: never left out whole (columns and defaults
            // of gone extensions are removed by the rules).
            it.droppable = false;
        }
        NodeEnum::CreateForeignTableStmt(c) => {
            it.foreign = true;
            provide_rel(
                it,
                "foreign table",
                rel(&c.base_stmt.as_ref().and_then(|b| b.relation.clone())),
            )
        }
        NodeEnum::ViewStmt(v) => provide_rel(it, "view", rel(&v.view)),
        NodeEnum::CreateTableAsStmt(c) => provide_rel(
            it,
            "materialized view",
            rel(&c.into.as_ref().and_then(|i| i.rel.clone())),
        ),
        NodeEnum::CreateFunctionStmt(f) => {
            if let Some(n) = Name::from_parts(&parts(&f.funcname)) {
                it.key = Some(format!("function {n}"));
                it.functions.insert(n);
            }
        }
        NodeEnum::IndexStmt(i) => {
            it.key = Some(format!("index {}.{}", rel(&i.relation).schema, i.idxname));
        }
        NodeEnum::CreateTrigStmt(t) => {
            it.key = Some(format!("trigger {} on {}", t.trigname, rel(&t.relation)));
            it.trigger_function = Name::from_parts(&parts(&t.funcname));
        }
        NodeEnum::CreatePolicyStmt(p) => {
            it.key = Some(format!("policy \"{}\" on {}", p.policy_name, rel(&p.table)));
        }
        NodeEnum::AlterTableStmt(a) => it.key = constraint_key(a),
        NodeEnum::GrantStmt(g) => it.subjects = grant_subjects(g),
        NodeEnum::CommentStmt(c) if c.objtype == ObjectType::ObjectFunction as i32 => {
            if let Some(NodeEnum::ObjectWithArgs(o)) =
                c.object.as_ref().and_then(|o| o.node.as_ref())
            {
                if let Some(n) = Name::from_parts(&parts(&o.objname)) {
                    it.subjects.1.insert(n);
                }
            }
        }
        _ => {}
    }
}

fn constraint_key(a: &protobuf::AlterTableStmt) -> Option<String> {
    let table = rel(&a.relation);
    a.cmds.iter().find_map(|c| match c.node.as_ref() {
        Some(NodeEnum::AlterTableCmd(cmd)) => {
            match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(con)) if !con.conname.is_empty() => {
                    Some(format!("constraint {} on {table}", con.conname))
                }
                _ => None,
            }
        }
        _ => None,
    })
}

fn grant_subjects(g: &protobuf::GrantStmt) -> (BTreeSet<Name>, BTreeSet<Name>) {
    let mut rels = BTreeSet::new();
    let mut funcs = BTreeSet::new();
    for o in &g.objects {
        match o.node.as_ref() {
            Some(NodeEnum::ObjectWithArgs(f)) => {
                if let Some(n) = Name::from_parts(&parts(&f.objname)) {
                    funcs.insert(n);
                }
            }
            Some(NodeEnum::RangeVar(r)) => {
                rels.insert(Name::new(&r.schemaname, &r.relname));
            }
            _ => {}
        }
    }
    (rels, funcs)
}
