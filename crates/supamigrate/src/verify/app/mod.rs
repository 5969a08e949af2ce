//! `verify --app`: does the application work on the target? Read-only on
//! both sides, in verify's snapshot:
//!
//! - [`logins`]: a census of `auth.users` by how each user signs in, and
//!   whether the target keeps what that needs;
//! - [`access`]: each user's access (RLS) compared, for anon, service_role
//!   and a sample of users;
//! - [`answers`]: views and zero-argument functions answer the same;
//! - [`plans`]: the source's most expensive reads planned on both sides;
//! - [`settings`]: what the application needs to point at the target.

pub mod access;
pub mod answers;
pub mod logins;
pub mod plans;
pub mod quick;
pub mod settings;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::Result;
use crate::plan::convert::PolicyMode;
use crate::plan::MigrationPlan;

/// A server's error as the checks report it: its message when its class
/// names objects only (42: access rules and undefined objects, 0A: not
/// supported, 53–58: resources and the system), else its SQLSTATE alone:
/// an error a function raises (P0001), a data exception (22) or a
/// violated constraint (23) may quote the application's data, which a
/// report never holds.
pub fn server_error(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let code = db.code().code();
    if ["42", "0A", "53", "54", "55", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
    {
        db.message().to_string()
    } else {
        format!("error SQLSTATE {code}; its message is not shown: it may quote data")
    }
}

/// Users sampled for the access comparison by default.
pub const DEFAULT_USERS: usize = 20;
/// Statements whose plans are compared by default.
pub const DEFAULT_STATEMENTS: usize = 50;

/// What `verify --app` checks, and how much.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The plan (its tables' mappings, its policy mode).
    pub plan: Arc<MigrationPlan>,
    /// Signed-up users whose access is compared (besides anon and
    /// service_role).
    pub users: usize,
    /// Statements whose plans are compared.
    pub statements: usize,
}

impl AppOptions {
    /// The defaults for `plan`.
    pub fn new(plan: Arc<MigrationPlan>) -> AppOptions {
        AppOptions {
            plan,
            users: DEFAULT_USERS,
            statements: DEFAULT_STATEMENTS,
        }
    }
}

/// What `verify --app` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppReport {
    /// Sign-in kinds.
    pub logins: logins::Logins,
    /// Each user's access.
    pub access: access::Access,
    /// Views' and functions' answers.
    pub answers: answers::Answers,
    /// Query plans.
    pub plans: plans::Plans,
    /// Where the application's new settings were written.
    #[serde(default)]
    pub settings_file: Option<std::path::PathBuf>,
    /// Seconds.
    pub seconds: f64,
}

impl AppReport {
    /// Things that differ.
    pub fn mismatches(&self) -> usize {
        self.logins.mismatches()
            + self.access.differences.len()
            + self.answers.differences.len()
            + self.plans.findings.len()
    }
}

/// Sessions (a pair: source, target) the checks run on at once.
pub const PAIRS: usize = 3;

/// Runs the checks on [`PAIRS`] pairs of sessions, each inside a read-only
/// snapshot transaction (verify's): the access comparison on one, the query
/// plans on another, the logins and the views' answers on the third.
pub async fn check(pairs: &[(Client, Client)], opts: &AppOptions) -> Result<AppReport> {
    let started = std::time::Instant::now();
    let [(s0, t0), (s1, t1), (s2, t2)] = pairs else {
        return Err(crate::error::Error::internal(format!(
            "verify --app needs {PAIRS} pairs of sessions, not {}",
            pairs.len()
        )));
    };
    let plan = &opts.plan;
    let everyone = access::principals(s0, opts.users).await?;
    let timed = |part: &'static str| {
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "verify --app: {part} done"
        )
    };
    let (access, plans, (logins, answers)) = tokio::try_join!(
        async {
            let r = access_part(s0, t0, plan, &everyone).await;
            timed("access");
            r
        },
        async {
            let r = plans::compare(s1, t1, opts.statements, &plan.schemas).await;
            timed("plans");
            r
        },
        async {
            let logins = logins::census(s2, t2, &plan.tables).await?;
            // Views and functions as an anonymous and as a signed-up user.
            let askers: Vec<access::Principal> = everyone
                .iter()
                .filter(|p| p.name == "anon")
                .chain(everyone.iter().skip(2).take(1))
                .cloned()
                .collect();
            let answers = answers::compare(s2, t2, &plan.schemas, &askers).await?;
            timed("logins and answers");
            Ok::<_, crate::error::Error>((logins, answers))
        }
    )?;
    Ok(AppReport {
        logins,
        access,
        answers,
        plans,
        settings_file: None,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Each user's access, unless there is nothing to compare.
async fn access_part(
    src: &Client,
    tgt: &Client,
    plan: &MigrationPlan,
    everyone: &[access::Principal],
) -> Result<access::Access> {
    if plan.options.policies == PolicyMode::Drop {
        return Ok(access::Access {
            not_checked: Some("RLS policies were dropped (--policies drop): access control is now the application's, not the database's; nothing to compare".into()),
            ..access::Access::default()
        });
    }
    let tables = rls_tables(src, plan).await?;
    if tables.is_empty() {
        return Ok(access::Access {
            not_checked: Some("no migrated table has row level security on the source".into()),
            ..access::Access::default()
        });
    }
    access::compare(src, tgt, everyone, &tables).await
}

/// Writes the application's new settings into `m`'s state folder, from its
/// plan, its target and what `report` found; returns the file's path.
pub async fn write_settings(
    m: &crate::migration::Migration,
    report: &AppReport,
) -> Result<std::path::PathBuf> {
    let plan = &m.plan;
    let kinds: Vec<&str> = report
        .logins
        .kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    let tgt = crate::connect::connect(&m.target).await?;
    let vault: Vec<String> = tgt
        .query(
            "select name from vault.secrets where to_regclass('vault.secrets') is not null and name is not null order by 1",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let secrets = m.state.secrets_file();
    let facts = settings::Facts {
        host: m.target.host.clone(),
        port: m.target.port,
        dbname: m.target.dbname.clone(),
        ca: m.target.sslrootcert.clone(),
        app_role: plan.options.app_role.clone(),
        shim: plan.options.policies == PolicyMode::Shim,
        buckets: plan
            .storage
            .buckets
            .iter()
            .map(|b| (b.id.clone(), b.dest.clone()))
            .collect(),
        url_prefix: plan
            .storage
            .rewrite
            .as_ref()
            .and_then(|r| r.url_prefix.clone()),
        oauth: kinds
            .iter()
            .filter_map(|k| k.strip_prefix("OAuth: "))
            .map(str::to_string)
            .collect(),
        sso: kinds.contains(&"SSO (SAML)"),
        phone: kinds.iter().any(|k| k.starts_with("phone")),
        vault,
        found_secrets: secrets.exists().then_some(secrets),
    };
    settings::write(m.state.path(), &facts)
}

/// The plan's tables of the application's schemas (and `auth.users`) with
/// RLS enabled on the source, with their compared columns. Supabase's own
/// tables (Storage's, Auth's others) are read by its services, not through
/// the application's roles.
pub(super) async fn rls_tables(
    src: &Client,
    plan: &MigrationPlan,
) -> Result<Vec<access::RlsTable>> {
    let on = access::rls_tables(src).await?;
    let users = crate::pg::TableName::new("auth", "users");
    let mut out = Vec::new();
    for m in plan
        .tables
        .iter()
        .filter(|m| on.contains(&m.source))
        .filter(|m| plan.schemas.contains(&m.source.schema) || m.source == users)
    {
        let compared = crate::follow::check::compared_columns(plan, m);
        let key = primary_key(src, &m.source).await?;
        let by_key: Vec<(String, String)> = key
            .iter()
            .filter_map(|k| compared.iter().find(|(s, _)| s == k).cloned())
            .collect();
        out.push(access::RlsTable {
            source: m.source.clone(),
            target: m.target.clone(),
            columns: if !key.is_empty() && by_key.len() == key.len() {
                by_key
            } else {
                compared
            },
        });
    }
    Ok(out)
}

/// A table's primary key columns on the source, in order.
async fn primary_key(src: &Client, t: &crate::pg::TableName) -> Result<Vec<String>> {
    let rows = src
        .query(
            "select a.attname::text from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = to_regclass($1) and i.indisprimary \
             order by array_position(i.indkey::int2[], a.attnum)",
            &[&t.quoted()],
        )
        .await
        .map_err(|e| crate::error::Error::postgres(format!("reading the primary key of {t}"), e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What the checks found different, a line each.
pub fn differences(r: &AppReport) -> Vec<String> {
    groups(r)
        .into_iter()
        .flat_map(|(title, lines)| {
            lines
                .into_iter()
                .filter(|(ok, _)| !ok)
                .map(move |(_, l)| format!("{title}: {l}"))
        })
        .collect()
}

/// One line saying what the checks proved.
pub fn summary(r: &AppReport) -> String {
    let plans = match &r.plans.not_checked {
        Some(_) => "query plans not compared (no pg_stat_statements)".to_string(),
        None => format!("{} busy read(s) planned on both sides", r.plans.compared),
    };
    format!(
        "application: {} user(s) in {} sign-in kind(s); {} principal(s) × {} RLS table(s) compared; {} view(s) and {} function(s) compared; {plans}; {} difference(s)",
        r.logins.users,
        r.logins.kinds.len(),
        r.access.principals.len(),
        r.access.tables.len(),
        r.answers.views.len(),
        r.answers.functions.len(),
        r.mismatches()
    )
}

/// The report's groups of lines: (title, [(ok, line)]).
pub fn groups(r: &AppReport) -> Vec<(&'static str, Vec<(bool, String)>)> {
    let mut out = vec![
        ("Logins", login_lines(&r.logins)),
        ("Each user's access (RLS)", access_lines(&r.access)),
        ("Views and functions", answer_lines(&r.answers)),
        ("Query plans", plan_lines(&r.plans)),
    ];
    if let Some(p) = &r.settings_file {
        out.push((
            "The application's new settings",
            vec![(
                true,
                format!("written to {} (no secret's value in it)", p.display()),
            )],
        ));
    }
    out
}

fn login_lines(l: &logins::Logins) -> Vec<(bool, String)> {
    if let Some(why) = &l.not_checked {
        return vec![(true, format!("not checked: {why}"))];
    }
    let mut out: Vec<(bool, String)> = l
        .kinds
        .iter()
        .map(|k| {
            let kept = if k.differing == 0 {
                format!("kept on the target ({})", k.compared)
            } else {
                format!(
                    "{} user(s) differ on the target ({})",
                    k.differing, k.compared
                )
            };
            (
                k.differing == 0,
                format!("{}: {} user(s), {kept}; to do: {}", k.kind, k.users, k.todo),
            )
        })
        .collect();
    out.push((
        true,
        format!("{} user(s) in all; {}", l.users, logins::FOR_EVERYONE),
    ));
    out
}

fn seen_text(s: &access::Seen) -> String {
    match s {
        access::Seen::Rows { count, .. } => format!("{count} row(s)"),
        access::Seen::Refused { message } => format!("refused ({message})"),
    }
}

/// " (same count, other values)" when only the fingerprints differ.
fn same_count(a: &access::Seen, b: &access::Seen) -> &'static str {
    match (a, b) {
        (access::Seen::Rows { count: x, .. }, access::Seen::Rows { count: y, .. }) if x == y => {
            " (same count, other values)"
        }
        _ => "",
    }
}

fn access_lines(a: &access::Access) -> Vec<(bool, String)> {
    if let Some(why) = &a.not_checked {
        return vec![(true, format!("not compared: {why}"))];
    }
    let mut out: Vec<(bool, String)> = a
        .differences
        .iter()
        .map(|d| {
            let what = same_count(&d.source, &d.target);
            (
                false,
                format!(
                    "{} as {}: source {}, target {}{what}; policies: {}",
                    d.table,
                    d.principal,
                    seen_text(&d.source),
                    seen_text(&d.target),
                    if d.policies.is_empty() {
                        "none".to_string()
                    } else {
                        d.policies.join(", ")
                    }
                ),
            )
        })
        .collect();
    if out.is_empty() {
        out.push((
            true,
            format!(
                "{} table(s) with RLS read as {} principal(s) (anon, service_role and {} user(s)): every one sees the same rows on both sides",
                a.tables.len(),
                a.principals.len(),
                a.principals.len().saturating_sub(2)
            ),
        ));
    }
    out
}

fn answer_lines(a: &answers::Answers) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = a
        .differences
        .iter()
        .map(|d| {
            (
                false,
                format!(
                    "{} as {}: source {}, target {}{}",
                    d.object,
                    d.principal,
                    seen_text(&d.source),
                    seen_text(&d.target),
                    same_count(&d.source, &d.target)
                ),
            )
        })
        .collect();
    if out.is_empty() {
        out.push((
            true,
            format!(
                "{} view(s) and {} function(s) answer the same as {}",
                a.views.len(),
                a.functions.len(),
                if a.principals.is_empty() {
                    "nobody".to_string()
                } else {
                    a.principals.join(" and ")
                }
            ),
        ));
    }
    out
}

fn plan_lines(p: &plans::Plans) -> Vec<(bool, String)> {
    if let Some(why) = &p.not_checked {
        return vec![(true, format!("not compared: {why}"))];
    }
    let mut out: Vec<(bool, String)> = p
        .findings
        .iter()
        .map(|f| {
            (
                false,
                format!("{}: {}; likely cause: {}", f.query, f.what, f.cause),
            )
        })
        .collect();
    out.push((
        true,
        format!(
            "{} statement(s) from pg_stat_statements planned on both sides{}",
            p.compared,
            if p.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} could not be planned on one side)", p.skipped.len())
            }
        ),
    ));
    out
}
