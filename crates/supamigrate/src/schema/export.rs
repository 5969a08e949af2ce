//! Exporting the source schema: pg_dump for the application schemas, the
//! catalog for what such a dump misses.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::is_internal_schema;
use crate::catalog;
use crate::connect::{connect, find_pg_tool, ConnInfo, PgCommand};
use crate::error::{Error, ErrorKind, Result};

/// An extension of the source and what depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Name.
    pub name: String,
    /// Schema it is installed in.
    pub schema: String,
    /// Objects outside the extension that use it (`function public.f`, `column public.t.c`…).
    pub dependents: Vec<String>,
}

/// A publication and its tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// Name.
    pub name: String,
    /// `schema.table` of each published table.
    pub tables: Vec<String>,
}

/// A Supabase Storage bucket's definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// `storage.buckets.id`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Readable without authentication.
    pub public: bool,
    /// Upload size limit in bytes.
    pub file_size_limit: Option<i64>,
    /// Accepted MIME types (empty: any).
    pub allowed_mime_types: Vec<String>,
}

/// Everything the converter needs from the source. Serializable, so an export
/// can be reviewed and converted later without the source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaSource {
    /// Application schemas exported.
    pub schemas: Vec<String>,
    /// The source's major version.
    pub source_major: u32,
    /// `pg_dump --schema-only --section=pre-data` of the schemas.
    pub pre_data: String,
    /// `pg_dump --schema-only --section=post-data` of the schemas.
    pub post_data: String,
    /// Columns of `auth.users`, when the source has Supabase Auth.
    pub auth_users_columns: Option<Vec<String>>,
    /// User triggers on `auth.users` (`CREATE TRIGGER …`).
    pub auth_user_triggers: Vec<String>,
    /// Installed extensions.
    pub extensions: Vec<Extension>,
    /// Publications.
    pub publications: Vec<Publication>,
    /// Event triggers.
    pub event_triggers: Vec<String>,
    /// Policies on Storage tables.
    pub storage_policies: Vec<String>,
    /// Storage buckets.
    #[serde(default)]
    pub storage_buckets: Vec<Bucket>,
}

/// Which schemas to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only these (`--schema`); empty means every application schema.
    pub schemas: Vec<String>,
    /// Never these (`--exclude-schema`).
    pub exclude: Vec<String>,
}

/// The application schemas `opts` selects on the source: every schema that
/// is not Supabase-internal, or those named, minus the excluded ones.
pub async fn application_schemas(
    client: &tokio_postgres::Client,
    opts: &ExportOptions,
) -> Result<Vec<String>> {
    let all = catalog::list_schemas(client).await?;
    for s in opts.schemas.iter().chain(&opts.exclude) {
        if !all.contains(s) {
            return Err(
                Error::invalid_input(format!("schema {s:?} does not exist on the source"))
                    .with_hint(format!("schemas there: {}", all.join(", "))),
            );
        }
    }
    let schemas: Vec<String> = if opts.schemas.is_empty() {
        all.into_iter().filter(|s| !is_internal_schema(s)).collect()
    } else {
        opts.schemas.clone()
    }
    .into_iter()
    .filter(|s| !opts.exclude.contains(s))
    .collect();
    if schemas.is_empty() {
        return Err(Error::invalid_input("no application schema to export")
            .with_hint("name one with --schema, or check --exclude-schema"));
    }
    Ok(schemas)
}

/// Exports the schema of `source` (connecting as given, normally `postgres`).
pub async fn export(source: &ConnInfo, opts: &ExportOptions) -> Result<SchemaSource> {
    let client = connect(source).await?;
    // Definitions read from the catalog (pg_get_triggerdef…) then name every
    // object with its schema, as the dump does.
    client
        .batch_execute("set search_path = ''")
        .await
        .map_err(|e| Error::postgres("preparing the catalog session", e))?;
    let schemas = application_schemas(&client, opts).await?;
    let source_major = catalog::server_major(&client).await?;
    let pg_dump = find_pg_tool("pg_dump")?;
    check_pg_dump_version(&pg_dump, source_major)?;

    let pre_data = dump(&pg_dump, source, &schemas, "pre-data")?;
    let post_data = dump(&pg_dump, source, &schemas, "post-data")?;
    let dependents = catalog::extension_dependents(&client).await?;
    let extensions = catalog::list_extensions(&client)
        .await?
        .into_iter()
        .map(|(name, schema)| Extension {
            dependents: dependents
                .iter()
                .filter(|(e, _)| *e == name)
                .map(|(_, d)| d.clone())
                .collect(),
            name,
            schema,
        })
        .collect();
    Ok(SchemaSource {
        schemas,
        source_major,
        pre_data,
        post_data,
        auth_users_columns: catalog::auth_users_columns(&client).await?,
        auth_user_triggers: catalog::auth_users_triggers(&client).await?,
        extensions,
        publications: catalog::list_publications(&client)
            .await?
            .into_iter()
            .map(|(name, tables)| Publication { name, tables })
            .collect(),
        event_triggers: catalog::list_event_triggers(&client).await?,
        storage_policies: catalog::storage_policies(&client).await?,
        storage_buckets: catalog::storage_buckets(&client)
            .await?
            .into_iter()
            .map(
                |(id, name, public, file_size_limit, allowed_mime_types)| Bucket {
                    id,
                    name,
                    public,
                    file_size_limit,
                    allowed_mime_types,
                },
            )
            .collect(),
    })
}

fn dump(pg_dump: &Path, source: &ConnInfo, schemas: &[String], section: &str) -> Result<String> {
    let mut cmd = PgCommand::new(pg_dump, source)?;
    cmd.command().args([
        "--schema-only",
        "--no-comments",
        &format!("--section={section}"),
    ]);
    for s in schemas {
        // Quoted: a name, not a pattern.
        cmd.command()
            .arg(format!("--schema=\"{}\"", s.replace('"', "\"\"")));
    }
    cmd.output().map_err(|e| {
        Error::new(ErrorKind::Tool, format!("pg_dump ({section}) of {source}: {}", e.message()))
            .with_hint("pg_dump needs a session connection (not the transaction pooler on port 6543) and read access to the schemas")
    })
}

pub(crate) fn check_pg_dump_version(pg_dump: &Path, source_major: u32) -> Result<()> {
    let out = std::process::Command::new(pg_dump)
        .arg("--version")
        .output()
        .map_err(|e| {
            Error::new(
                ErrorKind::Tool,
                format!("running {} --version", pg_dump.display()),
            )
            .with_source(e)
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major: u32 = text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or(0);
    if major < source_major {
        return Err(Error::new(
            ErrorKind::Tool,
            format!("pg_dump {major} cannot dump a PostgreSQL {source_major} server"),
        )
        .with_hint(format!("install postgresql-client-{source_major} or newer, or set SUPAMIGRATE_PG_BIN to its bin directory")));
    }
    Ok(())
}
