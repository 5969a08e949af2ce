//! The migration plan: one artifact holding every decision, with its reason.
//!
//! [`build`] is a pure function of the [`Inventory`] of both sides and the
//! user's [`PlanOptions`]. The plan is shown before anything is written,
//! saved with the run's state (`plan.json`) and on the target
//! (`supamigrate.plan`), and every later step reads it instead of
//! introspecting the source again: the converted statements (classified once
//! from their parse trees), the table mappings and copy tasks, the
//! provisioning, the Storage plan. It records the source's schema
//! fingerprint, so a source whose schema changed since is refused, never
//! silently re-planned mid-migration.

pub mod auth_meta;
pub mod convert;
pub mod copy;
pub mod describe;
pub mod file;
pub mod objects;
pub mod options;
pub mod provision;
pub mod ready;
pub mod refs;
pub mod statements;
pub mod storage;
pub mod storage_meta;
pub mod users;
pub mod versions;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::inventory::Inventory;
use crate::error::Result;
use crate::pg::TableName;
pub use convert::{
    AccessEffect, Action, Conversion, Decision, GeneratedChoice, Impact, LeftBehind, PolicyMode,
    RestrictiveChoice,
};
pub use copy::{CopyTask, CtidRange, TableMapping};
pub use options::{PlanOptions, PlanOverrides};
pub use statements::{Phase, PlannedStatement, Section};

/// The plan format this version writes and reads.
pub const PLAN_FORMAT: u32 = 1;

/// Copy throughput measured by `bench/copy.sh` (about 50 MB/s on a 2-core
/// machine with both servers local): the basis of predicted copy times.
pub const MEASURED_MB_PER_S: f64 = 50.0;

/// One side, as the plan saw it (no password).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Connection string, redacted.
    pub url: String,
    /// `server_version`.
    pub server_version: String,
    /// Major version.
    pub major: u32,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// A digest of the plan's content: two plans with the same id decide the same.
    pub id: String,
    /// When it was made (UTC).
    pub created_at: String,
    /// The supamigrate version that made it.
    pub supamigrate_version: String,
    /// The source.
    pub source: Endpoint,
    /// The target server.
    pub target: Endpoint,
    /// The source's schema fingerprint when planned.
    pub source_fingerprint: String,
    /// The source's objects when planned, one digest each: what changed
    /// since is named ([`crate::catalog::drift`]). Empty in plans made
    /// before it was kept.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_objects: crate::catalog::drift::Objects,
    /// The target server's fingerprint when planned (major version, extensions offered).
    pub target_fingerprint: String,
    /// The source database's size.
    pub source_bytes: i64,
    /// The Supabase project ref, when known.
    pub project_ref: Option<String>,
    /// What the user chose.
    pub options: PlanOptions,
    /// The application schemas migrated.
    pub schemas: Vec<String>,
    /// The converted schema and every conversion decision.
    pub conversion: Conversion,
    /// What provisioning creates.
    pub provision: provision::ProvisionPlan,
    /// Every table copied, `auth.users` → `app_users` included.
    pub tables: Vec<TableMapping>,
    /// The copy's tasks.
    pub copy_tasks: Vec<CopyTask>,
    /// Sequences set to the source's state after the copy.
    pub sequences: Vec<TableName>,
    /// Storage.
    pub storage: storage::StoragePlan,
    /// What makes each table ready for traffic after its copy.
    #[serde(default)]
    pub ready: Vec<ready::ReadyTable>,
    /// What differs because the target runs a newer major than the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<versions::VersionNote>,
}

impl MigrationPlan {
    /// The mapping of source table `t`.
    pub fn mapping(&self, t: &TableName) -> Option<&TableMapping> {
        self.tables.iter().find(|m| &m.source == t)
    }

    /// What makes target table `target` ready for traffic after its copy.
    pub fn ready_for(&self, target: &TableName) -> ready::ReadyAction {
        self.ready
            .iter()
            .find(|r| &r.table == target)
            .map_or(ready::ReadyAction::Nothing, |r| r.action)
    }

    /// The `auth.users` → `app_users` mapping, if users move.
    pub fn users(&self) -> Option<&TableMapping> {
        self.tables.iter().find(|m| m.is_users())
    }

    /// The statements of `section`, in order.
    pub fn statements(&self, section: Section) -> Vec<&PlannedStatement> {
        self.conversion.section(section).collect()
    }

    /// Bytes the copy moves (the source tables' sizes).
    pub fn copy_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    /// Predicted copy seconds at [`MEASURED_MB_PER_S`] (more over a network).
    pub fn predicted_copy_seconds(&self) -> f64 {
        (self.copy_bytes() as f64 / 1e6 / MEASURED_MB_PER_S).max(1.0)
    }

    /// The digest [`MigrationPlan::id`] holds.
    pub fn digest(&self) -> String {
        let mut bare = self.clone();
        bare.id = String::new();
        bare.created_at = String::new();
        let bytes = serde_json::to_vec(&bare).unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..8])
    }
}

fn convert_options(inv: &Inventory, opts: &PlanOptions) -> convert::ConvertOptions {
    convert::ConvertOptions {
        policies: opts.policies,
        app_role: opts.app_role.clone(),
        target_major: inv.target.major,
        available_extensions: Some(inv.target.available_extensions.clone()),
        allow_drop_extensions: opts.allow_drop_extensions.clone(),
        stale_generated: opts.stale_generated,
        table_rows: inv
            .source
            .tables
            .iter()
            .map(|t| (t.name.to_string(), t.est_rows))
            .collect(),
        target_database: inv.target.database.clone(),
        restrictive: opts.restrictive,
        allow_wider_access: opts.allow_wider_access.clone(),
    }
}

/// The project's roles the target gets: all but the application role's
/// name, their memberships of the API roles only where the shim makes those,
/// of PostgreSQL's predefined roles never (the plan's line for the role
/// names them).
fn project_roles(
    src: &crate::catalog::dump::SchemaSource,
    app_role: &str,
    shim: bool,
) -> Vec<crate::catalog::data::ProjectRole> {
    src.project_roles
        .iter()
        .filter(|r| r.name != app_role)
        .map(|r| crate::catalog::data::ProjectRole {
            member_of: r
                .member_of
                .iter()
                .filter(|g| shim || !crate::supabase::API_ROLES.contains(&g.as_str()))
                // PostgreSQL's predefined roles: granted by whoever may (the plan says)
                .filter(|g| !g.starts_with("pg_"))
                .cloned()
                .collect(),
            settings: provision::database_settings(&r.settings),
            ..r.clone()
        })
        .collect()
}

/// Builds the plan from the inventory of both sides. Pure.
///
/// Fails, before anything is written anywhere, when the source needs an
/// extension the target lacks and the user did not let it go.
pub fn build(
    inv: &Inventory,
    opts: &PlanOptions,
    project_ref: Option<&str>,
    created_at: &str,
) -> Result<MigrationPlan> {
    provision::validate_role_name(&opts.app_role)?;
    versions::check_order(inv.source.schema.source_major, inv.target.major)?;
    let conversion = convert::convert(&inv.source.schema, &convert_options(inv, opts))?;
    let source_major = inv.source.schema.source_major;
    let tables = copy::mappings(&inv.source, &conversion, source_major == inv.target.major);
    let copy_tasks = copy::tasks(&tables, opts.split);
    let ready = ready::plan(&tables, &copy_tasks, !opts.no_analyze);
    let schemas = inv.source.schema.schemas.clone();
    let storage = storage::plan(
        inv.source.has_storage,
        &inv.source.schema.storage_buckets,
        inv.source.schema.storage_policies().len(),
        &opts.storage,
        project_ref,
        &inv.source.schema.reference_samples,
    );
    let provision = provision::ProvisionPlan {
        database: inv.target.database.clone(),
        create_database: !inv.target.database_exists,
        extensions: conversion.extensions.clone(),
        cron: conversion.cron.clone(),
        app_role: opts.app_role.clone(),
        schemas: schemas.clone(),
        shim_roles: conversion.shim,
        project_roles: project_roles(&inv.source.schema, &opts.app_role, conversion.shim),
        database_settings: provision::database_settings(&inv.source.schema.database_settings),
    };
    let mut plan = MigrationPlan {
        format: PLAN_FORMAT,
        id: String::new(),
        created_at: created_at.to_string(),
        supamigrate_version: env!("CARGO_PKG_VERSION").to_string(),
        source: Endpoint {
            url: inv.source.url.clone(),
            server_version: inv.source.server_version.clone(),
            major: source_major,
        },
        target: Endpoint {
            url: inv.target.url.clone(),
            server_version: inv.target.server_version.clone(),
            major: inv.target.major,
        },
        source_fingerprint: inv.source.fingerprint.clone(),
        source_objects: inv.source.objects.clone(),
        target_fingerprint: inv.target.fingerprint(),
        source_bytes: inv.source.database_bytes,
        project_ref: project_ref.map(str::to_string),
        options: opts.clone(),
        schemas,
        conversion,
        provision,
        tables,
        copy_tasks,
        sequences: inv.source.sequences.clone(),
        storage,
        ready,
        versions: Vec::new(),
    };
    plan.versions =
        versions::differences(source_major, inv.target.major, &plan.conversion.statements);
    plan.id = plan.digest();
    Ok(plan)
}
