//! Introspection: everything supamigrate learns about the source and the
//! target comes from here. The queries live in `sql/*.sql`; [`inventory`]
//! gathers them into the [`inventory::Inventory`] the plan is built from;
//! [`dump`] runs the one schema dump a migration needs.

pub mod auth;
pub mod data;
pub mod drift;
pub mod dump;
pub mod inventory;
pub mod platform;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::{strings, TableName};

/// A foreign key constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing table.
    pub table: TableName,
    /// Referencing columns, in key order.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: TableName,
    /// Referenced columns, in key order.
    pub ref_columns: Vec<String>,
    /// False for constraints added NOT VALID and not validated since.
    pub validated: bool,
}

/// The foreign keys of tables in `schemas`.
pub async fn list_foreign_keys(client: &Client, schemas: &[&str]) -> Result<Vec<ForeignKey>> {
    let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(include_str!("sql/list_foreign_keys.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing foreign keys", e))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            table: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            ref_table: TableName::new(r.get::<_, String>(3), r.get::<_, String>(4)),
            columns: r.get(5),
            ref_columns: r.get(6),
            validated: r.get(7),
        })
        .collect())
}

/// The tables (not partitions) of `schemas`, sorted.
pub async fn list_tables(client: &Client, schemas: &[&str]) -> Result<Vec<TableName>> {
    let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(include_str!("sql/list_tables.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Every schema except system schemas and schemas owned by extensions.
pub async fn list_schemas(client: &Client) -> Result<Vec<String>> {
    strings(client, include_str!("sql/list_schemas.sql"), &[], "schemas").await
}

/// A column, as `CREATE TABLE` would define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Name.
    pub name: String,
    /// Type (`format_type`).
    pub data_type: String,
    /// NOT NULL.
    pub not_null: bool,
    /// Default expression.
    pub default: Option<String>,
    /// Generation expression of a stored generated column.
    pub generated: Option<String>,
}

/// The columns of `table` (`auth.users`), or `None` when there is no such table.
pub async fn table_columns(client: &Client, table: &str) -> Result<Option<Vec<ColumnDef>>> {
    let rows = client
        .query(include_str!("sql/table_columns.sql"), &[&table])
        .await
        .map_err(|e| Error::postgres(format!("reading the columns of {table}"), e))?;
    let cols: Vec<ColumnDef> = rows
        .iter()
        .map(|r| ColumnDef {
            name: r.get(0),
            data_type: r.get(1),
            not_null: r.get(2),
            default: r.get(3),
            generated: r.get(4),
        })
        .collect();
    Ok((!cols.is_empty()).then_some(cols))
}

/// An installed extension and what outside it depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Name.
    pub name: String,
    /// Schema it is installed in.
    pub schema: String,
    /// Objects of the application's schemas that the catalog records as
    /// using it (`function public.f`, `column public.t.c`…).
    pub dependents: Vec<String>,
    /// Its functions (`schema.name`): what function bodies may call, which
    /// the catalog does not record.
    pub functions: Vec<String>,
    /// Of them, those named like a built-in function (an unqualified call
    /// is the built-in's).
    pub builtin_named: Vec<String>,
    /// Its tables and views (`schema.name`).
    pub relations: Vec<String>,
    /// Its configuration tables and sequences (`pg_extension_config_dump`).
    #[serde(default)]
    pub config: Vec<ExtensionConfig>,
}

/// A configuration table (or sequence) of an extension: rows the project
/// added to it are data `CREATE EXTENSION` does not make again (a custom
/// `spatial_ref_sys` entry of PostGIS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionConfig {
    /// The extension.
    pub extension: String,
    /// The table or sequence.
    pub relation: TableName,
    /// A sequence: its value is what is carried.
    pub sequence: bool,
    /// The `WHERE …` selecting the project's rows (empty: all of them).
    pub condition: String,
    /// Rows the condition selects on the source (a sequence: 1 once it was
    /// used, else 0); `None` when this user may not read it.
    pub rows: Option<i64>,
}

impl ExtensionConfig {
    /// The query reading the project's rows of a configuration table.
    pub fn rows_query(&self, columns: &str) -> String {
        format!(
            "{} select {columns} from only {} {}",
            crate::sql::OWN,
            self.relation.quoted(),
            self.condition
        )
    }
}

/// Each extension's configuration tables and sequences, with the rows the
/// project added to each (counted where this user may read them).
async fn extension_config(client: &Client) -> Result<Vec<ExtensionConfig>> {
    let what = |e| Error::postgres("reading extensions' configuration tables", e);
    let rows = client
        .query(include_str!("sql/extension_config.sql"), &[])
        .await
        .map_err(what)?;
    let mut out = Vec::new();
    for r in rows {
        let mut c = ExtensionConfig {
            extension: r.get(0),
            relation: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            sequence: r.get(3),
            condition: r.get(4),
            rows: None,
        };
        if r.get::<_, bool>(5) {
            let sql = if c.sequence {
                format!(
                    "select (is_called)::int::bigint from {}",
                    c.relation.quoted()
                )
            } else {
                c.rows_query("count(*)")
            };
            c.rows = Some(client.query_one(&sql, &[]).await.map_err(what)?.get(0));
        }
        out.push(c);
    }
    Ok(out)
}

/// Installed extensions, with their dependents in `app_schemas` and their members.
pub async fn extensions(client: &Client, app_schemas: &[String]) -> Result<Vec<Extension>> {
    let what = |e| Error::postgres("reading extensions from the catalog", e);
    let deps = client
        .query(include_str!("sql/extension_dependents.sql"), &[])
        .await
        .map_err(what)?;
    let members = client
        .query(include_str!("sql/extension_members.sql"), &[])
        .await
        .map_err(what)?;
    let rows = client
        .query(include_str!("sql/list_extensions.sql"), &[])
        .await
        .map_err(what)?;
    let mut config = extension_config(client).await?;
    let member = |name: &str, kind: &str| -> Vec<String> {
        members
            .iter()
            .filter(|m| m.get::<_, String>(0) == name && m.get::<_, String>(1) == kind)
            .map(|m| format!("{}.{}", m.get::<_, String>(2), m.get::<_, String>(3)))
            .collect()
    };
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            Extension {
                dependents: deps
                    .iter()
                    .filter(|d| d.get::<_, String>(0) == name)
                    .filter(|d| {
                        d.get::<_, Option<String>>(2)
                            .is_some_and(|s| app_schemas.contains(&s))
                    })
                    .filter_map(|d| d.get::<_, Option<String>>(1))
                    .collect(),
                functions: [member(&name, "function"), member(&name, "function*")].concat(),
                builtin_named: member(&name, "function*"),
                relations: member(&name, "relation"),
                config: config.extract_if(.., |c| c.extension == name).collect(),
                schema: r.get(1),
                name,
            }
        })
        .collect())
}

/// A publication and its tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// Name.
    pub name: String,
    /// `schema.table` of each published table.
    pub tables: Vec<String>,
    /// The same, quoted for SQL.
    #[serde(default)]
    pub quoted_tables: Vec<String>,
    /// What it publishes (`insert, update, delete, truncate`).
    #[serde(default)]
    pub publish: String,
    /// `publish_via_partition_root`.
    #[serde(default)]
    pub via_root: bool,
    /// It is exactly a list of tables: `CREATE PUBLICATION … FOR TABLE`
    /// with these options makes it again (not FOR ALL TABLES, no TABLES IN
    /// SCHEMA, each table published as itself).
    #[serde(default)]
    pub table_list: bool,
    /// Each listed table as `FOR TABLE` takes it, quoted, with its column
    /// list and row filter (PostgreSQL 15+; empty before, where neither exists).
    #[serde(default)]
    pub table_specs: Vec<String>,
}

/// Publications.
pub async fn publications(client: &Client) -> Result<Vec<Publication>> {
    let major = crate::pg::server_major(client).await?;
    let what = |e| Error::postgres("reading publications from the catalog", e);
    let rows = client
        .query(include_str!("sql/list_publications.sql"), &[])
        .await
        .map_err(what)?;
    let specs: Vec<(String, Vec<String>)> = if major >= 15 {
        client
            .query(include_str!("sql/publication_specs.sql"), &[])
            .await
            .map_err(what)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            Publication {
                table_specs: specs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                name,
                tables: r.get(1),
                quoted_tables: r.get(2),
                publish: r.get(3),
                via_root: r.get(4),
                table_list: r.get(5),
            }
        })
        .collect())
}

/// An event trigger of the project's own (its function is in one of the
/// application's schemas).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectEventTrigger {
    /// Name.
    pub name: String,
    /// `CREATE EVENT TRIGGER …` making it again.
    pub create: String,
    /// It is disabled on the source.
    pub disabled: bool,
}

/// Event triggers: the platform's names, and the project's own.
pub async fn event_triggers(
    client: &Client,
    schemas: &[String],
) -> Result<(Vec<String>, Vec<ProjectEventTrigger>)> {
    let rows = client
        .query(include_str!("sql/list_event_triggers.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("reading event triggers", e))?;
    let (mut platform, mut project) = (Vec::new(), Vec::new());
    for r in rows {
        if r.get::<_, bool>(1) {
            project.push(ProjectEventTrigger {
                name: r.get(0),
                create: r.get(2),
                disabled: r.get(3),
            });
        } else {
            platform.push(r.get(0));
        }
    }
    Ok((platform, project))
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
    /// Objects listed in `storage.objects`.
    pub objects: i64,
    /// Their bytes, by their metadata.
    pub bytes: i64,
}

/// Whether the source has Supabase Storage (`storage.objects`).
pub async fn has_storage(client: &Client) -> Result<bool> {
    Ok(client
        .query_one("select to_regclass('storage.objects') is not null", &[])
        .await
        .map_err(|e| Error::postgres("looking for storage.objects", e))?
        .get(0))
}

/// Storage buckets with their object counts (empty without Storage).
pub async fn storage_buckets(client: &Client) -> Result<Vec<Bucket>> {
    if !has_storage(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(include_str!("sql/storage_buckets.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading storage buckets", e))?;
    Ok(rows
        .iter()
        .map(|r| Bucket {
            id: r.get(0),
            name: r.get(1),
            public: r.get(2),
            file_size_limit: r.get(3),
            allowed_mime_types: r.get(4),
            objects: r.get(5),
            bytes: r.get(6),
        })
        .collect())
}

/// Extensions the connected role can create: on RDS, those in its allow-list
/// `rds.extensions`; elsewhere all of `pg_available_extensions` for a superuser,
/// only trusted ones for anyone else.
pub async fn available_extensions(client: &Client) -> Result<BTreeSet<String>> {
    Ok(strings(
        client,
        include_str!("sql/available_extensions.sql"),
        &[],
        "available extensions",
    )
    .await?
    .into_iter()
    .collect())
}

/// A table the copy reads, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFacts {
    /// The table.
    pub name: TableName,
    /// A partitioned parent (its partitions hold the rows).
    pub partitioned: bool,
    /// Pages (8 KiB blocks), from the catalog.
    pub pages: i64,
    /// Estimated rows (the catalog's `reltuples`; -1 when never analyzed).
    pub est_rows: i64,
    /// Size in bytes.
    pub bytes: i64,
    /// Columns the copy carries (generated ones left out), in physical order.
    pub columns: Vec<String>,
    /// Every column's binary COPY form is server-independent.
    pub binary_safe: bool,
}

/// The tables of `schemas` with their sizes and copyable columns.
pub async fn table_facts(client: &Client, schemas: &[String]) -> Result<Vec<TableFacts>> {
    let rows = client
        .query(include_str!("sql/copy_tables.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing tables to copy", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let cols = client
            .query(
                include_str!("sql/copy_columns.sql"),
                &[&name.schema, &name.name],
            )
            .await
            .map_err(|e| Error::postgres(format!("listing columns of {name}"), e))?;
        out.push(TableFacts {
            binary_safe: cols.iter().all(|c| c.get::<_, bool>(1)),
            columns: cols.iter().map(|c| c.get(0)).collect(),
            partitioned: r.get::<_, String>(2) == "p",
            pages: r.get(3),
            est_rows: r.get(4),
            bytes: r.get(5),
            name,
        });
    }
    Ok(out)
}

/// The sequences of `schemas` (identity and serial ones included).
pub async fn sequences(client: &Client, schemas: &[String]) -> Result<Vec<TableName>> {
    let rows = client
        .query(include_str!("sql/list_sequences.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing sequences", e))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// A digest of every definition in `schemas` (and of `auth.users`' columns
/// and triggers): it changes when the source's schema changes, and not when
/// only its data does. Sets the session's `search_path` to empty, so the
/// definitions are written the same way whatever the session had.
pub async fn schema_fingerprint(client: &Client, schemas: &[String]) -> Result<String> {
    client
        .batch_execute("set search_path = ''")
        .await
        .map_err(|e| Error::postgres("preparing the catalog session", e))?;
    Ok(client
        .query_one(include_str!("sql/schema_fingerprint.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("fingerprinting the source's schema", e))?
        .get(0))
}
