//! Pre-migration backup, its restore test, and rollback (seed "Pre-Migration
//! Backup" and "Rollback Procedures").
//!
//! A backup is a folder `OUT/YYYYmmdd_HHMMSS/` holding `full.dump` (pg_dump
//! custom format of the application schemas plus the auth and storage
//! schemas, data included where the login role may read it), `schema.sql`
//! and `data.sql` (derived from the dump, so all three are one snapshot), and
//! `manifest.json` (versions, each file's size and SHA-256, each table's rows
//! and fingerprint, computed in the snapshot pg_dump read). It is built under
//! a hidden name and renamed when complete; `OUT/latest` then points at it.
//! Folders are 0700, files 0600.

pub mod restore;
pub mod script;
pub mod since;

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::dump::{application_schemas, SchemaSelection};
use crate::catalog::{list_tables, Extension};
use crate::connect::{connect, find_pg_tool, ConnInfo, PgCommand};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::{quote_ident, TableName};
use crate::verify::fingerprint;

/// Supabase schemas whose data a backup keeps (their definitions are
/// Supabase's and are never restored over).
pub const SUPABASE_DATA_SCHEMAS: &[&str] = &["auth", "storage"];

/// The manifest's name in a backup folder.
pub const MANIFEST: &str = "manifest.json";

/// A file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name in the folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A table's content when the backup was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Rows.
    pub rows: i64,
    /// Fingerprint ([`fingerprint::table`]).
    pub digest: String,
}

impl TableEntry {
    /// The table's name.
    pub fn table(&self) -> TableName {
        TableName::new(self.schema.clone(), self.name.clone())
    }
}

/// Where the backup came from (no password, ever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `server_version`.
    pub server_version: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Login role.
    pub user: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// supamigrate's version.
    pub supamigrate_version: String,
    /// When (UTC, ISO 8601).
    pub created_at: String,
    /// The source.
    pub source: SourceInfo,
    /// Application schemas: restored whole by rollback.
    pub schemas: Vec<String>,
    /// Supabase schemas whose data is kept.
    pub supabase_schemas: Vec<String>,
    /// Extensions installed on the source.
    pub extensions: Vec<Extension>,
    /// Tables whose data is not in the backup (the login role may not read
    /// them), with the reason.
    pub data_not_backed_up: Vec<String>,
    /// The files.
    pub files: Vec<FileEntry>,
    /// Every table whose data is in the backup.
    pub tables: Vec<TableEntry>,
}

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The parent folder (`./backups` by default).
    pub out: PathBuf,
    /// Which application schemas.
    pub schemas: SchemaSelection,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Backup {
    /// Its folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

fn mkdir_private(dir: &Path) -> Result<()> {
    crate::fsutil::require_folder(dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// A new owner-only file.
fn create_private(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn run_tool(mut cmd: std::process::Command, what: &str) -> Result<()> {
    let out = cmd
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::new(ErrorKind::Tool, format!("starting {what}")).with_source(e))?;
    tool_succeeded(out, what)
}

/// A finished tool's outcome: an error with its status and stderr unless it succeeded.
pub(crate) fn tool_succeeded(out: std::process::Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Tool,
        format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    ))
}

/// What a backup holds: the application schemas, the Supabase schemas whose
/// data it keeps, and the tables the login role may not read.
struct Scope {
    schemas: Vec<String>,
    supabase: Vec<String>,
    every: Vec<String>,
    unreadable: Vec<TableName>,
}

async fn scope(client: &tokio_postgres::Client, opts: &BackupOptions) -> Result<Scope> {
    let schemas = application_schemas(client, &opts.schemas).await?;
    let all = crate::catalog::list_schemas(client).await?;
    let supabase: Vec<String> = SUPABASE_DATA_SCHEMAS
        .iter()
        .filter(|s| all.iter().any(|a| a == *s))
        .map(|s| s.to_string())
        .collect();
    let every: Vec<String> = schemas.iter().chain(&supabase).cloned().collect();
    let unreadable: Vec<TableName> = client
        .query(include_str!("sql/unreadable_tables.sql"), &[&every])
        .await
        .map_err(|e| Error::postgres("checking which tables can be read", e))?
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Ok(Scope {
        schemas,
        supabase,
        every,
        unreadable,
    })
}

/// The snapshot pg_dump and the fingerprints read, with when and what.
struct Snapshot {
    id: String,
    stamp: String,
    created_at: String,
    server_version: String,
    user: String,
}

async fn open_snapshot(client: &tokio_postgres::Client) -> Result<Snapshot> {
    fingerprint::pin_session(client).await?;
    let id = crate::pg::export_snapshot(client, crate::pg::Access::ReadOnly).await?;
    let row = client
        .query_one(
            "select to_char(now() at time zone 'UTC', 'YYYYMMDD_HH24MISS'), \
                    to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    current_setting('server_version'), current_user::text",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("opening the backup snapshot", e))?;
    Ok(Snapshot {
        id,
        stamp: row.get(0),
        created_at: row.get(1),
        server_version: row.get(2),
        user: row.get(3),
    })
}

/// The backup's folder and the hidden one it is built in.
fn prepare_dirs(out: &Path, stamp: &str) -> Result<(PathBuf, PathBuf)> {
    mkdir_private(out)?;
    let dir = out.join(stamp);
    if dir.exists() {
        return Err(Error::invalid_input(format!(
            "{} already exists; nothing was changed",
            dir.display()
        ))
        .with_hint("wait a second and run backup again"));
    }
    // Unfinished folders of backups that were killed: never a backup.
    for e in std::fs::read_dir(out)
        .map_err(|e| Error::io(format!("reading {}", out.display()), e))?
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".partial-") {
            tracing::warn!(dir = %e.path().display(), "removing the unfinished folder of an interrupted backup");
            std::fs::remove_dir_all(e.path())
                .map_err(|err| Error::io(format!("removing {}", e.path().display()), err))?;
        }
    }
    let partial = out.join(format!(".partial-{stamp}"));
    mkdir_private(&partial)?;
    Ok((dir, partial))
}

/// `pg_dump -Fc` of the scope in the snapshot, into `partial/full.dump`.
async fn dump(
    source: &ConnInfo,
    pg_dump: &Path,
    snapshot: &str,
    scope: &Scope,
    partial: &Path,
) -> Result<PathBuf> {
    tracing::info!(schemas = %scope.every.join(", "), "dumping");
    let mut dump = PgCommand::new(pg_dump, source)?;
    dump.command()
        .args(["--format=custom", "--no-sync"])
        .arg(format!("--snapshot={snapshot}"));
    for s in &scope.every {
        dump.command().arg(format!("--schema={}", quote_ident(s)));
    }
    for t in &scope.unreadable {
        dump.command()
            .arg(format!("--exclude-table-data={}", t.quoted()));
    }
    let full = partial.join("full.dump");
    let file = create_private(&full)?;
    let mut cmd = std::mem::replace(dump.command(), std::process::Command::new("true"));
    cmd.stdout(file);
    // `dump` stays alive (it owns the passfile) until pg_dump has exited.
    let out = tokio::task::spawn_blocking(move || run_tool(cmd, "pg_dump"))
        .await
        .map_err(|e| Error::internal(format!("the pg_dump task failed: {e}")))?;
    drop(dump);
    out.map_err(|e| {
        let hint = if e.message().contains("No space left") {
            format!(
                "the disk holding {} is full: free space there, or give --out (run: --backup-dir) on a larger disk",
                partial.display()
            )
        } else if source.port == 6543 {
            "pg_dump needs a session connection, not the transaction pooler on port 6543: use port 5432".to_string()
        } else {
            "check pg_dump's message above: the source must be reachable and the role able to read the schemas".to_string()
        };
        e.with_hint(hint)
    })?;
    Ok(full)
}

/// Tables fingerprinted per transaction: each transaction imports the
/// backup's snapshot again, so the locks its reads take are released every
/// so many tables (thousands in one transaction fill the source's lock
/// table), and every table is still read at the one instant pg_dump read.
const TABLES_PER_TRANSACTION: usize = 500;

/// Every table's rows and fingerprint, in the backup's snapshot (`snapshot`,
/// exported by `client`'s open transaction).
async fn fingerprints(
    source: &ConnInfo,
    client: &tokio_postgres::Client,
    snapshot: &str,
    scope: &Scope,
) -> Result<Vec<TableEntry>> {
    let every: Vec<&str> = scope.every.iter().map(String::as_str).collect();
    let listed: Vec<TableName> = list_tables(client, &every)
        .await?
        .into_iter()
        .filter(|t| !scope.unreadable.contains(t))
        .collect();
    let reader = connect(source).await?;
    fingerprint::pin_session(&reader).await?;
    let mut tables = Vec::new();
    for chunk in listed.chunks(TABLES_PER_TRANSACTION) {
        crate::pg::import_snapshot(&reader, snapshot, crate::pg::Access::ReadOnly).await?;
        for t in chunk {
            let f = fingerprint::table(&reader, t).await?;
            tables.push(TableEntry {
                schema: t.schema.clone(),
                name: t.name.clone(),
                rows: f.rows,
                digest: f.digest,
            });
        }
        reader
            .batch_execute("commit")
            .await
            .map_err(|e| Error::postgres("ending a fingerprint transaction", e))?;
    }
    Ok(tables)
}

/// `schema.sql` and `data.sql` from the dump, and every file's size and SHA-256.
fn derive_files(pg_restore: &Path, full: &Path, partial: &Path) -> Result<Vec<FileEntry>> {
    for (name, flag) in [("schema.sql", "--schema-only"), ("data.sql", "--data-only")] {
        let mut cmd = crate::connect::child(pg_restore);
        cmd.args([flag, "--file=-"])
            .arg(full)
            .stdout(create_private(&partial.join(name))?);
        run_tool(cmd, &format!("pg_restore {flag}"))?;
    }
    let mut files = Vec::new();
    for name in ["full.dump", "schema.sql", "data.sql"] {
        let (bytes, sha256) = hash_file(&partial.join(name))?;
        files.push(FileEntry {
            name: name.to_string(),
            bytes,
            sha256,
        });
    }
    Ok(files)
}

/// Takes a backup of `source`.
pub async fn create(source: &ConnInfo, opts: &BackupOptions) -> Result<Backup> {
    let client = connect(source).await?;
    let scope = scope(&client, opts).await?;
    let source_major = crate::pg::server_major(&client).await?;
    let pg_dump = find_pg_tool("pg_dump")?;
    crate::catalog::dump::check_pg_dump_version(&pg_dump, source_major)?;
    let pg_restore = find_pg_tool("pg_restore")?;
    // One snapshot for the dump and the fingerprints.
    let snap = open_snapshot(&client).await?;
    let (dir, partial) = prepare_dirs(&opts.out, &snap.stamp)?;
    // A failure (a full disk, pg_dump refused) leaves no half-written folder.
    let result = write_backup(
        source,
        opts,
        &client,
        scope,
        snap,
        &pg_dump,
        &pg_restore,
        (&dir, &partial),
    )
    .await;
    if result.is_err() && partial.exists() {
        if let Err(e) = std::fs::remove_dir_all(&partial) {
            tracing::warn!(error = %e, dir = %partial.display(), "could not remove the unfinished backup folder");
        }
    }
    result
}

/// Everything of [`create`] after the folders exist: written in `partial`,
/// renamed to `dir` at the end.
#[allow(clippy::too_many_arguments)]
async fn write_backup(
    source: &ConnInfo,
    opts: &BackupOptions,
    client: &tokio_postgres::Client,
    scope: Scope,
    snap: Snapshot,
    pg_dump: &Path,
    pg_restore: &Path,
    (dir, partial): (&Path, &Path),
) -> Result<Backup> {
    let full = dump(source, pg_dump, &snap.id, &scope, partial).await?;
    let tables = fingerprints(source, client, &snap.id, &scope).await?;
    let extensions = crate::catalog::extensions(client, &scope.schemas).await?;
    client
        .batch_execute("commit")
        .await
        .map_err(|e| Error::postgres("closing the backup snapshot", e))?;
    let manifest = Manifest {
        format: 1,
        supamigrate_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: snap.created_at,
        source: SourceInfo {
            server_version: snap.server_version,
            host: source.host.clone(),
            port: source.port,
            database: source.dbname.clone(),
            user: snap.user,
        },
        data_not_backed_up: scope
            .unreadable
            .iter()
            .map(|t| format!("{t} (no SELECT privilege)"))
            .collect(),
        schemas: scope.schemas,
        supabase_schemas: scope.supabase,
        extensions,
        files: derive_files(pg_restore, &full, partial)?,
        tables,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::internal(format!("serializing the manifest: {e}")))?;
    crate::fsutil::write_atomically(&partial.join(MANIFEST), text.as_bytes(), 0o600)?;
    std::fs::rename(partial, dir).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", partial.display(), dir.display()),
            e,
        )
    })?;
    point_latest(&opts.out, &snap.stamp)?;
    tracing::info!(dir = %dir.display(), tables = manifest.tables.len(), "backup complete");
    Ok(Backup {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// Points `out/latest` at `name`, replacing the link in one rename.
fn point_latest(out: &Path, name: &str) -> Result<()> {
    let tmp = out.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    std::fs::rename(&tmp, out.join("latest"))
        .map_err(|e| Error::io(format!("updating {}/latest", out.display()), e))
}

/// Reads a backup's manifest and checks every file against it: the list of
/// problems is empty when all sizes and SHA-256 sums match.
pub fn check(dir: &Path) -> Result<(Manifest, Vec<String>)> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::invalid_input(format!("cannot read {}: {e}", path.display()))
            .with_hint("pass a backup folder made by `supamigrate backup` (or its `latest` link)")
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Error::invalid_input(format!(
            "{} is not a supamigrate manifest: {e}",
            path.display()
        ))
    })?;
    let mut problems = Vec::new();
    for f in &manifest.files {
        let p = dir.join(&f.name);
        if !p.exists() {
            problems.push(format!("{} is missing", f.name));
            continue;
        }
        let (bytes, sha) = hash_file(&p)?;
        if bytes != f.bytes {
            problems.push(format!(
                "{} has {bytes} bytes, the manifest says {}",
                f.name, f.bytes
            ));
        } else if sha != f.sha256 {
            problems.push(format!(
                "{} does not match its SHA-256 in the manifest (the file was changed)",
                f.name
            ));
        }
    }
    Ok((manifest, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_missing_truncated_and_edited_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (n, body) in [
            ("full.dump", "abcdef"),
            ("schema.sql", "xyz"),
            ("data.sql", "q"),
        ] {
            std::fs::write(d.join(n), body).unwrap();
        }
        let files = ["full.dump", "schema.sql", "data.sql"]
            .iter()
            .map(|n| {
                let (bytes, sha256) = hash_file(&d.join(n)).unwrap();
                FileEntry {
                    name: n.to_string(),
                    bytes,
                    sha256,
                }
            })
            .collect();
        let m = Manifest {
            format: 1,
            supamigrate_version: "0".into(),
            created_at: "now".into(),
            source: SourceInfo {
                server_version: "15".into(),
                host: "h".into(),
                port: 5432,
                database: "postgres".into(),
                user: "postgres".into(),
            },
            schemas: vec!["public".into()],
            supabase_schemas: vec![],
            extensions: vec![],
            data_not_backed_up: vec![],
            files,
            tables: vec![],
        };
        std::fs::write(d.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
        assert!(check(d).unwrap().1.is_empty());
        std::fs::write(d.join("full.dump"), "abc").unwrap();
        std::fs::write(d.join("schema.sql"), "xyZ").unwrap();
        std::fs::remove_file(d.join("data.sql")).unwrap();
        let problems = check(d).unwrap().1;
        assert_eq!(
            problems,
            [
                "full.dump has 3 bytes, the manifest says 6",
                "schema.sql does not match its SHA-256 in the manifest (the file was changed)",
                "data.sql is missing"
            ]
        );
        assert_eq!(
            check(&d.join("nope")).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
