//! Preflight: everything the migration needs, checked before anything is
//! written, each failure with how to fix it. [`gather`] reads the facts
//! (reads only); [`evaluate`] is a pure function from them to the checks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::dump::tool_major;
use crate::connect::{connect, find_pg_tool, probe, ConnInfo, Probe};
use crate::error::{Error, Result};
use crate::plan::{MigrationPlan, Section, MEASURED_MB_PER_S};

/// The plan preflight checks against, or why there is none (a failed check).
pub type PlanOrWhyNot<'a> = std::result::Result<&'a MigrationPlan, &'a Error>;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but worth knowing.
    Warn,
    /// Blocks the migration.
    Fail,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix a failure or warning.
    pub hint: Option<String>,
}

fn check(name: &str, status: Status, detail: impl Into<String>, hint: Option<&str>) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail: detail.into(),
        hint: hint.map(str::to_string),
    }
}

/// An error as a fact: its message and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Failure {
        Failure {
            message: e.to_string(),
            hint: e.hint().map(str::to_string),
        }
    }
}

/// The target server as preflight found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    /// The probe.
    pub probe: Probe,
    /// The target database's name.
    pub database: String,
    /// The login role may create databases.
    pub createdb: bool,
    /// … and roles.
    pub createrole: bool,
    /// Tables the plan creates that the target database already holds,
    /// when no migration of ours is under way there (`schema.table`).
    pub occupied: Vec<String>,
}

/// Read access to a Supabase table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `auth.users`, `storage.objects`.
    pub table: String,
    /// What it holds, for messages.
    pub what: String,
    /// It exists.
    pub exists: bool,
    /// The login role may read it.
    pub readable: bool,
}

/// A PostgreSQL program preflight needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// `pg_dump`, `pg_restore`.
    pub name: String,
    /// Its major version and `--version` text, or why it cannot be run.
    pub version: std::result::Result<(u32, String), String>,
}

/// The source database's size and `wal_level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeAndWal {
    /// Bytes.
    pub bytes: i64,
    /// `wal_level`.
    pub wal_level: String,
}

/// The disk backups go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    /// The nearest existing folder of the backup folder.
    pub dir: PathBuf,
    /// Free bytes there, or why that is unknown.
    pub free: std::result::Result<f64, String>,
}

/// What the plan says, for preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFacts {
    /// Application schemas.
    pub schemas: Vec<String>,
    /// Statements before and after the data.
    pub pre_data: usize,
    /// After.
    pub post_data: usize,
}

/// Everything preflight looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The source's port (6543 is Supabase's transaction pooler).
    pub source_port: u16,
    /// The source, or why it cannot be reached.
    pub source: std::result::Result<Probe, Failure>,
    /// `pg_dump` and `pg_restore`.
    pub tools: Vec<Tool>,
    /// The target.
    pub target: std::result::Result<TargetFacts, Failure>,
    /// auth.users, storage.objects.
    pub access: Vec<Access>,
    /// The source database's size and `wal_level`.
    pub size_and_wal: Option<SizeAndWal>,
    /// Where backups go, and the free bytes there.
    pub backup_disk: Disk,
    /// The plan, or why it cannot be made (an extension the target lacks…).
    pub plan: std::result::Result<PlanFacts, Failure>,
    /// The users, by how they sign in (when auth.users is readable).
    pub users: Option<UserKinds>,
    /// bytea columns holding a value too large for the backup's pg_dump
    /// (`None`: not read, the plan or the source unavailable).
    pub oversized: Option<Vec<Oversized>>,
}

/// A bytea column whose largest value pg_dump cannot write: it writes bytea
/// in hex, twice its size, and one value may not exceed 1 GB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oversized {
    /// `schema.table.column`.
    pub column: String,
    /// Its largest value, bytes.
    pub bytes: i64,
}

/// The largest bytea value pg_dump can write (hex: `\\x` and two digits a
/// byte, within PostgreSQL's 1 GB allocation limit).
pub const MAX_DUMPABLE_BYTEA: i64 = (0x3fff_ffff - 3) / 2;

/// The bytea columns of the plan's tables whose largest value is over
/// [`MAX_DUMPABLE_BYTEA`]. Reads each such column's lengths (the heap, not
/// the values).
async fn oversized_bytea(source: &ConnInfo, plan: &MigrationPlan) -> Result<Vec<Oversized>> {
    let client = connect(source).await?;
    let tables: Vec<String> = plan.tables.iter().map(|m| m.source.to_string()).collect();
    let columns = client
        .query(
            "select format('%I.%I', n.nspname, c.relname), quote_ident(a.attname), \
                    format('%s.%s.%s', n.nspname, c.relname, a.attname) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where a.atttypid = 'bytea'::regtype and a.attnum > 0 and not a.attisdropped \
               and c.relkind in ('r', 'p') and n.nspname || '.' || c.relname = any($1) \
             order by 3",
            &[&tables],
        )
        .await
        .map_err(|e| Error::postgres("listing the source's bytea columns", e))?;
    let mut out = Vec::new();
    for r in columns {
        let (table, column, name): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let most: Option<i64> = client
            .query_one(
                &crate::sql::own(&format!(
                    "select max(octet_length({column}))::int8 from {table}"
                )),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("measuring {name}"), e))?
            .get(0);
        if let Some(bytes) = most.filter(|b| *b > MAX_DUMPABLE_BYTEA) {
            out.push(Oversized {
                column: name,
                bytes,
            });
        }
    }
    Ok(out)
}

/// `auth.users` by kind of user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKinds {
    /// Every user.
    pub total: i64,
    /// With an email (SSO users aside).
    pub email: i64,
    /// With a phone and no email.
    pub phone_only: i64,
    /// Anonymous sign-ins.
    pub anonymous: i64,
    /// Through SSO (SAML).
    pub sso: i64,
    /// Without a password (OAuth, magic link, OTP, SSO, anonymous).
    pub no_password: i64,
}

/// The plan's facts for preflight.
pub fn plan_facts(plan: PlanOrWhyNot<'_>) -> std::result::Result<PlanFacts, Failure> {
    match plan {
        Ok(p) => Ok(PlanFacts {
            schemas: p.schemas.clone(),
            pre_data: p.statements(Section::PreData).len(),
            post_data: p.statements(Section::PostData).len(),
        }),
        Err(e) => Err(Failure::from(e)),
    }
}

fn tool_version(name: &str) -> std::result::Result<(u32, String), String> {
    let path = find_pg_tool(name).map_err(|e| e.to_string())?;
    let out = crate::connect::child(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = tool_major(&path).map_err(|e| e.to_string())?;
    Ok((major, text))
}

async fn target_facts(target: &ConnInfo, plan: PlanOrWhyNot<'_>) -> Result<TargetFacts> {
    let p = probe(target).await?;
    let db = if p.database_exists {
        target.dbname.as_str()
    } else {
        "postgres"
    };
    let c = connect(&target.with_dbname(db)).await?;
    let r = c
        .query_one(
            "select rolcreatedb, rolcreaterole from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the target role's privileges", e))?;
    let occupied = match plan {
        Ok(plan) if p.database_exists && crate::store::version(&c).await? == 0 => {
            let names: Vec<String> = plan.tables.iter().map(|m| m.target.quoted()).collect();
            c.query(
                "select i from unnest($1::text[]) with ordinality u(n, i) where to_regclass(n) is not null order by i",
                &[&names],
            )
            .await
            .map_err(|e| Error::postgres("looking for the plan's tables on the target", e))?
            .iter()
            .filter_map(|r| plan.tables.get((r.get::<_, i64>(0) - 1) as usize))
            .map(|m| m.target.to_string())
            .collect()
        }
        _ => Vec::new(),
    };
    Ok(TargetFacts {
        probe: p,
        database: target.dbname.clone(),
        createdb: r.get(0),
        createrole: r.get(1),
        occupied,
    })
}

async fn source_facts(source: &ConnInfo) -> Result<(Vec<Access>, SizeAndWal)> {
    let client = connect(source).await?;
    let mut access = Vec::new();
    for (t, what) in [
        ("auth.users", "users"),
        ("storage.objects", "Storage objects"),
    ] {
        let r = client
            .query_one(
                "select to_regclass($1) is not null, \
                        coalesce(has_table_privilege(to_regclass($1), 'SELECT'), false)",
                &[&t],
            )
            .await
            .map_err(|e| Error::postgres("checking source privileges", e))?;
        access.push(Access {
            table: t.to_string(),
            what: what.to_string(),
            exists: r.get(0),
            readable: r.get(1),
        });
    }
    let r = client
        .query_one(
            "select pg_database_size(current_database()), current_setting('wal_level')",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the database size", e))?;
    Ok((
        access,
        SizeAndWal {
            bytes: r.get(0),
            wal_level: r.get(1),
        },
    ))
}

fn free_bytes(backup_dir: &Path) -> Disk {
    let dir = backup_dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let free = nix::sys::statvfs::statvfs(&dir)
        .map(|v| v.blocks_available() as f64 * v.fragment_size() as f64)
        .map_err(|e| e.to_string());
    Disk { dir, free }
}

/// Reads every fact. Changes nothing.
pub async fn gather(
    source: &ConnInfo,
    target: &ConnInfo,
    backup_dir: &Path,
    plan: PlanOrWhyNot<'_>,
) -> Facts {
    let source_probe = probe(source).await.map_err(|e| Failure::from(&e));
    let (access, size_and_wal) = match &source_probe {
        Ok(_) => match source_facts(source).await {
            Ok((a, s)) => (a, Some(s)),
            Err(_) => (Vec::new(), None),
        },
        Err(_) => (Vec::new(), None),
    };
    let readable_users = access.iter().any(|a| a.table == "auth.users" && a.readable);
    let users = match readable_users {
        true => user_kinds(source).await.ok(),
        false => None,
    };
    let oversized = match (&source_probe, plan) {
        (Ok(_), Ok(p)) => oversized_bytea(source, p).await.ok(),
        _ => None,
    };
    Facts {
        source_port: source.port,
        source: source_probe,
        tools: ["pg_dump", "pg_restore"]
            .iter()
            .map(|t| Tool {
                name: t.to_string(),
                version: tool_version(t),
            })
            .collect(),
        target: target_facts(target, plan)
            .await
            .map_err(|e| Failure::from(&e)),
        access,
        size_and_wal,
        backup_disk: free_bytes(backup_dir),
        plan: plan_facts(plan),
        users,
        oversized,
    }
}

/// Counts `auth.users` by kind (columns of older GoTrue versions may be
/// missing: read through the row's JSON).
async fn user_kinds(source: &ConnInfo) -> Result<UserKinds> {
    let client = connect(source).await?;
    let r = client
        .query_one(include_str!("catalog/sql/user_kinds.sql"), &[])
        .await
        .map_err(|e| Error::postgres("counting users by kind", e))?;
    Ok(UserKinds {
        total: r.get(0),
        email: r.get(1),
        phone_only: r.get(2),
        anonymous: r.get(3),
        sso: r.get(4),
        no_password: r.get(5),
    })
}

/// What `run`'s preflight step checks besides the facts, and so what
/// `supamigrate preflight` is given too: the sessions the workers need, and
/// the Storage stores.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// Workers of the copy and post-data (`--copy-jobs`).
    pub copy_jobs: usize,
    /// Workers of verify (`--jobs`).
    pub verify_jobs: usize,
    /// The stores, when they could be configured.
    pub stores: Option<&'a crate::storage::config::StoreConfig>,
    /// Why they could not, when they could not.
    pub stores_missing: Option<&'a str>,
    /// `--allow-missing-objects`.
    pub allow_missing_objects: bool,
}

/// Every check of a migration, reading only: the facts ([`gather`],
/// [`evaluate`]), the sessions for the workers, the Storage stores and the
/// objects they hold. One function for `supamigrate preflight` and `run`'s
/// preflight step, so both say the same.
pub async fn checks(
    source: &ConnInfo,
    target: &ConnInfo,
    backup_dir: &Path,
    plan: PlanOrWhyNot<'_>,
    extra: &Extra<'_>,
) -> Vec<Check> {
    let mut out = evaluate(&gather(source, target, backup_dir, plan).await);
    let sides = [("source", source), ("target", target)];
    for (option, jobs, own) in [
        (
            "--copy-jobs",
            extra.copy_jobs,
            crate::guard::copy_sessions(extra.copy_jobs, false),
        ),
        ("--jobs", extra.verify_jobs, crate::guard::VERIFY_SESSIONS),
    ] {
        if let Err(e) = crate::guard::check_jobs(&sides, option, jobs, own).await {
            out.push(check(
                &format!("sessions for {option}"),
                Status::Fail,
                e.message().trim_end_matches("; nothing was changed"),
                e.hint(),
            ));
        }
    }
    if let Ok(p) = plan {
        out.push(storage_configured(p, extra));
        if let Some(c) = objects_in_store(source, p, extra).await {
            out.push(c);
        }
    }
    out
}

/// A project with Storage objects needs both stores configured.
fn storage_configured(plan: &MigrationPlan, extra: &Extra<'_>) -> Check {
    match (extra.stores, plan.storage.objects()) {
        (_, 0) => check("storage", Status::Pass, "no Storage objects to copy", None),
        (Some(_), n) => check(
            "storage",
            Status::Pass,
            format!("{n} objects to copy; source and destination configured"),
            None,
        ),
        (None, n) => check(
            "storage",
            Status::Fail,
            format!(
                "the project has {n} Storage objects, but no Storage source or destination is configured: {}",
                extra.stores_missing.unwrap_or("")
            ),
            Some("give --source-dir or the SUPABASE_S3_* keys, and AWS_REGION (or --dest-dir)"),
        ),
    }
}

/// Every object `storage.objects` lists is in the Storage source (read
/// before anything is written, so a missing one stops a run here).
async fn objects_in_store(
    source: &ConnInfo,
    plan: &MigrationPlan,
    extra: &Extra<'_>,
) -> Option<Check> {
    let config = extra.stores?;
    if plan.storage.objects() == 0 {
        return None;
    }
    let listed = async {
        let stores = config.open().await?;
        let client = connect(source).await?;
        crate::storage::prepare(&client, &stores.source, &plan.storage).await
    }
    .await;
    Some(match listed {
        Err(e) => check(
            "storage objects",
            Status::Fail,
            format!("cannot list the Storage source: {e}"),
            e.hint(),
        ),
        Ok(o) if o.missing_in_store.is_empty() => check(
            "storage objects",
            Status::Pass,
            format!(
                "all {} objects of storage.objects are in the Storage source",
                o.objects.len()
            ),
            None,
        ),
        Ok(o) => {
            let keys: Vec<String> = o
                .missing_in_store
                .iter()
                .take(10)
                .map(|m| m.to_string())
                .collect();
            let detail = format!(
                "{} objects listed in storage.objects are not in the Storage source: {}",
                o.missing_in_store.len(),
                keys.join(", ")
            );
            if extra.allow_missing_objects {
                check(
                    "storage objects",
                    Status::Warn,
                    format!("{detail} (--allow-missing-objects: migrated without them)"),
                    None,
                )
            } else {
                check(
                    "storage objects",
                    Status::Fail,
                    detail,
                    Some("restore them to the source, or pass --allow-missing-objects to migrate without them"),
                )
            }
        }
    })
}

/// The checks `facts` pass or fail. Pure.
pub fn evaluate(facts: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    connections(facts, &mut out);
    if facts.source.is_err() {
        return out;
    }
    for a in &facts.access {
        out.push(match (a.exists, a.readable) {
            (false, _) => check(
                &format!("read {}", a.table),
                Status::Warn,
                format!("no {}: no {} to migrate", a.table, a.what),
                None,
            ),
            (true, true) => check(
                &format!("read {}", a.table),
                Status::Pass,
                "SELECT granted",
                None,
            ),
            (true, false) => check(
                &format!("read {}", a.table),
                Status::Fail,
                "no SELECT privilege",
                Some("connect as the project's postgres role"),
            ),
        });
    }
    capacity(facts, &mut out);
    if let Ok(t) = &facts.target {
        if !t.occupied.is_empty() {
            out.push(check(
                "target database",
                Status::Fail,
                format!(
                    "{} already holds {} of the tables the plan creates ({}), and no migration of supamigrate's: applying the schema would fail",
                    t.database,
                    t.occupied.len(),
                    t.occupied.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
                Some("point RDS_URL at a new database name (provision creates it), or drop those tables if an earlier attempt left them"),
            ));
        }
    }
    if let Some(o) = &facts.oversized {
        out.push(dumpable(o));
    }
    if let Some(u) = &facts.users {
        out.push(check(
            "users",
            Status::Pass,
            format!(
                "{} users: {} with an email, {} by phone only, {} anonymous, {} through SSO, {} without a password; every one moves to public.app_users",
                u.total, u.email, u.phone_only, u.anonymous, u.sso, u.no_password
            ),
            None,
        ));
    }
    out.push(match &facts.plan {
        Ok(p) => check(
            "schema conversion",
            Status::Pass,
            format!(
                "schemas {}; {} pre-data and {} post-data statements; every extension decided",
                p.schemas.join(", "),
                p.pre_data,
                p.post_data
            ),
            None,
        ),
        Err(f) => check(
            "schema conversion",
            Status::Fail,
            f.message.clone(),
            f.hint.as_deref(),
        ),
    });
    out
}

/// Every value fits the backup's pg_dump.
fn dumpable(oversized: &[Oversized]) -> Check {
    if oversized.is_empty() {
        return check(
            "values the backup can write",
            Status::Pass,
            "every bytea value is under 512 MB",
            None,
        );
    }
    check(
        "values the backup can write",
        Status::Fail,
        format!(
            "pg_dump writes bytea in hex, twice its size, and one value may not exceed 1 GB: {}",
            oversized
                .iter()
                .map(|o| format!("{} holds a value of {} MB", o.column, o.bytes / (1024 * 1024)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some("move such values out of the database (to Storage, or S3 with the key in the row) or split them under 512 MB, then run again; nothing was written"),
    )
}

fn connections(facts: &Facts, out: &mut Vec<Check>) {
    if facts.source_port == 6543 {
        out.push(check(
            "source connection mode",
            Status::Warn,
            "SUPABASE_DB_URL uses port 6543, Supabase's transaction pooler",
            Some("pg_dump and the snapshot copy need a session: use the direct connection (port 5432) or the session-mode pooler"),
        ));
    }
    let source_major = match &facts.source {
        Ok(p) => {
            out.push(check(
                "source connection",
                Status::Pass,
                format!(
                    "PostgreSQL {} as {}{}",
                    p.server_version,
                    p.user,
                    if p.tls { ", TLS" } else { "" }
                ),
                None,
            ));
            major_of(&p.server_version)
        }
        Err(f) => {
            out.push(check(
                "source connection",
                Status::Fail,
                f.message.clone(),
                f.hint.as_deref(),
            ));
            0
        }
    };
    for t in &facts.tools {
        let tool = t.name.as_str();
        out.push(match &t.version {
            Ok((m, text)) if *m >= source_major => check(tool, Status::Pass, text.clone(), None),
            Ok((m, text)) => check(
                tool,
                Status::Fail,
                format!("{text}: major {m} is older than the source's {source_major}"),
                Some("install the PostgreSQL client of the source's major version or newer (postgresql-client-NN)"),
            ),
            Err(e) => check(tool, Status::Fail, e.clone(), Some("install postgresql-client (scripts/setup.sh does)")),
        });
    }
    target_checks(facts, out);
    versions(facts, source_major, out);
}

/// The major of a `server_version` ("15.8 (Debian …)" → 15); 0 if unknown.
fn major_of(server_version: &str) -> u32 {
    server_version
        .split(['.', ' '])
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The target's major against the source's: an older one is refused.
fn versions(facts: &Facts, source_major: u32, out: &mut Vec<Check>) {
    let Ok(t) = &facts.target else {
        return;
    };
    let target_major = major_of(&t.probe.server_version);
    if source_major == 0 || target_major == 0 {
        return;
    }
    out.push(
        match crate::plan::versions::check_order(source_major, target_major) {
            Ok(()) if target_major == source_major => check(
                "target version",
                Status::Pass,
                format!("PostgreSQL {target_major}, as the source"),
                None,
            ),
            Ok(()) => check(
                "target version",
                Status::Pass,
                format!(
                    "PostgreSQL {target_major}, newer than the source's {source_major}: rows are copied in text form; the plan lists what else differs"
                ),
                None,
            ),
            Err(e) => check(
                "target version",
                Status::Fail,
                e.message().to_string(),
                e.hint(),
            ),
        },
    );
}

fn target_checks(facts: &Facts, out: &mut Vec<Check>) {
    match &facts.target {
        Ok(t) => {
            let p = &t.probe;
            out.push(check(
                "target connection",
                Status::Pass,
                format!(
                    "PostgreSQL {} as {}{}; database {} {}",
                    p.server_version,
                    p.user,
                    if p.tls { ", TLS" } else { "" },
                    t.database,
                    if p.database_exists {
                        "exists"
                    } else {
                        "will be created"
                    }
                ),
                None,
            ));
            out.push(if p.superuser || (t.createdb && t.createrole) {
                check(
                    "target privileges",
                    Status::Pass,
                    "may create databases and roles",
                    None,
                )
            } else {
                check(
                    "target privileges",
                    Status::Fail,
                    format!("CREATEDB {}, CREATEROLE {}", t.createdb, t.createrole),
                    Some("connect as the RDS master user (rds_superuser has both)"),
                )
            });
        }
        Err(f) => out.push(check(
            "target connection",
            Status::Fail,
            f.message.clone(),
            f.hint.as_deref(),
        )),
    }
}

fn capacity(facts: &Facts, out: &mut Vec<Check>) {
    let Some(SizeAndWal {
        bytes: size,
        wal_level: wal,
    }) = &facts.size_and_wal
    else {
        return;
    };
    let mb = *size as f64 / 1e6;
    out.push(check(
        "database size",
        Status::Pass,
        format!(
            "{mb:.0} MB; the copy should take about {:.0} s at the {MEASURED_MB_PER_S:.0} MB/s bench/copy.sh measured (more over a network)",
            (mb / MEASURED_MB_PER_S).max(1.0)
        ),
        None,
    ));
    let (dir, free) = (&facts.backup_disk.dir, &facts.backup_disk.free);
    out.push(match free {
        // The custom dump is compressed; the two SQL files are not.
        Ok(free) if *free >= *size as f64 * 1.5 => check(
            "disk for backups",
            Status::Pass,
            format!("{:.0} MB free in {}", free / 1e6, dir.display()),
            None,
        ),
        Ok(free) => check(
            "disk for backups",
            Status::Fail,
            format!(
                "{:.0} MB free in {}, about {:.0} MB needed",
                free / 1e6,
                dir.display(),
                *size as f64 * 1.5 / 1e6
            ),
            Some("free space, or point --backup-dir at a larger disk"),
        ),
        Err(e) => check(
            "disk for backups",
            Status::Warn,
            format!("cannot tell: {e}"),
            None,
        ),
    });
    out.push(check(
        "source wal_level",
        Status::Pass,
        format!("{wal} (the copy reads a snapshot; logical decoding is not needed)"),
        None,
    ));
}

/// The failed checks as one message, for a run that stops at preflight.
pub fn failure(checks: &[Check]) -> Option<Error> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| match &c.hint {
            Some(h) => format!("{}: {} (fix: {h})", c.name, c.detail),
            None => format!("{}: {}", c.name, c.detail),
        })
        .collect();
    (!failed.is_empty()).then(|| {
        Error::invalid_input(format!(
            "preflight failed, nothing was changed: {}",
            failed.join("; ")
        ))
        .with_hint(
            "fix what `supamigrate preflight` marks ✗, then run again: finished steps are kept",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(version: &str, exists: bool) -> Probe {
        Probe {
            server_version: version.into(),
            user: "postgres".into(),
            superuser: false,
            tls: false,
            database_exists: exists,
        }
    }

    fn good() -> Facts {
        Facts {
            source_port: 5432,
            source: Ok(probe("15.8", true)),
            tools: vec![
                Tool {
                    name: "pg_dump".into(),
                    version: Ok((15, "pg_dump (PostgreSQL) 15.8".into())),
                },
                Tool {
                    name: "pg_restore".into(),
                    version: Ok((15, "pg_restore (PostgreSQL) 15.8".into())),
                },
            ],
            target: Ok(TargetFacts {
                probe: probe("17.2", false),
                database: "app".into(),
                createdb: true,
                createrole: true,
                occupied: Vec::new(),
            }),
            access: vec![Access {
                table: "auth.users".into(),
                what: "users".into(),
                exists: true,
                readable: true,
            }],
            size_and_wal: Some(SizeAndWal {
                bytes: 100_000_000,
                wal_level: "logical".into(),
            }),
            backup_disk: Disk {
                dir: "/tmp".into(),
                free: Ok(1e12),
            },
            plan: Ok(PlanFacts {
                schemas: vec!["public".into()],
                pre_data: 3,
                post_data: 4,
            }),
            users: Some(UserKinds {
                total: 6,
                email: 3,
                phone_only: 1,
                anonymous: 1,
                sso: 1,
                no_password: 4,
            }),
            oversized: Some(Vec::new()),
        }
    }

    #[test]
    fn users_are_counted_by_kind() {
        let checks = evaluate(&good());
        let users = checks.iter().find(|c| c.name == "users").unwrap();
        assert_eq!(
            users.detail,
            "6 users: 3 with an email, 1 by phone only, 1 anonymous, 1 through SSO, 4 without a password; every one moves to public.app_users"
        );
    }

    fn failing(f: &Facts) -> Vec<String> {
        evaluate(f)
            .into_iter()
            .filter(|c| c.status != Status::Pass)
            .map(|c| format!("{:?} {}: {}", c.status, c.name, c.detail))
            .collect()
    }

    #[test]
    fn each_fact_decides_its_check() {
        assert!(failing(&good()).is_empty(), "{:?}", failing(&good()));
        type Change = Box<dyn Fn(&mut Facts)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "pooler port",
                Box::new(|f| f.source_port = 6543),
                "Warn source connection mode",
            ),
            (
                "old pg_dump",
                Box::new(|f| f.tools[0].version = Ok((14, "pg_dump 14".into()))),
                "Fail pg_dump: pg_dump 14: major 14 is older than the source's 15",
            ),
            (
                "no pg_restore",
                Box::new(|f| f.tools[1].version = Err("not found".into())),
                "Fail pg_restore: not found",
            ),
            (
                "no target privileges",
                Box::new(|f| {
                    if let Ok(t) = &mut f.target {
                        t.createrole = false
                    }
                }),
                "Fail target privileges: CREATEDB true, CREATEROLE false",
            ),
            (
                "unreadable users",
                Box::new(|f| f.access[0].readable = false),
                "Fail read auth.users: no SELECT privilege",
            ),
            (
                "no users",
                Box::new(|f| f.access[0].exists = false),
                "Warn read auth.users: no auth.users: no users to migrate",
            ),
            (
                "small disk",
                Box::new(|f| f.backup_disk.free = Ok(1e6)),
                "Fail disk for backups: 1 MB free in /tmp, about 150 MB needed",
            ),
            (
                "a target holding the application's tables",
                Box::new(|f| {
                    if let Ok(t) = &mut f.target {
                        t.probe.database_exists = true;
                        t.occupied = vec!["public.orders".into()];
                    }
                }),
                "Fail target database: app already holds 1 of the tables the plan creates (public.orders)",
            ),
            (
                "a bytea pg_dump cannot write",
                Box::new(|f| {
                    f.oversized = Some(vec![Oversized {
                        column: "public.files.body".into(),
                        bytes: 600 * 1024 * 1024,
                    }])
                }),
                "Fail values the backup can write: pg_dump writes bytea in hex, twice its size, and one value may not exceed 1 GB: public.files.body holds a value of 600 MB",
            ),
            (
                "no plan",
                Box::new(|f| {
                    f.plan = Err(Failure {
                        message: "the source uses extensions the target does not offer: x".into(),
                        hint: None,
                    })
                }),
                "Fail schema conversion: the source uses extensions",
            ),
            (
                "older target",
                Box::new(|f| {
                    if let Ok(t) = &mut f.target {
                        t.probe.server_version = "14.9".into()
                    }
                }),
                "Fail target version: the target runs PostgreSQL 14, older than the source's 15",
            ),
            (
                "target down",
                Box::new(|f| {
                    f.target = Err(Failure {
                        message: "connecting: refused".into(),
                        hint: None,
                    })
                }),
                "Fail target connection: connecting: refused",
            ),
        ];
        for (what, change, want) in cases {
            let mut f = good();
            change(&mut f);
            let got = failing(&f);
            assert!(got.iter().any(|g| g.starts_with(want)), "{what}: {got:?}");
            assert_eq!(got.len(), 1, "{what}: one finding only: {got:?}");
        }
        let mut f = good();
        f.source = Err(Failure {
            message: "down".into(),
            hint: None,
        });
        let checks = evaluate(&f);
        assert!(
            checks.iter().all(|c| c.name != "schema conversion"),
            "nothing after an unreachable source"
        );
        assert!(failure(&checks)
            .unwrap()
            .to_string()
            .contains("source connection: down"));
    }
}
