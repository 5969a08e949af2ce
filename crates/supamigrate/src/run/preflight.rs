//! Preflight: everything the migration needs, checked before anything is
//! written, each failure with how to fix it.

use std::path::Path;

use serde::Serialize;

use crate::connect::{connect, find_pg_tool, probe, ConnInfo};
use crate::error::Result;
use crate::schema::{export::ExportOptions, ConvertOptions};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

fn tool_major(name: &str) -> std::result::Result<(u32, String), String> {
    let path = find_pg_tool(name).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or(0);
    Ok((major, text))
}

/// Copy throughput measured by `bench/copy.sh` (606 MB at about 50 MB/s on
/// a 2-core machine with both servers local); the prediction's basis.
const MEASURED_MB_PER_S: f64 = 50.0;

/// Runs every check. Reads only.
pub async fn run(
    source: &ConnInfo,
    target: &ConnInfo,
    backup_dir: &Path,
    export: &ExportOptions,
    convert: &ConvertOptions,
) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    // Source connection.
    if source.port == 6543 {
        out.push(check(
            "source connection mode",
            Status::Warn,
            "SUPABASE_DB_URL uses port 6543, Supabase's transaction pooler",
            Some("pg_dump and the snapshot copy need a session: use the direct connection (port 5432) or the session-mode pooler"),
        ));
    }
    let src = match probe(source).await {
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
            Some(p)
        }
        Err(e) => {
            out.push(check(
                "source connection",
                Status::Fail,
                e.to_string(),
                e.hint(),
            ));
            None
        }
    };
    let source_major: u32 = src
        .as_ref()
        .and_then(|p| p.server_version.split(['.', ' ']).next()?.parse().ok())
        .unwrap_or(0);
    for tool in ["pg_dump", "pg_restore"] {
        out.push(match tool_major(tool) {
            Ok((m, text)) if m >= source_major => check(tool, Status::Pass, text, None),
            Ok((m, text)) => check(
                tool,
                Status::Fail,
                format!("{text}: major {m} is older than the source's {source_major}"),
                Some("install the PostgreSQL client of the source's major version or newer (postgresql-client-NN)"),
            ),
            Err(e) => check(tool, Status::Fail, e, Some("install postgresql-client (scripts/setup.sh does)")),
        });
    }
    // Target connection and privileges.
    match probe(target).await {
        Ok(p) => {
            out.push(check(
                "target connection",
                Status::Pass,
                format!(
                    "PostgreSQL {} as {}{}; database {} {}",
                    p.server_version,
                    p.user,
                    if p.tls { ", TLS" } else { "" },
                    target.dbname,
                    if p.database_exists {
                        "exists"
                    } else {
                        "will be created"
                    }
                ),
                None,
            ));
            let c = connect(&target.with_dbname(if p.database_exists {
                &target.dbname
            } else {
                "postgres"
            }))
            .await?;
            let r = c
                .query_one(
                    "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user",
                    &[],
                )
                .await
                .map_err(|e| crate::error::Error::postgres("reading the target role's privileges", e))?;
            let (sup, db, role): (bool, bool, bool) = (r.get(0), r.get(1), r.get(2));
            out.push(if sup || (db && role) {
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
                    format!("CREATEDB {db}, CREATEROLE {role}"),
                    Some("connect as the RDS master user (rds_superuser has both)"),
                )
            });
        }
        Err(e) => out.push(check(
            "target connection",
            Status::Fail,
            e.to_string(),
            e.hint(),
        )),
    }
    if src.is_none() {
        return Ok(out);
    }
    let client = connect(source).await?;
    // Source privileges on auth and storage.
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
            .map_err(|e| crate::error::Error::postgres("checking source privileges", e))?;
        let (exists, can): (bool, bool) = (r.get(0), r.get(1));
        out.push(match (exists, can) {
            (false, _) => check(
                &format!("read {t}"),
                Status::Warn,
                format!("no {t}: no {what} to migrate"),
                None,
            ),
            (true, true) => check(&format!("read {t}"), Status::Pass, "SELECT granted", None),
            (true, false) => check(
                &format!("read {t}"),
                Status::Fail,
                "no SELECT privilege",
                Some("connect as the project's postgres role"),
            ),
        });
    }
    // Size, predicted duration, disk for backups, wal_level.
    let r = client
        .query_one(
            "select pg_database_size(current_database()), current_setting('wal_level')",
            &[],
        )
        .await
        .map_err(|e| crate::error::Error::postgres("reading the database size", e))?;
    let (size, wal): (i64, String) = (r.get(0), r.get(1));
    let mb = size as f64 / 1e6;
    out.push(check(
        "database size",
        Status::Pass,
        format!(
            "{mb:.0} MB; the copy should take about {:.0} s at the {MEASURED_MB_PER_S:.0} MB/s bench/copy.sh measured (more over a network)",
            (mb / MEASURED_MB_PER_S).max(1.0)
        ),
        None,
    ));
    let dir = backup_dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("."));
    match nix::sys::statvfs::statvfs(dir) {
        Ok(v) => {
            let free = v.blocks_available() as f64 * v.fragment_size() as f64;
            // The custom dump is compressed; the two SQL files are not.
            let need = size as f64 * 1.5;
            out.push(if free >= need {
                check(
                    "disk for backups",
                    Status::Pass,
                    format!("{:.0} MB free in {}", free / 1e6, dir.display()),
                    None,
                )
            } else {
                check(
                    "disk for backups",
                    Status::Fail,
                    format!(
                        "{:.0} MB free in {}, about {:.0} MB needed",
                        free / 1e6,
                        dir.display(),
                        need / 1e6
                    ),
                    Some("free space, or point --backup-dir at a larger disk"),
                )
            });
        }
        Err(e) => out.push(check(
            "disk for backups",
            Status::Warn,
            format!("cannot tell: {e}"),
            None,
        )),
    }
    out.push(check(
        "source wal_level",
        Status::Pass,
        format!("{wal} (the copy reads a snapshot; logical decoding is not needed)"),
        None,
    ));
    // Extensions and the conversion: the target must offer what the schema needs.
    match crate::schema::export_and_convert(source, Some(target), export, convert.clone()).await {
        Ok((src, conv)) => out.push(check(
            "schema conversion",
            Status::Pass,
            format!(
                "schemas {}; {} pre-data and {} post-data statements; extensions all available",
                src.schemas.join(", "),
                conv.pre_data.len(),
                conv.post_data.len()
            ),
            None,
        )),
        Err(e) => out.push(check(
            "schema conversion",
            Status::Fail,
            e.to_string(),
            e.hint(),
        )),
    }
    Ok(out)
}
