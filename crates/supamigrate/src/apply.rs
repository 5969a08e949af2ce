//! Applying the plan's schema to the target (seed Phase 3).
//!
//! Each section runs in one transaction: all of it or none of it. A row in
//! `supamigrate.schema_sections`, written in the same transaction, records
//! what was applied (with the SQL's SHA-256), so a re-run skips a section
//! already applied and refuses to apply a different conversion over it.
//! A section that would take more locks than the target's lock table holds
//! (thousands of tables) runs in parts instead, each in its own transaction
//! with its progress (`supamigrate.schema_progress`): a re-run goes on after
//! the last part committed. Nothing here drops anything: no `DROP …
//! CASCADE` on a re-run.

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

/// Applies `section` of the migration's plan to its target (provisioned:
/// its store exists), the secrets found in definitions filled in.
pub async fn apply(m: &crate::migration::Migration, section: Section) -> Result<Applied> {
    apply_to(&m.target, &m.plan, section, &m.vault).await
}

async fn apply_to(
    target: &ConnInfo,
    plan: &MigrationPlan,
    section: Section,
    secrets: &Vault,
) -> Result<Applied> {
    let mut client = connect(target).await?;
    store::require(
        &client,
        &format!("schema apply --section {}", section.name()),
    )
    .await?;
    // A store made by an earlier release gets the tables this one writes.
    store::migrate(&mut client).await?;
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
    let per_part = statements_per_transaction(&client).await?;
    let mut from = match store::section_progress(&client, section).await? {
        Some((through, sha))
            if through <= statements.len()
                && digest(statements[..through].iter().copied()) == sha =>
        {
            through
        }
        Some(_) => return Err(different_section(section)),
        None => 0,
    };
    loop {
        let to = (from + per_part).min(statements.len());
        client
            .batch_execute("begin")
            .await
            .map_err(|e| Error::postgres("starting the schema transaction", e))?;
        match run(&client, (&statements, from..to), section, secrets).await {
            Ok(()) => client
                .batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", section.name()), e))?,
            Err(e) => {
                let _ = client.batch_execute("rollback").await;
                return Err(e);
            }
        }
        if to == statements.len() {
            break;
        }
        tracing::info!(
            section = section.name(),
            applied = to,
            of = statements.len(),
            "schema part applied"
        );
        crate::failpoint::hit(crate::failpoint::SCHEMA_PART);
        from = to;
    }
    tracing::info!(
        section = section.name(),
        statements = statements.len(),
        "schema applied"
    );
    Ok(Applied::Now(statements.len()))
}

/// How many statements one transaction may run on the target: a fraction
/// of its lock table (`max_locks_per_transaction` × (`max_connections` +
/// `max_prepared_transactions`)), since a statement locks the objects it
/// creates (a table, its TOAST table and index, its keys' indexes) until
/// commit, and other sessions need locks too.
async fn statements_per_transaction(client: &Client) -> Result<usize> {
    let slots: i64 = client
        .query_one(
            "select current_setting('max_locks_per_transaction')::int8 \
                    * (current_setting('max_connections')::int8 + current_setting('max_prepared_transactions')::int8)",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the target's lock table size", e))?
        .get(0);
    Ok(((slots / LOCKS_PER_STATEMENT) as usize).max(50))
}

/// Locks budgeted per schema statement (objects it creates and holds,
/// with room left for every other session).
const LOCKS_PER_STATEMENT: i64 = 8;

/// Runs `statements[range]` in the open transaction with their record: the
/// section's once its last statement ran, its progress before.
async fn run(
    client: &Client,
    (statements, range): (&[&PlannedStatement], std::ops::Range<usize>),
    section: Section,
    secrets: &Vault,
) -> Result<()> {
    let last = range.end == statements.len();
    for i in range.clone() {
        let st = statements[i];
        let sql = secrets.prepare(&st.sql)?;
        client.batch_execute(&sql.run).await.map_err(|e| {
            let undone = if range.start == 0 {
                "rolled back, nothing changed".to_string()
            } else {
                format!(
                    "this part rolled back; statements 1 to {} stay applied and a re-run goes on after them",
                    range.start
                )
            };
            sql.mask_error(Error::postgres(
                format!(
                    "{} statement {} of {} ({}); {undone}",
                    section.name(),
                    i + 1,
                    statements.len(),
                    excerpt(&st.sql)
                ),
                e,
            ))
        })?;
    }
    if !last {
        return store::record_progress(
            client,
            section,
            range.end,
            &digest(statements[..range.end].iter().copied()),
        )
        .await;
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
