//! Schema: export the source's schema, convert it from Supabase to standard
//! PostgreSQL, and apply it to the target (seed Phases 1 and 3).
//!
//! - [`export`] runs pg_dump (pre-data and post-data apart) as the source's
//!   `postgres` role and reads from the catalog what a dump of the application
//!   schemas misses: triggers on `auth.users`, extensions and their dependents,
//!   publications, event triggers, Storage buckets and policies.
//! - [`convert()`] is pure: it edits parsed SQL (libpg_query) statement by statement
//!   and reports every object kept, rewritten, dropped or added, and why.
//! - [`apply`] runs the converted sections on the target, each in one
//!   transaction, recorded so that a re-run never applies twice or destroys data.

pub mod apply;
pub mod convert;
pub mod export;
pub mod sql;

pub use convert::{convert, Conversion, ConvertOptions, PolicyMode, ReportItem};
pub use export::SchemaSource;

/// Schemas Supabase manages itself (the Supabase CLI's `InternalSchemas`, plus
/// the few it adds since). Never migrated as application schemas.
pub const INTERNAL_SCHEMAS: &[&str] = &[
    "information_schema",
    "_analytics",
    "_realtime",
    "_supavisor",
    "auth",
    "etl",
    "extensions",
    "pgbouncer",
    "realtime",
    "storage",
    "supabase_functions",
    "supabase_migrations",
    "supabase_subscription_mgmt",
    "cron",
    "dbdev",
    "graphql",
    "graphql_public",
    "net",
    "pgmq",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "repack",
    "tiger",
    "tiger_data",
    "topology",
    "vault",
];

/// Whether `schema` is Supabase-internal or a system schema.
pub fn is_internal_schema(schema: &str) -> bool {
    INTERNAL_SCHEMAS.contains(&schema)
        || schema.starts_with("pg_")
        || schema.starts_with("timescaledb_")
        || schema.starts_with("_timescaledb_")
}

/// Roles that exist only on Supabase (the CLI's reserved roles and the
/// platform's): grants to them, ownership by them and policies for them must be
/// removed or mapped on a plain server.
pub fn is_supabase_role(role: &str) -> bool {
    const ROLES: &[&str] = &[
        "anon",
        "authenticated",
        "authenticator",
        "dashboard_user",
        "pgbouncer",
        "postgres",
        "service_role",
        "pgsodium_keyholder",
        "pgsodium_keyiduser",
        "pgsodium_keymaker",
        "pgtle_admin",
        "pg_database_owner",
    ];
    ROLES.contains(&role) || role.starts_with("supabase_") || role.starts_with("cli_login_")
}

/// The roles PostgREST switches to: their grants carry the application's access.
pub const API_ROLES: &[&str] = &["anon", "authenticated", "service_role"];

use std::collections::BTreeSet;

use crate::connect::{connect, ConnInfo};
use crate::error::Result;

/// What the converter needs to know about the target server.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    /// Major version.
    pub major: u32,
    /// Extensions it offers (`pg_available_extensions`, narrowed by `rds.extensions`).
    pub available_extensions: BTreeSet<String>,
}

/// Reads [`TargetFacts`] through the target server's `postgres` database (the
/// target database itself may not exist yet). Changes nothing.
pub async fn target_facts(target: &ConnInfo) -> Result<TargetFacts> {
    let client = connect(&target.with_dbname("postgres")).await?;
    Ok(TargetFacts {
        major: crate::catalog::server_major(&client).await?,
        available_extensions: crate::catalog::available_extensions(&client).await?,
    })
}

/// Exports the source and converts it for the target: the read-only first half
/// of provision and apply. Fails on unsupported extensions before any change.
pub async fn export_and_convert(
    source: &ConnInfo,
    target: Option<&ConnInfo>,
    export_opts: &export::ExportOptions,
    mut opts: ConvertOptions,
) -> Result<(SchemaSource, Conversion)> {
    let src = export::export(source, export_opts).await?;
    if let Some(t) = target {
        let facts = target_facts(t).await?;
        opts.target_major = facts.major;
        opts.available_extensions = Some(facts.available_extensions);
    } else if opts.target_major == 0 {
        opts.target_major = src.source_major;
    }
    let conv = convert(&src, &opts)?;
    Ok((src, conv))
}
