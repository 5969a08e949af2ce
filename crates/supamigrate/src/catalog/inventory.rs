//! The inventory of both sides: what the plan is a pure function of.
//!
//! [`gather`] reads the source (catalog queries and the one schema dump) and
//! the target server (through its `postgres` database: the target database
//! may not exist yet). It changes nothing on either side.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::dump::{
    application_schemas, dump_schema, SchemaSelection, SchemaSource, StorageColumns,
};
use super::TableFacts;
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::pg::{server_major, TableName};
use crate::secrets::Vault;

/// What the plan needs to know about the source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceInventory {
    /// The connection, without its password.
    pub url: String,
    /// `server_version`.
    pub server_version: String,
    /// The database's size in bytes.
    pub database_bytes: i64,
    /// [`super::schema_fingerprint`] of the schemas.
    pub fingerprint: String,
    /// The objects the fingerprint digests, one by one ([`super::drift`]).
    #[serde(default)]
    pub objects: super::drift::Objects,
    /// The schema dump and what the catalog adds to it.
    pub schema: SchemaSource,
    /// Tables to copy.
    pub tables: Vec<TableFacts>,
    /// Sequences of the schemas.
    pub sequences: Vec<TableName>,
    /// `auth.users`' copyable columns (generated ones left out), when present.
    pub auth_users: Option<TableFacts>,
    /// Supabase Auth's other tables that can move ([`SchemaSource::auth_tables`]).
    #[serde(default)]
    pub auth_tables: Vec<TableFacts>,
    /// `storage.buckets` and `storage.objects`, when present.
    pub storage_tables: Option<(Option<TableFacts>, Option<TableFacts>)>,
    /// The secrets found in definitions (never serialized: the state folder
    /// keeps them apart, owner-only).
    #[serde(skip)]
    pub secrets: Vault,
    /// The source has Supabase Storage (`storage.objects`).
    pub has_storage: bool,
}

/// What the plan needs to know about the target server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetInventory {
    /// The connection, without its password.
    pub url: String,
    /// `server_version`.
    pub server_version: String,
    /// Major version.
    pub major: u32,
    /// The target database.
    pub database: String,
    /// Whether it exists already.
    pub database_exists: bool,
    /// Extensions it offers the login role.
    pub available_extensions: BTreeSet<String>,
}

impl TargetInventory {
    /// A digest of what the plan depends on about the target server: its
    /// major version and the extensions it offers.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.major.to_string());
        for e in &self.available_extensions {
            h.update(b"\n");
            h.update(e.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// Both sides.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// The Supabase project.
    pub source: SourceInventory,
    /// The target.
    pub target: TargetInventory,
}

/// Reads both sides. Runs `pg_dump --schema-only` once.
pub async fn gather(
    source: &ConnInfo,
    target: &ConnInfo,
    sel: &SchemaSelection,
) -> Result<Inventory> {
    let (source_inv, target_inv) =
        tokio::try_join!(gather_source(source, sel), gather_target(target))?;
    Ok(Inventory {
        source: source_inv,
        target: target_inv,
    })
}

/// Reads the source.
pub async fn gather_source(source: &ConnInfo, sel: &SchemaSelection) -> Result<SourceInventory> {
    let client = connect(source).await?;
    // Definitions read from the catalog (pg_get_triggerdef…) then name every
    // object with its schema, as the dump does.
    client
        .batch_execute("set search_path = ''")
        .await
        .map_err(|e| Error::postgres("preparing the catalog session", e))?;
    let schemas = application_schemas(&client, sel).await?;
    let source_major = server_major(&client).await?;
    let row = client
        .query_one(
            "select current_setting('server_version'), pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's version and size", e))?;
    let fingerprint = super::schema_fingerprint(&client, &schemas).await?;
    let objects = super::drift::read(&client, &schemas).await?;
    let (pre_data, post_data) = {
        let (source, schemas) = (source.clone(), schemas.clone());
        tokio::task::spawn_blocking(move || dump_schema(&source, &schemas, source_major))
            .await
            .map_err(|e| Error::internal(format!("the schema dump task failed: {e}")))??
    };
    let mut secrets = Vault::default();
    let schema = SchemaSource {
        source_major,
        pre_data: secrets.redact(&pre_data),
        post_data: secrets.redact(&post_data),
        ..schema_facts(&client, &schemas, &mut secrets).await?
    };
    Ok(SourceInventory {
        url: source.to_string(),
        server_version: row.get(0),
        database_bytes: row.get(1),
        fingerprint,
        objects,
        tables: super::table_facts(&client, &schemas).await?,
        sequences: super::sequences(&client, &schemas).await?,
        auth_users: internal_table(&client, "auth", "users").await?,
        auth_tables: {
            let mut facts = Vec::new();
            for t in &schema.auth_tables {
                facts.extend(internal_table(&client, "auth", &t.name).await?);
            }
            facts
        },
        storage_tables: match schema.storage_columns {
            Some(_) => Some((
                internal_table(&client, "storage", "buckets").await?,
                internal_table(&client, "storage", "objects").await?,
            )),
            None => None,
        },
        has_storage: super::has_storage(&client).await?,
        schema: SchemaSource {
            secrets_found: secrets.len(),
            ..schema
        },
        secrets,
    })
}

/// What the catalog adds to the dump, secrets in definitions redacted into `secrets`.
async fn schema_facts(
    client: &tokio_postgres::Client,
    schemas: &[String],
    secrets: &mut Vault,
) -> Result<SchemaSource> {
    let mut platform = super::platform::gather(client).await?;
    for j in &mut platform.cron_jobs {
        j.command = secrets.redact(&j.command);
    }
    for t in &mut platform.internal_triggers {
        t.definition = secrets.redact(&t.definition);
    }
    let (event_triggers, project_event_triggers) = super::event_triggers(client, schemas).await?;
    let storage_columns = match super::table_columns(client, "storage.objects").await? {
        Some(objects) => Some(StorageColumns {
            buckets: super::table_columns(client, "storage.buckets")
                .await?
                .unwrap_or_default(),
            objects,
        }),
        None => None,
    };
    Ok(SchemaSource {
        schemas: schemas.to_vec(),
        auth_users_columns: super::table_columns(client, "auth.users").await?,
        auth_tables: super::auth::tables(client).await?,
        auth_enums: super::auth::enums(client).await?,
        storage_columns,
        extensions: super::extensions(client, schemas).await?,
        publications: super::publications(client).await?,
        event_triggers,
        project_event_triggers,
        storage_buckets: super::storage_buckets(client).await?,
        generated_columns: super::data::generated_columns(client, schemas).await?,
        populated_matviews: super::data::populated_matviews(client, schemas).await?,
        project_roles: super::data::project_roles(client, secrets).await?,
        database_settings: super::data::database_settings(client, secrets).await?,
        default_privileges: super::data::default_privileges(client).await?,
        row_security: Some(super::data::row_security(client, schemas).await?),
        reference_samples: super::data::sample_reference_columns(client, schemas).await?,
        platform,
        ..SchemaSource::default()
    })
}

/// The copy facts of a Supabase table (`auth.users`), when it exists.
async fn internal_table(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> Result<Option<TableFacts>> {
    Ok(super::table_facts(client, &[schema.to_string()])
        .await?
        .into_iter()
        .find(|t| t.name == TableName::new(schema, table)))
}

/// Reads the target server through its `postgres` database.
pub async fn gather_target(target: &ConnInfo) -> Result<TargetInventory> {
    let client = connect(&target.with_dbname("postgres")).await?;
    let row = client
        .query_one(
            "select current_setting('server_version'), \
                    exists (select 1 from pg_database where datname = $1)",
            &[&target.dbname],
        )
        .await
        .map_err(|e| Error::postgres("reading the target server", e))?;
    Ok(TargetInventory {
        url: target.to_string(),
        server_version: row.get(0),
        major: server_major(&client).await?,
        database: target.dbname.clone(),
        database_exists: row.get(1),
        available_extensions: super::available_extensions(&client).await?,
    })
}
