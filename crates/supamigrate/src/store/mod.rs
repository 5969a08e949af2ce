//! The state store: every `supamigrate.*` table on the target, owned here.
//!
//! Its schema is created and upgraded by the versioned migrations in
//! `migrations/` (applied in order, each in one transaction under an
//! advisory lock, recorded in `supamigrate.store_migrations`). A target
//! whose store is newer than this version knows is refused, so an old
//! release never misreads a new one's state.

use tokio_postgres::{Client, GenericClient};

use crate::error::{Error, Result};
use crate::plan::file::{from_json, to_json};
use crate::plan::{MigrationPlan, Section};

/// The store's migrations: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_base.sql")),
    (2, include_str!("migrations/0002_copy_sources.sql")),
    (3, include_str!("migrations/0003_ready.sql")),
    (4, include_str!("migrations/0004_follow.sql")),
    (5, include_str!("migrations/0005_follow_keys.sql")),
    (6, include_str!("migrations/0006_unforced_rls.sql")),
    (7, include_str!("migrations/0007_extension_config.sql")),
    (8, include_str!("migrations/0008_schema_progress.sql")),
    (9, include_str!("migrations/0009_follow_key_seq.sql")),
];

/// The store version this release writes.
pub const STORE_VERSION: i32 = 9;

/// The store's version on the target (0: no store yet).
pub async fn version(client: &impl GenericClient) -> Result<i32> {
    let exists: bool = client
        .query_one(
            "select to_regclass('supamigrate.store_migrations') is not null",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading supamigrate's state on the target", e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "select coalesce(max(version), 0) from supamigrate.store_migrations",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading supamigrate's state on the target", e))?
        .get(0))
}

/// Creates or upgrades the store on the target database `client` is on.
pub async fn migrate(client: &mut Client) -> Result<()> {
    let what = |e| Error::postgres("creating supamigrate's state tables on the target", e);
    let tx = client.transaction().await.map_err(what)?;
    tx.batch_execute("select pg_advisory_xact_lock(hashtext('supamigrate.store'))")
        .await
        .map_err(what)?;
    let current = version(&tx).await?;
    if current > STORE_VERSION {
        return Err(Error::invalid_input(format!(
            "the target's supamigrate state is version {current}, newer than this supamigrate knows ({STORE_VERSION}); nothing was changed"
        ))
        .with_hint("use the supamigrate version that started this migration"));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(what)?;
        tx.execute(
            "insert into supamigrate.store_migrations (version) values ($1)",
            &[v],
        )
        .await
        .map_err(what)?;
    }
    tx.commit().await.map_err(what)
}

/// Refuses a target without a store: what is asked needs provision first.
pub async fn require(client: &impl GenericClient, needed_by: &str) -> Result<()> {
    match version(client).await? {
        0 => Err(Error::invalid_input(format!(
            "{needed_by} needs a provisioned target: it has no supamigrate state yet; nothing was changed"
        ))
        .with_hint("run `supamigrate provision` and `supamigrate schema apply --section pre-data` first (or `supamigrate run`)")),
        v if v > STORE_VERSION => Err(Error::invalid_input(format!(
            "the target's supamigrate state is version {v}, newer than this supamigrate knows ({STORE_VERSION})"
        ))
        .with_hint("use the supamigrate version that started this migration")),
        _ => Ok(()),
    }
}

/// The plan stored on the target, if any.
pub async fn stored_plan(client: &impl GenericClient) -> Result<Option<MigrationPlan>> {
    if version(client).await? == 0 {
        return Ok(None);
    }
    let row = client
        .query_opt("select body from supamigrate.plan", &[])
        .await
        .map_err(|e| Error::postgres("reading the plan stored on the target", e))?;
    row.map(|r| from_json(&r.get::<_, String>(0), "the plan stored on the target"))
        .transpose()
}

/// Stores `plan` on the target; refuses a different plan over one stored.
pub async fn store_plan(client: &impl GenericClient, plan: &MigrationPlan) -> Result<()> {
    if let Some(stored) = stored_plan(client).await? {
        if stored.id != plan.id {
            return Err(different_plan(&stored, plan));
        }
        return Ok(());
    }
    client
        .execute(
            "insert into supamigrate.plan (id, format, body) values ($1, $2, $3)",
            &[&plan.id, &(plan.format as i32), &to_json(plan)?],
        )
        .await
        .map_err(|e| Error::postgres("storing the plan on the target", e))?;
    Ok(())
}

/// The error for a second, different plan over a target being migrated.
pub fn different_plan(stored: &MigrationPlan, new: &MigrationPlan) -> Error {
    Error::invalid_input(format!(
        "the target is being migrated by plan {} (made {}), not by plan {}; nothing was changed",
        stored.id, stored.created_at, new.id
    ))
    .with_hint("run the same command with the options of the stored plan (see `supamigrate plan`), or migrate into a fresh target database")
}

/// The SHA-256 recorded for an applied section, if any.
pub async fn applied_section(
    client: &impl GenericClient,
    section: Section,
) -> Result<Option<String>> {
    if version(client).await? == 0 {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "select sha256 from supamigrate.schema_sections where section = $1",
            &[&section.name()],
        )
        .await
        .map_err(|e| Error::postgres("reading the schema state", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// How far a section applied in parts got: statements applied, and the
/// SHA-256 of those statements.
pub async fn section_progress(
    client: &impl GenericClient,
    section: Section,
) -> Result<Option<(usize, String)>> {
    let row = client
        .query_opt(
            "select through, sha256 from supamigrate.schema_progress where section = $1",
            &[&section.name()],
        )
        .await
        .map_err(|e| Error::postgres("reading the schema state", e))?;
    Ok(row.map(|r| (r.get::<_, i32>(0).max(0) as usize, r.get(1))))
}

/// Records a part of `section` as applied (inside its transaction).
pub async fn record_progress(
    client: &impl GenericClient,
    section: Section,
    through: usize,
    sha256: &str,
) -> Result<()> {
    client
        .execute(
            "insert into supamigrate.schema_progress (section, through, sha256) values ($1, $2, $3) \
             on conflict (section) do update set through = excluded.through, sha256 = excluded.sha256, updated_at = now()",
            &[&section.name(), &(through as i32), &sha256],
        )
        .await
        .map_err(|e| Error::postgres(format!("recording {}'s progress", section.name()), e))?;
    Ok(())
}

/// Records that the Storage step rewrote the reference columns (inside its
/// transaction). A store older than this release's has no place for it:
/// nothing is recorded there.
pub async fn record_rewrite(client: &impl GenericClient, rows: u64) -> Result<()> {
    if version(client).await? < 8 {
        return Ok(());
    }
    client
        .execute(
            "insert into supamigrate.storage_rewrite (rows) values ($1) \
             on conflict (singleton) do update set rows = supamigrate.storage_rewrite.rows + excluded.rows, rewritten_at = now()",
            &[&(rows as i64)],
        )
        .await
        .map_err(|e| Error::postgres("recording the reference rewrite", e))?;
    Ok(())
}

/// Whether the Storage step has rewritten the reference columns.
pub async fn rewritten(client: &impl GenericClient) -> Result<bool> {
    if version(client).await? < 8 {
        return Ok(false);
    }
    Ok(client
        .query_opt("select 1 from supamigrate.storage_rewrite", &[])
        .await
        .map_err(|e| Error::postgres("reading whether the references were rewritten", e))?
        .is_some())
}

/// Records `section` as applied (inside the transaction that applied it).
pub async fn record_section(
    client: &impl GenericClient,
    section: Section,
    sha256: &str,
    statements: usize,
) -> Result<()> {
    client
        .execute(
            "insert into supamigrate.schema_sections (section, sha256, statements) values ($1, $2, $3)",
            &[&section.name(), &sha256, &(statements as i32)],
        )
        .await
        .map_err(|e| Error::postgres(format!("recording {}", section.name()), e))?;
    Ok(())
}
