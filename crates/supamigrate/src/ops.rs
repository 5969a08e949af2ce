//! Whole operations, one per command: each obtains the migration's plan
//! (stored on the target, or saved in the state folder, or made now) and
//! runs one phase of it. The CLI maps its arguments to these options and
//! calls one function; nothing here prints.

use std::path::Path;

use crate::apply::Applied;
use crate::catalog::inventory;
use crate::config::Settings;
use crate::connect::{connect, probe, Probe};
use crate::copy::{CopyOptions, CopySummary};
use crate::error::{Error, Result};
use crate::guard::Hold;
use crate::plan::{MigrationPlan, Section};
use crate::preflight::Check;
use crate::provision::{ProvisionReport, ProvisionRequest};
use crate::storage::config::StoreConfig;
use crate::storage::rewrite::RewritePlan;
use crate::storage::transfer::{Mismatch, TransferOptions};
use crate::storage::{ObjectsPlan, StorageSummary};
use crate::verify::{VerifyOptions, VerifyReport};

pub use crate::migration::{
    Access, AlwaysYes, Approver, Context, Migration, Origin, PlanFrom, Planned, StateDir,
    SECRETS_FILE,
};

/// `supamigrate plan`: the plan the target is being migrated by, or a new
/// one, saved in the state folder for `run` to execute.
pub async fn plan(ctx: &Context) -> Result<Planned> {
    ctx.check_sides().await?;
    if let Some(plan) = ctx.target_plan().await? {
        ctx.check_stored(&plan, Origin::Target).await?;
        return Ok(Planned {
            plan,
            origin: Origin::Target,
        });
    }
    let plan = ctx.make_plan().await?;
    ctx.save_plan(&plan)?;
    Ok(Planned {
        plan,
        origin: Origin::Made,
    })
}

/// What `check` found on each side.
pub struct CheckReport {
    /// The source.
    pub source: Result<Probe>,
    /// The target.
    pub target: Result<Probe>,
}

/// `supamigrate check`: connects to both sides.
pub async fn check(settings: &Settings) -> Result<CheckReport> {
    let (source, target) = (settings.source()?, settings.target()?);
    Ok(CheckReport {
        source: probe(source).await,
        target: probe(target).await,
    })
}

/// `schema export`: the source's schema dump, as two SQL files in `dir`.
pub async fn schema_export(ctx: &Context, dir: &Path) -> Result<Vec<String>> {
    let opts = ctx.overrides.resolve();
    crate::fsutil::require_folder(dir)?;
    let src = inventory::gather_source(ctx.source()?, &opts.schemas).await?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    for (name, text) in [
        ("pre-data.sql", &src.schema.pre_data),
        ("post-data.sql", &src.schema.post_data),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    }
    Ok(src.schema.schemas)
}

/// A command that writes: the lock taken alone, the plan found, shown and
/// confirmed unless the target stores it already.
async fn write(ctx: &Context, command: &str, approver: &dyn Approver) -> Result<Migration> {
    let m = ctx
        .open(Access::Write(command, Hold::Exclusive), PlanFrom::Any)
        .await?;
    m.confirm(approver)?;
    Ok(m)
}

/// `provision`: the database, the state store with the plan, extensions,
/// roles and privileges.
pub async fn provision(
    ctx: &Context,
    req: &ProvisionRequest,
    approver: &dyn Approver,
) -> Result<ProvisionReport> {
    let m = write(ctx, "provision", approver).await?;
    crate::provision::provision(&m, req).await
}

/// `schema apply`: the sections asked for, in order.
pub async fn schema_apply(ctx: &Context, sections: &[Section]) -> Result<Vec<(Section, Applied)>> {
    let m = ctx
        .open(
            Access::Write("schema apply", Hold::Exclusive),
            PlanFrom::Any,
        )
        .await?;
    let mut out = Vec::new();
    for s in sections {
        out.push((*s, crate::apply::apply(&m, *s).await?));
        if *s == Section::PostData {
            // With the indexes there, the tables' statistics (a copy
            // without post-data left them for now).
            crate::copy::ready::rest(&m.target, &m.plan, 2).await?;
        }
    }
    Ok(out)
}

/// `copy`: the data, sequences, and (unless told not to) post-data.
pub async fn copy(ctx: &Context, opts: CopyOptions) -> Result<CopySummary> {
    let m = copy_open(ctx, "copy", &opts).await?;
    crate::copy::copy(&m, opts).await
}

/// What a copy checks before it writes, the lock taken first: the target
/// database exists, the plan, sessions for the workers.
async fn copy_open(ctx: &Context, command: &str, opts: &CopyOptions) -> Result<Migration> {
    let lock = ctx.lock(command).await?;
    if !probe(ctx.target()?).await?.database_exists {
        return Err(Error::invalid_input(format!(
            "the target database {} does not exist yet; nothing was copied",
            ctx.target()?.dbname
        ))
        .with_hint("run `supamigrate provision` and `supamigrate schema apply --section pre-data` first (or `supamigrate run`, which does every step)"));
    }
    let m = ctx.open_locked(Some(lock), PlanFrom::Any).await?;
    crate::guard::check_jobs(
        &[("source", &m.source), ("target", &m.target)],
        "--jobs",
        opts.jobs,
        copy_sessions(opts.jobs, opts.post_data),
    )
    .await?;
    Ok(m)
}

pub use crate::guard::copy_sessions;

pub use crate::guard::VERIFY_SESSIONS;

/// How `verify` runs.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Workers.
    pub jobs: usize,
    /// Differing rows listed per table.
    pub max_rows: usize,
    /// Rows per first-level chunk.
    pub chunk_rows: i64,
    /// The Storage step rewrote the plan's reference columns.
    pub storage_rewritten: bool,
    /// The application's own checks.
    pub checks: Vec<crate::verify::checks::Check>,
    /// Also prove the application works on the target (`--app`): signed-up
    /// users sampled, statements planned.
    pub app: Option<AppChecks>,
}

/// How much `verify --app` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppChecks {
    /// Signed-up users whose access is compared.
    pub users: usize,
    /// Statements whose plans are compared.
    pub statements: usize,
}

impl Default for AppChecks {
    fn default() -> Self {
        AppChecks {
            users: crate::verify::app::DEFAULT_USERS,
            statements: crate::verify::app::DEFAULT_STATEMENTS,
        }
    }
}

impl VerifyRequest {
    /// The verify options for `m`: the Storage rewrite taken into account
    /// when `rewritten` (told, or recorded on the target by the Storage step).
    fn options(&self, m: &Migration, rewritten: bool) -> VerifyOptions {
        let mut opts = VerifyOptions::for_plan(&m.plan, m.observer.clone());
        if rewritten {
            opts = opts.after_rewrite(&m.plan);
        }
        opts.jobs = self.jobs;
        opts.max_rows = self.max_rows;
        opts.chunk_rows = self.chunk_rows;
        opts.checks = self.checks.clone();
        opts.app = self.app.map(|a| crate::verify::app::AppOptions {
            plan: m.plan.clone(),
            users: a.users,
            statements: a.statements,
        });
        opts
    }
}

/// `verify`: the target against the source, as the plan migrated it. A
/// source whose schema changed since the plan is compared as planned, each
/// change named as a mismatch.
pub async fn verify(ctx: &Context, req: &VerifyRequest) -> Result<VerifyReport> {
    let m = ctx.open(Access::Read, PlanFrom::AsPlanned).await?;
    let drift = ctx.drift(&m.plan).await?;
    crate::guard::check_jobs(
        &[("source", &m.source), ("target", &m.target)],
        "--jobs",
        req.jobs,
        VERIFY_SESSIONS,
    )
    .await?;
    // The Storage step records its rewrite on the target: verify compares
    // the references as rewritten without being told.
    let rewritten = req.storage_rewritten
        || (m.plan.storage.rewrite.is_some()
            && crate::store::rewritten(&connect(&m.target).await?).await?);
    let mut report = crate::verify::verify(&m, &req.options(&m, rewritten)).await?;
    report.schema_drift = drift;
    if let Some(app) = report.app.as_mut() {
        app.settings_file = Some(crate::verify::app::write_settings(&m, app).await?);
    }
    Ok(report)
}

/// `verify --login EMAIL`: `password` checked against the user's stored hash
/// on both sides, in this process (it goes to no server and no log).
pub async fn verify_login(
    ctx: &Context,
    email: &str,
    password: &str,
) -> Result<crate::verify::app::logins::LoginCheck> {
    let m = ctx.open(Access::Read, PlanFrom::AsPlanned).await?;
    crate::verify::app::logins::check_login(&m, email, password).await
}

/// What `storage plan` shows.
pub struct StoragePreview {
    /// The plan (its Storage part says where buckets go).
    pub plan: MigrationPlan,
    /// Where objects are read from and written to.
    pub labels: (String, String),
    /// The objects to copy.
    pub objects: ObjectsPlan,
    /// The references' rewrite, when the target has the data already.
    pub rewrite: Option<RewritePlan>,
}

/// `storage plan`: what would be copied and rewritten; changes nothing.
pub async fn storage_plan(ctx: &Context, stores: &StoreConfig) -> Result<StoragePreview> {
    use crate::storage::store::ObjectStore;
    let m = ctx.open(Access::Read, PlanFrom::Any).await?;
    let s = stores.open().await?;
    let objects =
        crate::storage::prepare(&connect(&m.source).await?, &s.source, &m.plan.storage).await?;
    let rewrite = match (&m.plan.storage.rewrite, m.origin) {
        (Some(_), Origin::Target) => {
            let t = connect(&m.target).await?;
            Some(crate::storage::rewrite::plan_rewrite(&t, &objects, &m.plan.storage).await?)
        }
        _ => None,
    };
    Ok(StoragePreview {
        labels: (s.source.label(), s.dest.label()),
        plan: (*m.plan).clone(),
        objects,
        rewrite,
    })
}

/// `storage copy`: the objects, then the references on the target.
pub async fn storage_copy(
    ctx: &Context,
    stores: &StoreConfig,
    opts: TransferOptions,
) -> Result<StorageSummary> {
    let m = ctx
        .open(Access::Write("storage copy", Hold::Storage), PlanFrom::Any)
        .await?;
    if m.plan.storage.rewrite.is_some() && m.origin != Origin::Target {
        return Err(Error::invalid_input(format!(
            "the target database {} has not been provisioned, so the Storage references cannot be rewritten after the upload; nothing was uploaded",
            m.target.dbname
        ))
        .with_hint("run `supamigrate provision`, `schema apply --section pre-data` and `copy` first (or `supamigrate run`, which does every step)"));
    }
    let s = stores.open().await?;
    crate::storage::migrate(&m, &s, opts).await
}

/// `storage verify`: every object's bytes on both sides.
pub async fn storage_verify(
    ctx: &Context,
    stores: &StoreConfig,
    opts: TransferOptions,
) -> Result<(ObjectsPlan, Vec<Mismatch>)> {
    let m = ctx.open(Access::Read, PlanFrom::Any).await?;
    let s = stores.open().await?;
    let objects =
        crate::storage::prepare(&connect(&m.source).await?, &s.source, &m.plan.storage).await?;
    let bad = crate::storage::transfer::verify(&s.source, &s.dest, &objects, opts).await?;
    Ok((objects, bad))
}

/// `preflight`: every check, reading only. The plan is made (or loaded) as
/// part of it: a plan that cannot be made is a failed check.
/// The same checks as `run`'s preflight step ([`crate::preflight::checks`]).
pub async fn preflight(
    ctx: &Context,
    backup_dir: &Path,
    extra: &crate::preflight::Extra<'_>,
) -> Result<Vec<Check>> {
    ctx.check_sides().await?;
    let plan = ctx.plan().await.map(|p| p.plan);
    Ok(crate::preflight::checks(
        ctx.source()?,
        ctx.target()?,
        backup_dir,
        plan.as_ref(),
        extra,
    )
    .await)
}

/// A rollback, prepared and not yet run.
pub struct Rollback {
    /// The backup's manifest.
    pub manifest: crate::backup::Manifest,
    /// What the rollback will do.
    pub plan: crate::backup::restore::RollbackPlan,
    /// Per table, the rows written since the backup that it discards,
    /// puts back or reverts.
    pub since: Vec<crate::backup::since::RowsSince>,
}

/// `rollback`, first half: checks the backup's files and plans what the
/// rollback does. Refuses a damaged backup. Changes nothing.
pub async fn rollback_prepare(settings: &Settings, dir: &Path) -> Result<Rollback> {
    let (manifest, problems) = crate::backup::check(dir)?;
    if !problems.is_empty() {
        return Err(Error::invalid_input(format!(
            "refusing to roll back from {}: its files do not match the manifest ({}); nothing was changed",
            dir.display(),
            problems.join("; ")
        ))
        .with_hint("use an intact backup; `supamigrate backup verify DIR` checks one"));
    }
    let client = connect(settings.source()?).await?;
    let plan = crate::backup::restore::prepare_rollback(&client, dir, &manifest).await?;
    let since = crate::backup::since::rows_since(dir, &manifest, &client).await?;
    Ok(Rollback {
        manifest,
        plan,
        since,
    })
}

/// `rollback`, second half: runs it (one transaction), then the health
/// check: `SELECT 1` and every table against the manifest.
pub async fn rollback_execute(
    settings: &Settings,
    dir: &Path,
    r: &Rollback,
) -> Result<Vec<crate::backup::restore::TableCheck>> {
    let client = connect(settings.source()?).await?;
    crate::backup::restore::execute_rollback(&client, dir, &r.plan).await?;
    client
        .query_one("select 1", &[])
        .await
        .map_err(|e| Error::postgres("SELECT 1 on the source after the rollback", e))?;
    crate::backup::restore::check_tables(&client, &r.manifest.tables).await
}

/// `copy --follow`: the lock first (before the slot: another migration's
/// slot and record are never touched), a replication slot, the copy under
/// its snapshot (every table again when an earlier copy left rows under
/// another one), recorded as done; following is [`follow`]'s.
pub async fn copy_follow(ctx: &Context, opts: CopyOptions) -> Result<CopySummary> {
    let m = copy_open(ctx, "copy --follow", &opts).await?;
    copy_under_slot(&m, opts).await
}

/// The copy under a new replication slot's snapshot, recorded as done (the
/// one place this composite lives: `copy --follow` and `run --follow`).
pub async fn copy_under_slot(m: &Migration, mut opts: CopyOptions) -> Result<CopySummary> {
    let start = crate::follow::begin(m).await?;
    opts.snapshot = Some(start.snapshot.clone());
    opts.recopy_all |= start.recopy_all;
    let copied = crate::copy::copy(m, opts).await;
    start.release();
    let summary = copied?;
    crate::follow::copy_finished(m).await?;
    Ok(summary)
}

/// `follow`: the source's changes applied to the target until `opts.until`.
pub async fn follow(
    ctx: &Context,
    opts: &crate::follow::FollowOptions,
) -> Result<crate::follow::FollowSummary> {
    let m = ctx
        .open(Access::Write("follow", Hold::Follow), PlanFrom::Any)
        .await?;
    crate::follow::follow(&m, opts).await
}

/// What `cutover` did, Storage included.
pub struct Cutover {
    /// The database part.
    pub report: crate::follow::CutoverReport,
    /// The Storage step run again after the catch-up: objects added during
    /// the follow copied, references the follow wrote rewritten. `None` when
    /// the project has no Storage objects or no stores were given.
    pub storage: Option<StorageSummary>,
}

/// `cutover`: writes stopped on the source, the target caught up, sequences
/// set, what the follow changed compared; then the Storage step again (when `stores` are
/// given); when all agree, the slot and publication dropped.
pub async fn cutover(
    ctx: &Context,
    opts: &crate::follow::CutoverOptions,
    stores: Option<&StoreConfig>,
    transfer: TransferOptions,
) -> Result<Cutover> {
    let lock = ctx.lock_as("cutover", Hold::Cutover).await?;
    let m = ctx.open_locked(Some(lock), PlanFrom::Target).await?;
    crate::rls::unforced(&m.target, cutover_rows(&m, opts, stores, transfer)).await
}

/// [`cutover`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn cutover_rows(
    m: &Migration,
    opts: &crate::follow::CutoverOptions,
    stores: Option<&StoreConfig>,
    transfer: TransferOptions,
) -> Result<Cutover> {
    // The stores open (a region, keys) before a single write stops.
    let stores = match stores {
        Some(config) if m.plan.storage.present => Some(config.open().await?),
        _ => None,
    };
    let mut report = crate::follow::cutover(m, opts).await?;
    if report.finished_earlier {
        // What a kill after the record left on the source.
        crate::follow::finish(m).await?;
        return Ok(Cutover {
            report,
            storage: None,
        });
    }
    if report.verify.differs() {
        return Ok(Cutover {
            report,
            storage: None,
        });
    }
    let roles = report.read_only_roles.clone();
    cutover_app(m, &mut report)
        .await
        .map_err(|e| crate::follow::source_read_only(e, &roles))?;
    let storage = match stores {
        Some(s) => Some(
            cutover_storage(m, &s, transfer, &mut report)
                .await
                .map_err(|e| crate::follow::source_read_only(e, &roles))?,
        ),
        None => None,
    };
    crate::follow::finish(m)
        .await
        .map_err(|e| crate::follow::source_read_only(e, &roles))?;
    Ok(Cutover { report, storage })
}

/// The Storage step with its problems as one error (the one place this
/// composite lives: `run` and the cutover).
pub async fn storage_step(
    m: &Migration,
    stores: &crate::storage::config::Stores,
    transfer: TransferOptions,
    when: &str,
) -> Result<StorageSummary> {
    let s = crate::storage::migrate(m, stores, transfer).await?;
    let problems = s.problems();
    if let Some(first) = problems.first() {
        return Err(Error::new(
            crate::error::ErrorKind::ObjectStore,
            format!(
                "{} Storage problem(s){when}, first: {first}",
                problems.len()
            ),
        ));
    }
    Ok(s)
}

/// The application's checks in their fast form, while writes are stopped:
/// a part of the downtime.
async fn cutover_app(m: &Migration, report: &mut crate::follow::CutoverReport) -> Result<()> {
    let started = std::time::Instant::now();
    let (src, tgt) = tokio::try_join!(
        crate::connect::connect(&m.source),
        crate::connect::connect(&m.target)
    )?;
    report.app = Some(crate::verify::app::quick::check(&src, &tgt, &m.plan).await?);
    let took = started.elapsed().as_secs_f64();
    report.downtime_seconds += took;
    report.parts.push(("application".into(), took));
    Ok(())
}

/// The cutover's Storage step: objects added during the follow, references
/// the follow wrote; a problem stops the cutover (the slot kept).
async fn cutover_storage(
    m: &Migration,
    stores: &crate::storage::config::Stores,
    transfer: TransferOptions,
    report: &mut crate::follow::CutoverReport,
) -> Result<StorageSummary> {
    let started = std::time::Instant::now();
    let s = storage_step(m, stores, transfer, " at the cutover")
        .await
        .map_err(|e| {
            let message = format!("{}; the slot is kept", e.message());
            Error::new(e.kind(), message).with_hint("fix it")
        })?;
    let took = started.elapsed().as_secs_f64();
    report.downtime_seconds += took;
    report.parts.push(("storage".into(), took));
    Ok(s)
}

/// `cutover --abort`: the source gets its writes back; the follow ends.
pub async fn cutover_abort(ctx: &Context) -> Result<Vec<String>> {
    let _lock = ctx.lock_as("cutover --abort", Hold::Cutover).await?;
    ctx.check_sides().await?;
    crate::follow::abort(ctx.source()?, ctx.target()?).await
}

/// The source's major and size for sizing an RDS instance, when a source
/// is configured (`rds plan|create`); none configured is `None`.
pub async fn rds_source_facts(settings: &Settings) -> Result<Option<crate::rds::SourceFacts>> {
    let Ok(source) = settings.source() else {
        return Ok(None);
    };
    let client = crate::connect::connect(source).await?;
    let major = crate::pg::server_major(&client).await?;
    let bytes: i64 = client
        .query_one("select pg_database_size(current_database())", &[])
        .await
        .map_err(|e| Error::postgres("reading the source's size", e))?
        .get(0);
    Ok(Some(crate::rds::SourceFacts {
        major,
        database_bytes: bytes.max(0) as u64,
    }))
}
