//! The schema dump: `pg_dump --schema-only` of the application schemas, run
//! once per migration (in custom format, then split into pre-data and
//! post-data by `pg_restore`, which does not connect), plus what such a dump
//! misses, read from the catalog.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data::{ColumnSample, DatabaseSetting, GeneratedColumn, ProjectRole};
use super::platform::PlatformFacts;
use super::{Bucket, ColumnDef, Extension, Publication};
use crate::connect::{find_pg_tool, ConnInfo, PgCommand};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::{quote_ident, TableName};
use crate::supabase::is_internal_schema;

/// Everything the converter needs from the source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaSource {
    /// Application schemas exported.
    pub schemas: Vec<String>,
    /// Who reads past row level security on the source (`None`: not read,
    /// e.g. a plan saved by an older version; Supabase's defaults assumed).
    #[serde(default)]
    pub row_security: Option<super::data::RowSecurityFacts>,
    /// The source's major version.
    pub source_major: u32,
    /// `pg_dump --schema-only --section=pre-data` of the schemas (secrets redacted).
    pub pre_data: String,
    /// `pg_dump --schema-only --section=post-data` of the schemas (secrets redacted).
    pub post_data: String,
    /// Columns of `auth.users`, when the source has Supabase Auth.
    pub auth_users_columns: Option<Vec<ColumnDef>>,
    /// Supabase Auth's other tables that can move as tables
    /// ([`crate::supabase::AUTH_TABLES`]), those the source has.
    #[serde(default)]
    pub auth_tables: Vec<AuthTable>,
    /// The enum types of the `auth` schema: (name, labels in order).
    #[serde(default)]
    pub auth_enums: Vec<(String, Vec<String>)>,
    /// Columns of `storage.buckets` and `storage.objects`, when the source has Supabase Storage.
    pub storage_columns: Option<StorageColumns>,
    /// Installed extensions.
    pub extensions: Vec<Extension>,
    /// Publications.
    pub publications: Vec<Publication>,
    /// Event triggers.
    pub event_triggers: Vec<String>,
    /// The project's own event triggers.
    #[serde(default)]
    pub project_event_triggers: Vec<super::ProjectEventTrigger>,
    /// Storage buckets.
    pub storage_buckets: Vec<Bucket>,
    /// The platform features the application uses (cron, queues, webhooks…).
    pub platform: PlatformFacts,
    /// Stored generated columns, with their stale rows.
    pub generated_columns: Vec<GeneratedColumn>,
    /// Materialized views populated on the source, each after those it
    /// reads (the schema-only dump creates them empty).
    #[serde(default)]
    pub populated_matviews: Vec<TableName>,
    /// The project's own roles (the platform's left out).
    #[serde(default)]
    pub project_roles: Vec<ProjectRole>,
    /// The database's own settings (`ALTER DATABASE … SET`).
    #[serde(default)]
    pub database_settings: Vec<DatabaseSetting>,
    /// The project's changes to default privileges (`ALTER DEFAULT
    /// PRIVILEGES`): a schema dump of some schemas leaves out those for
    /// every schema.
    #[serde(default)]
    pub default_privileges: Vec<super::data::DefaultPrivilege>,
    /// Text columns whose sampled values are Storage references.
    pub reference_samples: Vec<ColumnSample>,
    /// How many distinct secrets were found in definitions (and redacted).
    pub secrets_found: usize,
}

impl SchemaSource {
    /// Names of the application's policies on Storage tables.
    pub fn storage_policies(&self) -> Vec<String> {
        self.platform
            .internal_policies
            .iter()
            .filter(|p| p.schema == "storage")
            .map(|p| p.name.clone())
            .collect()
    }
}

/// One of Supabase Auth's tables that can move as a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthTable {
    /// Its name in `auth`.
    pub name: String,
    /// Its columns.
    pub columns: Vec<ColumnDef>,
    /// Its primary key and unique constraints: (name, definition).
    pub keys: Vec<(String, String)>,
    /// Row level security is on.
    pub rls: bool,
}

/// The Storage tables' columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageColumns {
    /// `storage.buckets`.
    pub buckets: Vec<ColumnDef>,
    /// `storage.objects`.
    pub objects: Vec<ColumnDef>,
}

/// Which schemas to migrate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSelection {
    /// Only these (`--schema`); empty means every application schema.
    pub schemas: Vec<String>,
    /// Never these (`--exclude-schema`).
    pub exclude: Vec<String>,
}

/// The application schemas `sel` selects on the source: every schema that
/// is not Supabase-internal, or those named, minus the excluded ones.
pub async fn application_schemas(
    client: &tokio_postgres::Client,
    sel: &SchemaSelection,
) -> Result<Vec<String>> {
    let all = super::list_schemas(client).await?;
    for s in sel.schemas.iter().chain(&sel.exclude) {
        if !all.contains(s) {
            return Err(
                Error::invalid_input(format!("schema {s:?} does not exist on the source"))
                    .with_hint(format!("schemas there: {}", all.join(", "))),
            );
        }
    }
    let schemas: Vec<String> = if sel.schemas.is_empty() {
        all.into_iter().filter(|s| !is_internal_schema(s)).collect()
    } else {
        sel.schemas.clone()
    }
    .into_iter()
    .filter(|s| !sel.exclude.contains(s))
    .collect();
    if schemas.is_empty() {
        return Err(Error::invalid_input("no application schema to migrate")
            .with_hint("name one with --schema, or check --exclude-schema"));
    }
    Ok(schemas)
}

/// The schema dump of `schemas`: pre-data and post-data as SQL text, from
/// one `pg_dump` run.
pub fn dump_schema(
    source: &ConnInfo,
    schemas: &[String],
    source_major: u32,
) -> Result<(String, String)> {
    let pg_dump = find_pg_tool("pg_dump")?;
    check_pg_dump_version(&pg_dump, source_major)?;
    let dir = tempfile::Builder::new()
        .prefix("supamigrate-dump-")
        .tempdir()
        .map_err(|e| Error::io("creating a folder for the schema dump", e))?;
    let archive = dir.path().join("schema.dump");
    let mut cmd = PgCommand::new(&pg_dump, source)?;
    cmd.command()
        .args(["--schema-only", "--format=custom", "--no-sync", "--file"])
        .arg(&archive);
    for s in schemas {
        // Quoted: a name, not a pattern.
        cmd.command().arg(format!("--schema={}", quote_ident(s)));
    }
    cmd.output().map_err(|e| {
        Error::new(ErrorKind::Tool, format!("pg_dump --schema-only of {source}: {}", e.message()))
            .with_hint("pg_dump needs a session connection (not the transaction pooler on port 6543) and read access to the schemas")
    })?;
    let pre = restore_section(&archive, "pre-data")?;
    let post = restore_section(&archive, "post-data")?;
    Ok((pre, post))
}

/// One section of a schema-only archive as SQL (`pg_restore` without a
/// server).
fn restore_section(archive: &Path, section: &str) -> Result<String> {
    let pg_restore = find_pg_tool("pg_restore")?;
    let out = crate::connect::child(&pg_restore)
        .arg("--file=-")
        .arg(format!("--section={section}"))
        .arg(archive)
        .output()
        .map_err(|e| Error::new(ErrorKind::Tool, "starting pg_restore").with_source(e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Tool,
            format!(
                "pg_restore --section={section} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| {
        Error::new(
            ErrorKind::Tool,
            format!("pg_restore --section={section} wrote text that is not UTF-8"),
        )
    })
}

/// Refuses a `pg_dump` older than the source server.
pub(crate) fn check_pg_dump_version(pg_dump: &Path, source_major: u32) -> Result<()> {
    let major = tool_major(pg_dump)?;
    if major < source_major {
        return Err(Error::new(
            ErrorKind::Tool,
            format!("pg_dump {major} cannot dump a PostgreSQL {source_major} server"),
        )
        .with_hint(format!("install postgresql-client-{source_major} or newer, or set SUPAMIGRATE_PG_BIN to its bin directory")));
    }
    Ok(())
}

/// The major version a PostgreSQL program reports (`pg_dump (PostgreSQL) 15.8`).
pub fn tool_major(program: &Path) -> Result<u32> {
    let out = crate::connect::child(program)
        .arg("--version")
        .output()
        .map_err(|e| {
            Error::new(
                ErrorKind::Tool,
                format!("running {} --version", program.display()),
            )
            .with_source(e)
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or(0))
}
