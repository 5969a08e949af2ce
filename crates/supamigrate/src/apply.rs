//! Applying the plan's schema to the target (seed Phase 3).
//!
//! Each section runs in one transaction: all of it or none of it. A row in
//! `supamigrate.schema_sections`, written in the same transaction, records
//! what was applied (with the SQL's SHA-256), so a re-run skips a section
//! already applied and refuses to apply a different conversion over it.
//! Nothing here drops anything: no `DROP … CASCADE` on a re-run.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::plan::{MigrationPlan, PlannedStatement, Section};
use crate::secrets::Vault;
use crate::sql::excerpt;
use crate::store;

/// What applying a section did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// Applied now: this many statements.
    Now(usize),
    /// Applied by an earlier run; nothing done.
    Earlier,
}

/// The SHA-256 of a section's statements, as recorded.
pub fn digest<'a>(statements: impl IntoIterator<Item = &'a PlannedStatement>) -> String {
    let mut h = Sha256::new();
    for s in statements {
        h.update(s.sql.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Whether `section` of `plan` is applied: `Some(true)` yes, `Some(false)`
/// a different conversion is, `None` nothing is.
pub async fn state(
    client: &Client,
    plan: &MigrationPlan,
    section: Section,
) -> Result<Option<bool>> {
    let sha = digest(plan.statements(section));
    Ok(store::applied_section(client, section)
        .await?
        .map(|done| done == sha))
}

/// The error for a section applied by another conversion.
pub fn different_section(section: Section) -> Error {
    Error::invalid_input(format!(
        "the target already has a different {} applied (by an earlier conversion); nothing was changed",
        section.name()
    ))
    .with_hint("run with the options of the plan that applied it, or apply to a freshly provisioned database")
}

/// Applies `section` of `plan` to `target` (provisioned: its store exists).
/// `secrets` fills the placeholders of secrets found in definitions.
pub async fn apply(
    target: &ConnInfo,
    plan: &MigrationPlan,
    section: Section,
    secrets: &Vault,
) -> Result<Applied> {
    let client = connect(target).await?;
    store::require(
        &client,
        &format!("schema apply --section {}", section.name()),
    )
    .await?;
    match state(&client, plan, section).await? {
        Some(true) => {
            tracing::info!(section = section.name(), "already applied; nothing to do");
            return Ok(Applied::Earlier);
        }
        Some(false) => return Err(different_section(section)),
        None => {}
    }
    if section == Section::PostData && state(&client, plan, Section::PreData).await?.is_none() {
        return Err(Error::invalid_input(
            "post-data needs pre-data applied first; nothing was changed",
        )
        .with_hint("run `supamigrate schema apply --section pre-data` first (or --section all)"));
    }
    if plan.conversion.shim {
        require_shim_roles(&client).await?;
    }
    let statements = plan.statements(section);
    client
        .batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting the schema transaction", e))?;
    match run(&client, &statements, section, secrets).await {
        Ok(()) => {
            client
                .batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", section.name()), e))?;
            tracing::info!(
                section = section.name(),
                statements = statements.len(),
                "schema applied"
            );
            Ok(Applied::Now(statements.len()))
        }
        Err(e) => {
            let _ = client.batch_execute("rollback").await;
            Err(e)
        }
    }
}

async fn run(
    client: &Client,
    statements: &[&PlannedStatement],
    section: Section,
    secrets: &Vault,
) -> Result<()> {
    for (i, st) in statements.iter().enumerate() {
        let sql = secrets.prepare(&st.sql)?;
        client.batch_execute(&sql.run).await.map_err(|e| {
            sql.mask_error(Error::postgres(
                format!(
                    "{} statement {} of {} ({}); rolled back, nothing changed",
                    section.name(),
                    i + 1,
                    statements.len(),
                    excerpt(&st.sql)
                ),
                e,
            ))
        })?;
    }
    store::record_section(
        client,
        section,
        &digest(statements.iter().copied()),
        statements.len(),
    )
    .await
}

/// The RLS shim's policies name anon, authenticated and service_role:
/// provision creates them.
async fn require_shim_roles(client: &Client) -> Result<()> {
    let n: i64 = client
        .query_one(
            "select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("looking for the RLS shim's roles", e))?
        .get(0);
    if n < 3 {
        return Err(Error::invalid_input(
            "--policies shim needs the roles anon, authenticated and service_role on the target; nothing was changed",
        )
        .with_hint("run `supamigrate provision` (with the same --policies) first"));
    }
    Ok(())
}
