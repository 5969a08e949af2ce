//! Restoring a backup: into a scratch database to prove it restores (the
//! seed checklist's "Test backup restoration"), and over the source to roll
//! back.
//!
//! Rollback runs in one source transaction, as the login role:
//! 1. Supabase tables (auth, storage) whose content differs from the manifest
//!    (with the tables that reference them) are merged back row by row from
//!    the dump: their definitions belong to Supabase and are never dropped.
//! 2. The application schemas' objects owned by the login role are dropped and
//!    recreated from the dump (`pg_restore --clean`, filtered); objects owned
//!    by other roles, and functions that Supabase-owned tables' triggers call,
//!    are kept as they are (and listed).
//!
//! A kill or an error at any point rolls the transaction back: the source is
//! as it was. The plan ([`plan_rollback`]) is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use serde::Serialize;
use tokio_postgres::Client;

use super::script::{parse_toc, retarget_copy, run_script, TocEntry};
use super::{Manifest, TableEntry};
use crate::catalog::list_foreign_keys;
use crate::connect::{connect, find_pg_tool, ConnInfo, PgCommand};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::{quote_ident, TableName};
use crate::verify::fingerprint;

/// One table's content against the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: TableName,
    /// Rows in the manifest.
    pub expected_rows: i64,
    /// Rows found (`None`: the table does not exist).
    pub rows: Option<i64>,
    /// Fingerprints equal.
    pub matches: bool,
    /// Why a difference is expected: the table needs an extension this
    /// server lacks and the plan lets go (`--allow-drop-extension`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excused: Option<String>,
}

/// Fingerprints every manifest table on `client` and compares.
pub async fn check_tables(client: &Client, tables: &[TableEntry]) -> Result<Vec<TableCheck>> {
    fingerprint::pin_session(client).await?;
    let mut out = Vec::new();
    for t in tables {
        let name = t.table();
        let exists: bool = client
            .query_one(
                "select to_regclass($1) is not null",
                &[&format!(
                    "{}.{}",
                    quote_ident(&t.schema),
                    quote_ident(&t.name)
                )],
            )
            .await
            .map_err(|e| Error::postgres("looking up a table", e))?
            .get(0);
        if !exists {
            out.push(TableCheck {
                table: name,
                expected_rows: t.rows,
                rows: None,
                matches: false,
                excused: None,
            });
            continue;
        }
        let f = fingerprint::table(client, &name).await?;
        out.push(TableCheck {
            matches: f.rows == t.rows && f.digest == t.digest,
            table: name,
            expected_rows: t.rows,
            rows: Some(f.rows),
            excused: None,
        });
    }
    Ok(out)
}

/// What a scratch restore showed.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreCheck {
    /// Problems with the files (size, SHA-256); the restore is not tried
    /// when there are any.
    pub file_problems: Vec<String>,
    /// pg_restore's errors (objects that need roles or extensions the scratch
    /// server lacks); the data check decides.
    pub restore_errors: Vec<String>,
    /// Each table against the manifest.
    pub tables: Vec<TableCheck>,
    /// Objects whose SQL holds a secret, left out of the scratch restore (a
    /// statement the server refused would put its text, secret included,
    /// into the server's log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// The backup's extensions the scratch database could not get.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable_extensions: Vec<String>,
}

impl RestoreCheck {
    /// The files are intact and every table came back as it was (but those
    /// the plan lets go of an extension for).
    pub fn ok(&self) -> bool {
        self.file_problems.is_empty()
            && self.tables.iter().all(|t| t.matches || t.excused.is_some())
    }

    /// pg_restore's errors, at most `n`.
    pub fn errors_shown(&self, n: usize) -> String {
        let mut s = self
            .restore_errors
            .iter()
            .take(n)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if self.restore_errors.len() > n {
            s.push_str(&format!("; and {} more", self.restore_errors.len() - n));
        }
        s
    }
}

/// Restores the backup in `dir` into a new database on `server` (a role that
/// may create databases), compares every table with the manifest, and drops
/// the database again (and any an interrupted check left). Tables with
/// columns of the extensions in `let_go` (the plan's
/// `--allow-drop-extension`) may not restore on a server without them:
/// that is excused and said.
pub async fn verify_backup(
    dir: &Path,
    server: &ConnInfo,
    let_go: &BTreeSet<String>,
) -> Result<RestoreCheck> {
    let (manifest, file_problems) = super::check(dir)?;
    if !file_problems.is_empty() {
        return Ok(RestoreCheck {
            file_problems,
            restore_errors: Vec::new(),
            tables: Vec::new(),
            unavailable_extensions: Vec::new(),
            left_out: Vec::new(),
        });
    }
    let admin = connect(server).await?;
    drop_leftovers(&admin).await;
    let name = format!("{SCRATCH_PREFIX}{}", crate::connect::random_hex(6)?);
    admin
        .batch_execute(&format!("create database {}", quote_ident(&name)))
        .await
        .map_err(|e| {
            Error::postgres("creating the scratch database", e)
                .with_hint("the role in RDS_URL (or --sandbox) must be allowed to create databases")
        })?;
    let result = restore_and_compare(dir, &manifest, &server.with_dbname(&name)).await;
    let dropped = drop_scratch(&admin, &name).await;
    let mut check = result?;
    dropped?;
    excuse(&mut check, &manifest, let_go);
    Ok(check)
}

/// The scratch databases' name prefix.
const SCRATCH_PREFIX: &str = "supamigrate_restore_check_";

/// Drops `name`, retrying while sessions (a background worker) hold it.
async fn drop_scratch(admin: &Client, name: &str) -> Result<()> {
    let sql = format!("drop database if exists {} with (force)", quote_ident(name));
    let mut last = None;
    for _ in 0..5 {
        match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let e = last.map(|e| Error::postgres(format!("dropping the scratch database {name}"), e));
    Err(e
        .unwrap_or_else(|| Error::internal("dropping the scratch database"))
        .with_hint(format!(
            "drop it yourself: DROP DATABASE {name} WITH (FORCE)"
        )))
}

/// Drops the scratch databases an interrupted restore test left on the
/// server `admin` is connected to (each said in a warning).
pub async fn drop_leftover_scratch(admin: &Client) {
    drop_leftovers(admin).await
}

/// Scratch databases an interrupted check left behind.
async fn drop_leftovers(admin: &Client) {
    let Ok(rows) = admin
        .query(
            "select datname::text from pg_database where datname like $1",
            &[&format!("{SCRATCH_PREFIX}%")],
        )
        .await
    else {
        return;
    };
    for r in rows {
        let name: String = r.get(0);
        tracing::warn!(database = %name, "dropping a scratch database an interrupted restore test left");
        if let Err(e) = drop_scratch(admin, &name).await {
            tracing::warn!(error = %e, database = %name, "could not drop a scratch database left by an interrupted check");
        }
    }
}

/// Tables that need an extension the plan lets go, or one this server
/// could not create (a column, default or constraint of the table uses
/// it), are excused: the test cannot restore them here, which says
/// nothing of the backup.
fn excuse(check: &mut RestoreCheck, manifest: &Manifest, let_go: &BTreeSet<String>) {
    for x in &manifest.extensions {
        let why = if let_go.contains(&x.name) {
            "which the plan lets go (--allow-drop-extension)"
        } else if check.unavailable_extensions.contains(&x.name) {
            "which this server could not create"
        } else {
            continue;
        };
        for d in &x.dependents {
            let Some(table) = dependent_table(d) else {
                continue;
            };
            for t in check
                .tables
                .iter_mut()
                .filter(|t| t.table.to_string() == table && !t.matches)
            {
                t.excused = Some(format!(
                    "needs extension {}, {why}: restore it where {} is installed",
                    x.name, x.name
                ));
            }
        }
    }
}

/// The table an extension's dependent (as `extension_dependents.sql` names
/// it) is part of: a column, a column's default, a constraint.
fn dependent_table(d: &str) -> Option<&str> {
    if let Some(col) = d
        .strip_prefix("column ")
        .or_else(|| d.strip_prefix("default of column "))
    {
        return col.rsplit_once('.').map(|(t, _)| t);
    }
    d.strip_prefix("constraint ")
        .and_then(|c| c.split_once(" on "))
        .map(|(_, t)| t)
}

/// A started local cluster in a new temporary folder (removed when the
/// folder is dropped; stop the cluster first).
fn throwaway_cluster(prefix: &str) -> Result<(tempfile::TempDir, crate::cluster::Cluster)> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| Error::io("creating a temporary folder", e))?;
    // The server may run as the `postgres` OS user, which must reach its folder.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", tmp.path().display()), e))?;
    let mut cluster = crate::cluster::Cluster::init(&crate::cluster::ClusterSpec {
        dir: tmp.path().join("cluster"),
        superuser: "postgres".into(),
        settings: Vec::new(),
        tls: None,
        bin_dir: None,
    })?;
    cluster.start()?;
    Ok((tmp, cluster))
}

/// A backup restored into a throwaway local cluster (initdb in a temporary
/// folder), for reading its rows; stopped and removed by [`LocalRestore::stop`]
/// (or when dropped).
pub struct LocalRestore {
    cluster: crate::cluster::Cluster,
    _tmp: tempfile::TempDir,
}

impl LocalRestore {
    /// Restores the backup in `dir` into database `backup` of a new local cluster.
    pub async fn start(dir: &Path, manifest: &Manifest) -> Result<LocalRestore> {
        let (tmp, cluster) = throwaway_cluster("supamigrate-backup-rows-")?;
        // From here on, Drop stops the cluster on every exit path.
        let local = LocalRestore { cluster, _tmp: tmp };
        let admin = connect(&local.cluster.superuser_conninfo("postgres")).await?;
        admin
            .batch_execute("create database backup")
            .await
            .map_err(|e| Error::postgres("creating the local restore's database", e))?;
        restore_and_compare(dir, manifest, &local.conninfo()).await?;
        Ok(local)
    }

    /// The restored database.
    pub fn conninfo(&self) -> ConnInfo {
        self.cluster.superuser_conninfo("backup")
    }

    /// Stops the cluster (its folder goes with `self`).
    pub fn stop(self) -> Result<()> {
        self.cluster.stop()
    }
}

impl Drop for LocalRestore {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.stop() {
            tracing::warn!(error = %e, "could not stop the local restore's cluster");
        }
    }
}

/// [`verify_backup`] on a throwaway local cluster (initdb in a temporary
/// folder, removed afterwards): for when no server may host the scratch
/// database.
pub async fn verify_backup_locally(dir: &Path) -> Result<RestoreCheck> {
    let (_tmp, cluster) = throwaway_cluster("supamigrate-restore-check-")?;
    let result = verify_backup(
        dir,
        &cluster.superuser_conninfo("postgres"),
        &BTreeSet::new(),
    )
    .await;
    let stopped = cluster.stop();
    let check = result?;
    stopped?;
    Ok(check)
}

/// The extensions' configuration tables of the scratch database that this
/// user may not insert into (an extension's tables belong to `rdsadmin` on
/// RDS), taken over, so the rows the project added to them (PostGIS's
/// reference systems) restore as `copy` carries them; those that cannot be
/// taken over, with why (their project rows cannot restore on this server).
async fn take_config_tables(client: &Client) -> Result<Vec<(TableName, String)>> {
    let rows = client
        .query(
            "select n.nspname::text, c.relname::text, e.extname::text from pg_extension e \
             cross join unnest(coalesce(e.extconfig, '{}'::oid[])) t(oid) \
             join pg_class c on c.oid = t.oid join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'r' and not has_table_privilege(c.oid, 'insert') order by 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the scratch database's extension tables", e))?;
    let mut refused = Vec::new();
    for r in rows {
        let (table, ext) = (
            TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            r.get::<_, String>(2),
        );
        if let Err(e) = client
            .batch_execute(&format!(
                "alter table {} owner to current_user",
                table.quoted()
            ))
            .await
        {
            refused.push((
                table,
                format!(
                    "the rows the project added to this configuration table of extension {ext} cannot be written on this server ({}); the backup holds them",
                    crate::connect::error_chain(&e)
                ),
            ));
        }
    }
    Ok(refused)
}

/// Marks the tables of `refused` that restored with fewer rows than the
/// manifest says as excused, with why.
fn excuse_config(tables: &mut [TableCheck], refused: &[(TableName, String)]) {
    for t in tables.iter_mut().filter(|t| !t.matches) {
        if let Some((_, why)) = refused.iter().find(|(name, _)| *name == t.table) {
            if t.rows.is_some_and(|n| n < t.expected_rows) {
                t.excused = Some(why.clone());
            }
        }
    }
}

async fn restore_and_compare(
    dir: &Path,
    manifest: &Manifest,
    db: &ConnInfo,
) -> Result<RestoreCheck> {
    let client = connect(db).await?;
    let mut restore_errors = Vec::new();
    let mut unavailable_extensions = Vec::new();
    // Extensions first, in their schemas (defaults and types refer to them).
    for x in &manifest.extensions {
        let (ext, schema) = (&x.name, &x.schema);
        let present: bool = client
            .query_one(
                "select exists (select 1 from pg_extension where extname = $1)",
                &[ext],
            )
            .await
            .map_err(|e| Error::postgres("reading the scratch database's extensions", e))?
            .get(0);
        if present {
            continue;
        }
        let sql = format!(
            "create schema if not exists {s}; create extension if not exists {e} schema {s}",
            s = quote_ident(schema),
            e = quote_ident(ext)
        );
        if let Err(e) = client.batch_execute(&sql).await {
            restore_errors.push(format!(
                "extension {ext}: {}",
                crate::connect::error_chain(&e)
            ));
            unavailable_extensions.push(ext.clone());
        }
    }
    let config_refused = take_config_tables(&client).await?;
    let (list, left_out) = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || without_secrets(&dir))
            .await
            .map_err(|e| Error::new(ErrorKind::Tool, format!("pg_restore task: {e}")))??
    };
    let pg_restore = find_pg_tool("pg_restore")?;
    let mut cmd = PgCommand::new(&pg_restore, db)?;
    cmd.command()
        .args(["--no-owner", "--no-acl", "--dbname", &db.dbname]);
    if let Some(l) = &list {
        cmd.command().arg("--use-list").arg(l.path());
    }
    cmd.command()
        .arg(dir.join("full.dump"))
        .stdout(Stdio::null());
    let mut inner = std::mem::replace(cmd.command(), std::process::Command::new("true"));
    let out = tokio::task::spawn_blocking(move || inner.output())
        .await
        .map_err(|e| Error::new(ErrorKind::Tool, format!("pg_restore task: {e}")))?
        .map_err(|e| Error::new(ErrorKind::Tool, "starting pg_restore").with_source(e))?;
    drop(cmd);
    restore_errors.extend(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("pg_restore: error:"))
            .map(|l| l.trim_start_matches("pg_restore: error: ").to_string()),
    );
    // Counted as the restoring role, which owns every table: FORCE would
    // show it only what the policies let it see.
    crate::rls::lift_for_good(&client).await?;
    let mut tables = check_tables(&client, &manifest.tables).await?;
    excuse_config(&mut tables, &config_refused);
    drop(list);
    Ok(RestoreCheck {
        file_problems: Vec::new(),
        restore_errors,
        unavailable_extensions,
        tables,
        left_out,
    })
}

/// The dump's table of contents without the entries whose SQL holds a
/// secret ([`crate::secrets::find`]), as a list file for `pg_restore
/// --use-list` (`None` when no entry holds one), and those entries named.
fn without_secrets(dir: &Path) -> Result<(Option<tempfile::NamedTempFile>, Vec<String>)> {
    let script = {
        let child = pg_restore_script(dir, &["--schema-only", "--no-owner", "--no-acl"])?;
        let out = child
            .wait_with_output()
            .map_err(|e| Error::new(ErrorKind::Tool, "waiting for pg_restore").with_source(e))?;
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let secret = holding_secrets(&script);
    if secret.is_empty() {
        return Ok((None, Vec::new()));
    }
    let toc = {
        let child = pg_restore_script(dir, &["--list"])?;
        let out = child.wait_with_output().map_err(|e| {
            Error::new(ErrorKind::Tool, "waiting for pg_restore --list").with_source(e)
        })?;
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut kept = String::new();
    let mut left_out = Vec::new();
    for e in parse_toc(&toc) {
        if secret.contains(&(e.desc.clone(), e.schema.clone(), e.name.clone())) {
            left_out.push(format!("{} {}.{}", e.desc, e.schema, e.name));
        } else {
            kept.push_str(&e.line);
            kept.push('\n');
        }
    }
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("creating the restore's list file", e))?;
    std::io::Write::write_all(&mut file, kept.as_bytes())
        .map_err(|e| Error::io("writing the restore's list file", e))?;
    Ok((Some(file), left_out))
}

/// The (type, schema, name) of each entry of a pg_restore script whose SQL
/// holds a secret; entries start at their `-- Name: …; Type: …; Schema: …`
/// header.
fn holding_secrets(script: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut current: Option<(String, String, String)> = None;
    let mut body = String::new();
    let mut flush = |current: &Option<(String, String, String)>, body: &str| {
        if let Some(k) = current {
            if !crate::secrets::find(body).is_empty() {
                out.insert(k.clone());
            }
        }
    };
    for line in script.lines() {
        if let Some(h) = line.strip_prefix("-- Name: ") {
            flush(&current, &body);
            body.clear();
            let field = |name: &str| {
                h.split("; ")
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or("")
                    .to_string()
            };
            let name = h.split("; ").next().unwrap_or("").to_string();
            current = Some((field("Type: "), field("Schema: "), name));
            continue;
        }
        if !line.starts_with("--") {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&current, &body);
    out
}

/// What rollback will do.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    /// TOC lines restored with `--clean` (application schemas).
    pub restore_lines: Vec<String>,
    /// Application-schema objects restored (desc and name), for display.
    pub restored: Vec<String>,
    /// Objects left as they are, with the reason.
    pub kept: Vec<Kept>,
    /// Supabase tables merged back row by row, parents first.
    pub merge: Vec<TableName>,
    /// Application tables that exist now but not in the backup (left alone).
    pub not_in_backup: Vec<TableName>,
}

/// An object rollback leaves as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The object (`TABLE public.orders`).
    pub object: String,
    /// Why.
    pub reason: String,
}

/// Entries that `pg_restore --clean` must not touch: schemas themselves,
/// default privileges (set by other roles), and anything owned by a role
/// other than `me`.
fn restorable(e: &TocEntry, schemas: &[String], me: &str) -> std::result::Result<(), String> {
    if !schemas.contains(&e.schema) {
        return Err("not in an application schema".into());
    }
    match e.desc.as_str() {
        "SCHEMA" => Err("schemas themselves are never dropped".into()),
        "DEFAULT ACL" => Err(format!("default privileges of {}", e.owner)),
        "EXTENSION" => Err("extensions are kept".into()),
        _ if e.owner != me => Err(format!("owned by {}, not {me}", e.owner)),
        _ => Ok(()),
    }
}

/// The tables to merge: the differing ones and, transitively, every table
/// whose foreign keys reference them (a delete cascades there); parents
/// before children.
fn merge_order(
    differing: &BTreeSet<TableName>,
    references: &[(TableName, TableName)],
) -> Vec<TableName> {
    let mut set: BTreeSet<TableName> = differing.clone();
    loop {
        let before = set.len();
        for (child, parent) in references {
            if set.contains(parent) {
                set.insert(child.clone());
            }
        }
        if set.len() == before {
            break;
        }
    }
    let mut ordered: Vec<TableName> = Vec::new();
    while ordered.len() < set.len() {
        let before = ordered.len();
        for t in &set {
            if ordered.contains(t) {
                continue;
            }
            let waits = references
                .iter()
                .any(|(c, p)| c == t && p != t && set.contains(p) && !ordered.contains(p));
            if !waits {
                ordered.push(t.clone());
            }
        }
        if ordered.len() == before {
            // A cycle: the rest in name order.
            ordered.extend(
                set.iter()
                    .filter(|t| !ordered.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    ordered
}

/// The object a TOC entry creates or decorates, as (kind, schema.name).
fn toc_object(e: &TocEntry) -> Option<(String, String)> {
    let base = e.name.split('(').next().unwrap_or(&e.name);
    let (kind, name) = match e.desc.as_str() {
        "FUNCTION" | "PROCEDURE" => ("function", base),
        "TYPE" | "DOMAIN" => ("type", base),
        "TABLE" | "TABLE DATA" => ("table", base),
        "ACL" | "COMMENT" => {
            let (k, n) = base.split_once(' ')?;
            match k {
                "FUNCTION" | "PROCEDURE" => ("function", n),
                "TYPE" | "DOMAIN" => ("type", n),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((kind.to_string(), format!("{}.{name}", e.schema)))
}

/// Decides the rollback (pure). `protected` are application objects that
/// objects outside the application schemas depend on, as (`function`,
/// `type` or `table`, `schema.name`): kept, and such tables merged;
/// `differing` are tables to merge (Supabase or protected) whose content
/// differs from the manifest; `references` are (child, parent) foreign keys
/// among them;
/// `current_tables` are the application tables that exist now.
pub fn plan_rollback(
    manifest: &Manifest,
    toc: &[TocEntry],
    me: &str,
    protected: &BTreeSet<(String, String)>,
    differing: &BTreeSet<TableName>,
    references: &[(TableName, TableName)],
    current_tables: &[TableName],
) -> RollbackPlan {
    let mut plan = RollbackPlan {
        restore_lines: Vec::new(),
        restored: Vec::new(),
        kept: Vec::new(),
        merge: Vec::new(),
        not_in_backup: Vec::new(),
    };
    let protected = |e: &TocEntry| toc_object(e).is_some_and(|o| protected.contains(&o));
    for e in toc {
        if !manifest.schemas.contains(&e.schema) {
            continue;
        }
        let label = format!("{} {}.{}", e.desc, e.schema, e.name);
        match restorable(e, &manifest.schemas, me) {
            Err(reason) => plan.kept.push(Kept {
                object: label,
                reason,
            }),
            Ok(()) if protected(e) => plan.kept.push(Kept {
                object: label,
                reason: "objects outside the application schemas depend on it (kept, not dropped); tables are merged row by row".into(),
            }),
            Ok(()) => {
                plan.restore_lines.push(e.line.clone());
                plan.restored.push(label);
            }
        }
    }
    let ordered = merge_order(differing, references);
    plan.merge = ordered;
    let backed: BTreeSet<TableName> = manifest.tables.iter().map(|t| t.table()).collect();
    plan.not_in_backup = current_tables
        .iter()
        .filter(|t| !backed.contains(*t))
        .cloned()
        .collect();
    plan
}

/// Reads what [`plan_rollback`] needs from the source and plans.
pub async fn prepare_rollback(
    client: &Client,
    dir: &Path,
    manifest: &Manifest,
) -> Result<RollbackPlan> {
    let pg_restore = find_pg_tool("pg_restore")?;
    let out = crate::connect::child(&pg_restore)
        .arg("--list")
        .arg(dir.join("full.dump"))
        .output()
        .map_err(|e| Error::new(ErrorKind::Tool, "starting pg_restore --list").with_source(e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Tool,
            format!(
                "pg_restore --list failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let toc = parse_toc(&String::from_utf8_lossy(&out.stdout));
    let me: String = client
        .query_one("select current_user::text", &[])
        .await
        .map_err(|e| Error::postgres("reading the login role", e))?
        .get(0);
    let protected: BTreeSet<(String, String)> = client
        .query(include_str!("sql/protected.sql"), &[&manifest.schemas])
        .await
        .map_err(|e| Error::postgres("finding what Supabase objects depend on", e))?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                format!("{}.{}", r.get::<_, String>(1), r.get::<_, String>(2)),
            )
        })
        .collect();
    // Tables merged row by row: Supabase's, and application tables that
    // outside objects depend on. Those whose content differs are merged.
    let mergeable: Vec<TableEntry> = manifest
        .tables
        .iter()
        .filter(|t| {
            manifest.supabase_schemas.contains(&t.schema)
                || protected.contains(&("table".to_string(), t.table().to_string()))
        })
        .cloned()
        .collect();
    let differing: BTreeSet<TableName> = check_tables(client, &mergeable)
        .await?
        .into_iter()
        .filter(|c| !c.matches)
        .map(|c| c.table)
        .collect();
    let sb: Vec<&str> = manifest
        .supabase_schemas
        .iter()
        .map(String::as_str)
        .collect();
    let merge_set: BTreeSet<TableName> = mergeable.iter().map(|t| t.table()).collect();
    let references: Vec<(TableName, TableName)> = list_foreign_keys(client, &sb)
        .await?
        .into_iter()
        .map(|fk| (fk.table, fk.ref_table))
        .filter(|(c, p)| merge_set.contains(c) && merge_set.contains(p))
        .collect();
    let app: Vec<&str> = manifest.schemas.iter().map(String::as_str).collect();
    let current = crate::catalog::list_tables(client, &app).await?;
    Ok(plan_rollback(
        manifest,
        &toc,
        &me,
        &protected,
        &differing,
        &references,
        &current,
    ))
}

/// Columns a COPY of `t` carries (not generated), in order.
async fn copy_columns(client: &Client, t: &TableName) -> Result<Vec<String>> {
    Ok(client
        .query(
            "select attname::text from pg_attribute where attrelid = $1::text::regclass \
             and attnum > 0 and not attisdropped and attgenerated = '' order by attnum",
            &[&format!(
                "{}.{}",
                quote_ident(&t.schema),
                quote_ident(&t.name)
            )],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the columns of {t}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn pg_restore_script(dir: &Path, args: &[&str]) -> Result<std::process::Child> {
    let pg_restore = find_pg_tool("pg_restore")?;
    crate::connect::child(&pg_restore)
        .args(args)
        .arg("--file=-")
        .arg(dir.join("full.dump"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(ErrorKind::Tool, "starting pg_restore").with_source(e))
}

fn finish_child(child: std::process::Child, what: &str) -> Result<()> {
    let out = child
        .wait_with_output()
        .map_err(|e| Error::new(ErrorKind::Tool, format!("waiting for {what}")).with_source(e))?;
    super::tool_succeeded(out, what)
}

/// Runs `plan` on `client` (a fresh session on the source) in one
/// transaction. Nothing is committed unless every step succeeded.
pub async fn execute_rollback(client: &Client, dir: &Path, plan: &RollbackPlan) -> Result<()> {
    client
        .batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting the rollback transaction", e))?;
    let result = rollback_steps(client, dir, plan).await;
    match result {
        Ok(()) => client
            .batch_execute("commit")
            .await
            .map_err(|e| Error::postgres("committing the rollback", e)),
        Err(e) => {
            let _ = client.batch_execute("rollback").await;
            Err(e)
        }
    }
}

/// A Supabase table being merged back: the backup's rows in a temporary table.
struct Merge {
    table: TableName,
    tmp: String,
    key: Vec<String>,
    columns: Vec<String>,
}

impl Merge {
    fn on(&self) -> String {
        self.key
            .iter()
            .map(|k| format!("b.{c} = x.{c}", c = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// Loads the backup's rows of each table to merge into a temporary table.
async fn load_backup_rows(client: &Client, dir: &Path, plan: &RollbackPlan) -> Result<Vec<Merge>> {
    let mut merges = Vec::new();
    for (i, t) in plan.merge.iter().enumerate() {
        let key = crate::pg::primary_key(client, t).await?;
        if key.is_empty() {
            return Err(Error::invalid_input(format!(
                "{t} differs from the backup and has no primary key to merge its rows by; nothing was changed"
            )));
        }
        let tmp = format!("supamigrate_restore_{i}");
        client
            .batch_execute(&format!(
                "create temporary table {tmp} (like {}) on commit drop",
                t.quoted()
            ))
            .await
            .map_err(|e| Error::postgres(format!("preparing the merge of {t}"), e))?;
        let mut child = pg_restore_script(
            dir,
            &["--data-only", "--schema", &t.schema, "--table", &t.name],
        )?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Tool, "pg_restore gave no output stream"))?;
        let tmp_name = tmp.clone();
        let retarget = move |header: &str| retarget_copy(header, &tmp_name).map(Some);
        run_script(client, std::io::BufReader::new(stdout), &retarget).await?;
        finish_child(child, &format!("pg_restore of {t}'s rows"))?;
        merges.push(Merge {
            table: t.clone(),
            tmp,
            key,
            columns: copy_columns(client, t).await?,
        });
    }
    Ok(merges)
}

/// Deletes rows the backup lacks (children first), then puts back changed
/// and missing rows (parents first).
async fn merge_rows(client: &Client, merges: &[Merge]) -> Result<()> {
    for m in merges.iter().rev() {
        client
            .batch_execute(&format!(
                "delete from {} x where not exists (select 1 from {} b where {})",
                m.table.quoted(),
                m.tmp,
                m.on()
            ))
            .await
            .map_err(|e| {
                Error::postgres(
                    format!("removing rows of {} added since the backup", m.table),
                    e,
                )
            })?;
    }
    for m in merges {
        let cols = |p: &str| {
            m.columns
                .iter()
                .map(|c| format!("{p}{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (t, tmp, on) = (m.table.quoted(), &m.tmp, m.on());
        client
            .batch_execute(&format!(
                "update {t} x set ({}) = ({}) from {tmp} b where {on} and ({}) is distinct from ({}); \
                 insert into {t} ({}) select {} from {tmp} b where not exists (select 1 from {t} x where {on})",
                cols(""),
                cols("b."),
                cols("x."),
                cols("b."),
                cols(""),
                cols("b."),
            ))
            .await
            .map_err(|e| Error::postgres(format!("restoring rows of {}", m.table), e))?;
    }
    Ok(())
}

/// Drops and recreates what the login role owns in the application schemas.
async fn restore_application(client: &Client, dir: &Path, plan: &RollbackPlan) -> Result<()> {
    if plan.restore_lines.is_empty() {
        return Ok(());
    }
    let list = tempfile::Builder::new()
        .prefix("supamigrate-restore-list-")
        .tempfile()
        .map_err(|e| Error::io("writing the restore list", e))?;
    std::fs::write(list.path(), plan.restore_lines.join("\n") + "\n")
        .map_err(|e| Error::io("writing the restore list", e))?;
    let list_arg = format!("--use-list={}", list.path().display());
    let mut child = pg_restore_script(dir, &["--clean", "--if-exists", &list_arg])?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::new(ErrorKind::Tool, "pg_restore gave no output stream"))?;
    let keep = |_: &str| Ok(None);
    run_script(client, std::io::BufReader::new(stdout), &keep).await?;
    finish_child(child, "pg_restore of the application schemas")
}

async fn rollback_steps(client: &Client, dir: &Path, plan: &RollbackPlan) -> Result<()> {
    // 1. Supabase tables: merged back row by row.
    let merges = load_backup_rows(client, dir, plan).await?;
    merge_rows(client, &merges).await?;
    // 2. Application schemas: drop and recreate what the login role owns.
    restore_application(client, dir, plan).await
}

/// Tables whose fingerprints differ, by name: for messages.
pub fn summarize(checks: &[TableCheck]) -> BTreeMap<String, String> {
    checks
        .iter()
        .filter(|c| !c.matches && c.excused.is_none())
        .map(|c| {
            (
                c.table.to_string(),
                match c.rows {
                    None => "missing".to_string(),
                    Some(n) if n != c.expected_rows => {
                        format!("{n} rows, backup has {}", c.expected_rows)
                    }
                    Some(_) => "content differs".to_string(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{SourceInfo, TableEntry};

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            supamigrate_version: "0".into(),
            created_at: "now".into(),
            source: SourceInfo {
                server_version: "15".into(),
                host: "h".into(),
                port: 1,
                database: "postgres".into(),
                user: "postgres".into(),
            },
            schemas: vec!["public".into()],
            supabase_schemas: vec!["auth".into()],
            extensions: vec![],
            data_not_backed_up: vec![],
            files: vec![],
            tables: vec![TableEntry {
                schema: "public".into(),
                name: "t".into(),
                rows: 1,
                digest: "d".into(),
            }],
        }
    }

    #[test]
    fn tables_that_need_an_extension_the_server_lacks_are_excused() {
        let mut m = manifest();
        m.tables.push(TableEntry {
            schema: "public".into(),
            name: "settings".into(),
            rows: 2,
            digest: "d".into(),
        });
        m.extensions = vec![crate::catalog::Extension {
            name: "pg_jsonschema".into(),
            schema: "extensions".into(),
            dependents: vec!["constraint doc_shape on public.settings".into()],
            ..Default::default()
        }];
        let table = |name: &str| TableCheck {
            table: TableName::new("public", name),
            expected_rows: 1,
            rows: None,
            matches: false,
            excused: None,
        };
        let mut check = RestoreCheck {
            file_problems: vec![],
            restore_errors: vec![],
            tables: vec![table("t"), table("settings")],
            unavailable_extensions: vec![],
            left_out: Vec::new(),
        };
        excuse(&mut check, &m, &BTreeSet::new());
        assert!(check.tables.iter().all(|t| t.excused.is_none()));
        check.unavailable_extensions = vec!["pg_jsonschema".into()];
        excuse(&mut check, &m, &BTreeSet::new());
        assert!(check.tables[0].excused.is_none(), "t needs nothing");
        assert!(check.tables[1]
            .excused
            .as_deref()
            .is_some_and(|w| w.contains("pg_jsonschema, which this server could not create")));
        assert!(!check.ok(), "t is still missing");
        for (d, t) in [
            ("column public.a.c", Some("public.a")),
            ("default of column public.a.c", Some("public.a")),
            ("constraint k on public.a", Some("public.a")),
            ("function public.f", None),
        ] {
            assert_eq!(dependent_table(d), t, "{d}");
        }
    }

    #[test]
    fn plan_keeps_what_is_not_ours_and_orders_merges() {
        let toc = parse_toc(
            "1; 2615 2200 SCHEMA - public pg_database_owner
2; 1259 1 TABLE public t postgres
3; 0 1 TABLE DATA public t postgres
4; 1255 2 FUNCTION public handle_new_user() postgres
5; 0 0 ACL public FUNCTION handle_new_user() postgres
6; 1255 3 FUNCTION public other() supabase_admin
7; 826 4 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES supabase_admin
8; 1259 5 TABLE auth users supabase_auth_admin
9; 2606 6 FK CONSTRAINT public t t_fk postgres
",
        );
        let protected: BTreeSet<(String, String)> =
            [("function".to_string(), "public.handle_new_user".to_string())].into();
        let u = TableName::new("auth", "users");
        let i = TableName::new("auth", "identities");
        let s = TableName::new("auth", "sessions");
        let r = TableName::new("auth", "refresh_tokens");
        let refs = vec![
            (i.clone(), u.clone()),
            (s.clone(), u.clone()),
            (r.clone(), s.clone()),
        ];
        let plan = plan_rollback(
            &manifest(),
            &toc,
            "postgres",
            &protected,
            &[u.clone()].into(),
            &refs,
            &[
                TableName::new("public", "t"),
                TableName::new("public", "new_since"),
            ],
        );
        assert_eq!(
            plan.restored,
            [
                "TABLE public.t",
                "TABLE DATA public.t",
                "FK CONSTRAINT public.t t_fk"
            ]
        );
        let kept: Vec<&str> = plan.kept.iter().map(|k| k.object.as_str()).collect();
        assert_eq!(
            kept,
            [
                "FUNCTION public.handle_new_user()",
                "ACL public.FUNCTION handle_new_user()",
                "FUNCTION public.other()",
                "DEFAULT ACL public.DEFAULT PRIVILEGES FOR TABLES"
            ]
        );
        assert_eq!(plan.merge, vec![u, i, s, r]);
        assert_eq!(
            plan.not_in_backup,
            vec![TableName::new("public", "new_since")]
        );
    }
}
