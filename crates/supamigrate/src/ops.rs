//! Whole operations, one per command: each obtains the migration's plan
//! (stored on the target, or saved in the state folder, or made now) and
//! runs one phase of it. The CLI maps its arguments to these options and
//! calls one function; nothing here prints.

use std::path::{Path, PathBuf};

use crate::apply::Applied;
use crate::catalog::inventory;
use crate::config::Settings;
use crate::connect::{connect, probe, ConnInfo, Probe};
use crate::copy::{CopyOptions, CopySummary};
use crate::error::{Error, Result};
use crate::events::SharedObserver;
use crate::journal::Confirmation;
use crate::plan::file::PLAN_FILE;

/// The state folder's file of secrets found in definitions.
pub const SECRETS_FILE: &str = "secrets.json";
use crate::plan::{MigrationPlan, PlanOverrides, Section};
use crate::preflight::Check;
use crate::provision::{ProvisionReport, ProvisionRequest};
use crate::secrets::Vault;
use crate::storage::config::StoreConfig;
use crate::storage::rewrite::RewritePlan;
use crate::storage::transfer::{Mismatch, TransferOptions};
use crate::storage::{ObjectsPlan, StorageSummary};
use crate::verify::{VerifyOptions, VerifyReport};

/// Shows the plan and says whether to go ahead: the front end's part.
pub trait Approver: Send + Sync {
    /// Shows `summary` (the plan, as [`crate::plan::describe::describe`]
    /// writes it); returns how the user confirmed, or an error (not
    /// confirmed, no terminal to ask on) that stops before any write.
    fn approve(&self, summary: &str) -> Result<Confirmation>;
}

/// Goes ahead without asking (`--yes`, tests).
pub struct AlwaysYes;

impl Approver for AlwaysYes {
    fn approve(&self, _: &str) -> Result<Confirmation> {
        Ok(Confirmation::Flag)
    }
}

/// What every operation shares.
#[derive(Clone)]
pub struct Context {
    /// Where the source and target are.
    pub settings: Settings,
    /// The state folder (`run.json`, `plan.json`, generated secrets).
    pub state_dir: PathBuf,
    /// The plan choices the command was given.
    pub overrides: PlanOverrides,
    /// Where progress goes.
    pub observer: SharedObserver,
}

/// Where a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Stored on the target: the migration under way.
    Target,
    /// Saved in the state folder by `plan` or `run`.
    StateDir,
    /// Made now (one schema dump of the source).
    Made,
}

/// A plan and where it came from.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan.
    pub plan: MigrationPlan,
    /// Its origin.
    pub origin: Origin,
}

impl Context {
    /// The source connection.
    pub fn source(&self) -> Result<&ConnInfo> {
        self.settings.source()
    }

    /// The target connection.
    pub fn target(&self) -> Result<&ConnInfo> {
        self.settings.target()
    }

    fn plan_path(&self) -> PathBuf {
        self.state_dir.join(PLAN_FILE)
    }

    fn secrets_path(&self) -> PathBuf {
        self.state_dir.join(SECRETS_FILE)
    }

    /// The secrets found in the source's definitions when the plan was
    /// made (the plan holds placeholders), from the state folder.
    pub fn secrets(&self) -> Result<Vault> {
        Vault::load(&self.secrets_path())
    }

    /// The plan stored on the target, when its database exists.
    async fn target_plan(&self) -> Result<Option<MigrationPlan>> {
        let target = self.target()?;
        if !probe(target).await?.database_exists {
            return Ok(None);
        }
        crate::store::stored_plan(&connect(target).await?).await
    }

    /// The plan saved in the state folder, when it is this migration's and
    /// the target server still offers what it was planned for (a saved plan
    /// nothing has been written by is planned again when the target changed).
    async fn saved_plan(&self) -> Result<Option<MigrationPlan>> {
        let (source, target) = (self.source()?.to_string(), self.target()?.to_string());
        let Some(plan) = crate::plan::file::load(&self.plan_path())?
            .filter(|p| p.source.url == source && p.target.url == target)
        else {
            return Ok(None);
        };
        let now = inventory::gather_target(self.target()?)
            .await?
            .fingerprint();
        if now != plan.target_fingerprint {
            tracing::info!(plan = %plan.id, "the target server changed since the saved plan was made; planning again");
            return Ok(None);
        }
        Ok(Some(plan))
    }

    /// Makes a new plan: one schema dump of the source. The secrets found
    /// in its definitions go to the state folder, owner-only.
    pub async fn make_plan(&self) -> Result<MigrationPlan> {
        let opts = self.overrides.resolve();
        let inv = inventory::gather(self.source()?, self.target()?, &opts.schemas).await?;
        if !inv.source.secrets.is_empty() {
            std::fs::create_dir_all(&self.state_dir)
                .map_err(|e| Error::io(format!("creating {}", self.state_dir.display()), e))?;
            inv.source.secrets.save(&self.secrets_path())?;
        }
        crate::plan::build(
            &inv,
            &opts,
            self.settings.project_ref.as_deref(),
            &crate::clock::utc_now(),
        )
    }

    /// Checks a plan made earlier against this command's flags and the
    /// source's schema today.
    async fn check_stored(&self, plan: &MigrationPlan, origin: Origin) -> Result<()> {
        self.check_choices(plan, origin)?;
        let drift = self.drift(plan).await?;
        if !drift.is_empty() {
            return Err(Error::invalid_input(format!(
                "the source's schema changed since plan {} was made ({}): {}; nothing was changed",
                plan.id,
                plan.created_at,
                crate::catalog::drift::describe(&drift)
            ))
            .with_hint(match origin {
                Origin::Target => "the target is being migrated by that plan: undo the schema change on the source, or start over on a fresh target database",
                _ => "make a new plan with `supamigrate plan`, review it, then run again",
            }));
        }
        Ok(())
    }

    /// The plan must have been made with this command's choices.
    fn check_choices(&self, plan: &MigrationPlan, origin: Origin) -> Result<()> {
        let diffs = self.overrides.differences(&plan.options);
        if diffs.is_empty() {
            return Ok(());
        }
        let hint = match origin {
            Origin::Target => "leave those flags out to go on with the plan the target is being migrated by, or migrate into a fresh target database",
            _ => "leave those flags out to use the saved plan, or make a new one with `supamigrate plan` and those flags",
        };
        Err(Error::invalid_input(format!(
            "plan {} was made with other choices than this command's: {}; nothing was changed",
            plan.id,
            diffs.join(", ")
        ))
        .with_hint(hint))
    }

    /// What changed in the source's schema since `plan` was made, each
    /// object named ([`crate::catalog::drift`]).
    pub async fn drift(&self, plan: &MigrationPlan) -> Result<Vec<crate::catalog::drift::Drift>> {
        let client = connect(self.source()?).await?;
        crate::catalog::drift::since(
            &client,
            &plan.schemas,
            &plan.source_fingerprint,
            &plan.source_objects,
        )
        .await
    }

    /// Takes the migration lock for `command`, alone (see [`crate::guard::lock`]).
    pub async fn lock(&self, command: &str) -> Result<crate::guard::Lock> {
        crate::guard::lock(&self.state_dir, self.target()?, command).await
    }

    /// Takes the migration lock for `command` as `hold` says.
    pub async fn lock_as(
        &self,
        command: &str,
        hold: crate::guard::Hold,
    ) -> Result<crate::guard::Lock> {
        crate::guard::lock_as(&self.state_dir, self.target()?, command, hold).await
    }

    /// Refuses a target that is the source or a Supabase project, and a
    /// source that is not one.
    pub async fn check_sides(&self) -> Result<()> {
        crate::guard::check_sides(self.source()?, self.target()?, self.settings.plain_source).await
    }

    /// The migration's plan: the one stored on the target, else the one
    /// saved in the state folder, else a new one. A stored plan must agree
    /// with the command's flags and with the source's schema. The sides are
    /// checked first ([`Context::check_sides`]).
    pub async fn plan(&self) -> Result<Planned> {
        self.check_sides().await?;
        for (origin, found) in [
            (Origin::Target, self.target_plan().await?),
            (Origin::StateDir, self.saved_plan().await?),
        ] {
            if let Some(plan) = found {
                self.check_stored(&plan, origin).await?;
                return Ok(Planned { plan, origin });
            }
        }
        Ok(Planned {
            plan: self.make_plan().await?,
            origin: Origin::Made,
        })
    }

    /// Saves `plan` in the state folder.
    pub fn save_plan(&self, plan: &MigrationPlan) -> Result<()> {
        crate::plan::file::save(&self.plan_path(), plan)
    }
}

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

/// The plan must be confirmed before the first write to the target; a plan
/// stored there already was.
async fn confirmed(ctx: &Context, approver: &dyn Approver) -> Result<MigrationPlan> {
    let planned = ctx.plan().await?;
    if planned.origin != Origin::Target {
        approver.approve(&crate::plan::describe::describe(&planned.plan))?;
    }
    Ok(planned.plan)
}

/// `provision`: the database, the state store with the plan, extensions,
/// roles and privileges.
pub async fn provision(
    ctx: &Context,
    req: &ProvisionRequest,
    approver: &dyn Approver,
) -> Result<ProvisionReport> {
    let _lock = ctx.lock("provision").await?;
    let plan = confirmed(ctx, approver).await?;
    // The plan may have been made just now: its secrets are in the state folder.
    let req = ProvisionRequest {
        secrets: ctx.secrets()?,
        ..req.clone()
    };
    crate::provision::provision(ctx.target()?, &plan, &req).await
}

/// `schema apply`: the sections asked for, in order.
pub async fn schema_apply(ctx: &Context, sections: &[Section]) -> Result<Vec<(Section, Applied)>> {
    let _lock = ctx.lock("schema apply").await?;
    let plan = ctx.plan().await?.plan;
    let mut out = Vec::new();
    for s in sections {
        out.push((
            *s,
            crate::apply::apply(ctx.target()?, &plan, *s, &ctx.secrets()?).await?,
        ));
        if *s == Section::PostData {
            // With the indexes there, the tables' statistics (a copy
            // without post-data left them for now).
            crate::copy::ready::rest(ctx.target()?, &plan, 2).await?;
        }
    }
    Ok(out)
}

/// `copy`: the data, sequences, and (unless told not to) post-data.
pub async fn copy(ctx: &Context, opts: CopyOptions) -> Result<CopySummary> {
    let _lock = ctx.lock("copy").await?;
    let plan = copy_checks(ctx, &opts).await?;
    copy_locked(ctx, &plan, opts).await
}

/// What a copy checks before it writes (the caller holds the lock): the
/// target database exists, the plan, sessions for the workers.
async fn copy_checks(ctx: &Context, opts: &CopyOptions) -> Result<MigrationPlan> {
    if !probe(ctx.target()?).await?.database_exists {
        return Err(Error::invalid_input(format!(
            "the target database {} does not exist yet; nothing was copied",
            ctx.target()?.dbname
        ))
        .with_hint("run `supamigrate provision` and `supamigrate schema apply --section pre-data` first (or `supamigrate run`, which does every step)"));
    }
    let plan = ctx.plan().await?.plan;
    crate::guard::check_jobs(
        &[("source", ctx.source()?), ("target", ctx.target()?)],
        "--jobs",
        opts.jobs,
        copy_sessions(opts.jobs, opts.post_data),
    )
    .await?;
    Ok(plan)
}

/// The copy itself, the lock held and the checks passed.
async fn copy_locked(
    ctx: &Context,
    plan: &MigrationPlan,
    opts: CopyOptions,
) -> Result<CopySummary> {
    crate::copy::copy(
        ctx.source()?,
        ctx.target()?,
        plan,
        opts,
        &ctx.secrets()?,
        &ctx.observer,
    )
    .await
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
}

/// `verify`: the target against the source, as the plan migrated it. A
/// source whose schema changed since the plan is compared as planned, each
/// change named as a mismatch.
pub async fn verify(ctx: &Context, req: &VerifyRequest) -> Result<VerifyReport> {
    ctx.check_sides().await?;
    let plan = match ctx.target_plan().await? {
        Some(plan) => {
            ctx.check_choices(&plan, Origin::Target)?;
            plan
        }
        None => ctx.plan().await?.plan,
    };
    let drift = ctx.drift(&plan).await?;
    crate::guard::check_jobs(
        &[("source", ctx.source()?), ("target", ctx.target()?)],
        "--jobs",
        req.jobs,
        VERIFY_SESSIONS,
    )
    .await?;
    let mut opts = VerifyOptions::for_plan(&plan, ctx.observer.clone());
    // The Storage step records its rewrite on the target: verify compares
    // the references as rewritten without being told.
    let rewritten = req.storage_rewritten
        || (plan.storage.rewrite.is_some()
            && crate::store::rewritten(&connect(ctx.target()?).await?).await?);
    if rewritten {
        opts = opts.after_rewrite(&plan);
    }
    opts.jobs = req.jobs;
    opts.max_rows = req.max_rows;
    opts.chunk_rows = req.chunk_rows;
    opts.checks = req.checks.clone();
    let mut report = crate::verify::verify(ctx.source()?, ctx.target()?, &opts).await?;
    report.schema_drift = drift;
    Ok(report)
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
    let plan = ctx.plan().await?.plan;
    let s = stores.open().await?;
    let objects =
        crate::storage::prepare(&connect(ctx.source()?).await?, &s.source, &plan.storage).await?;
    let rewrite = match (&plan.storage.rewrite, ctx.target_plan().await?) {
        (Some(_), Some(_)) => {
            let t = connect(ctx.target()?).await?;
            Some(crate::storage::rewrite::plan_rewrite(&t, &objects, &plan.storage).await?)
        }
        _ => None,
    };
    Ok(StoragePreview {
        labels: (s.source.label(), s.dest.label()),
        plan,
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
    let _lock = ctx
        .lock_as("storage copy", crate::guard::Hold::Storage)
        .await?;
    let plan = ctx.plan().await?.plan;
    if plan.storage.rewrite.is_some() && ctx.target_plan().await?.is_none() {
        return Err(Error::invalid_input(format!(
            "the target database {} has not been provisioned, so the Storage references cannot be rewritten after the upload; nothing was uploaded",
            ctx.target()?.dbname
        ))
        .with_hint("run `supamigrate provision`, `schema apply --section pre-data` and `copy` first (or `supamigrate run`, which does every step)"));
    }
    let s = stores.open().await?;
    crate::storage::migrate(
        ctx.source()?,
        ctx.target()?,
        &s,
        &plan.storage,
        opts,
        &ctx.observer,
    )
    .await
}

/// `storage verify`: every object's bytes on both sides.
pub async fn storage_verify(
    ctx: &Context,
    stores: &StoreConfig,
    opts: TransferOptions,
) -> Result<(ObjectsPlan, Vec<Mismatch>)> {
    let plan = ctx.plan().await?.plan;
    let s = stores.open().await?;
    let objects =
        crate::storage::prepare(&connect(ctx.source()?).await?, &s.source, &plan.storage).await?;
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
    Ok(crate::preflight::checks(ctx.source()?, ctx.target()?, backup_dir, &plan, extra).await)
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
pub async fn copy_follow(ctx: &Context, mut opts: CopyOptions) -> Result<CopySummary> {
    let _lock = ctx.lock("copy --follow").await?;
    let plan = copy_checks(ctx, &opts).await?;
    let start = crate::follow::begin(ctx.source()?, ctx.target()?, &plan).await?;
    opts.snapshot = Some(start.snapshot.clone());
    opts.recopy_all |= start.recopy_all;
    let copied = copy_locked(ctx, &plan, opts).await;
    start.release();
    let summary = copied?;
    crate::follow::copy_finished(ctx.target()?).await?;
    Ok(summary)
}

/// `follow`: the source's changes applied to the target until `opts.until`.
pub async fn follow(
    ctx: &Context,
    opts: &crate::follow::FollowOptions,
) -> Result<crate::follow::FollowSummary> {
    let _lock = ctx.lock_as("follow", crate::guard::Hold::Follow).await?;
    let plan = ctx.plan().await?.plan;
    crate::follow::follow(ctx.source()?, ctx.target()?, &plan, opts).await
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
    let _lock = ctx.lock_as("cutover", crate::guard::Hold::Cutover).await?;
    crate::rls::unforced(ctx.target()?, cutover_rows(ctx, opts, stores, transfer)).await
}

/// [`cutover`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn cutover_rows(
    ctx: &Context,
    opts: &crate::follow::CutoverOptions,
    stores: Option<&StoreConfig>,
    transfer: TransferOptions,
) -> Result<Cutover> {
    let target = ctx.target()?;
    let plan = crate::store::stored_plan(&connect(target).await?)
        .await?
        .ok_or_else(|| {
            Error::invalid_input("the target holds no migration to cut over; nothing was changed")
                .with_hint("start one with `supamigrate copy --follow`")
        })?;
    // The stores open (a region, keys) before a single write stops.
    let stores = match stores {
        Some(config) if plan.storage.present => Some(config.open().await?),
        _ => None,
    };
    let mut report = crate::follow::cutover(ctx.source()?, target, &plan, opts).await?;
    if report.finished_earlier {
        // What a kill after the record left on the source.
        crate::follow::finish(ctx.source()?, target).await?;
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
    let storage = match stores {
        Some(s) => Some(
            cutover_storage(ctx, &plan, &s, transfer, &mut report)
                .await
                .map_err(|e| crate::follow::source_read_only(e, &roles))?,
        ),
        None => None,
    };
    crate::follow::finish(ctx.source()?, target)
        .await
        .map_err(|e| crate::follow::source_read_only(e, &roles))?;
    Ok(Cutover { report, storage })
}

/// The cutover's Storage step: objects added during the follow, references
/// the follow wrote; a problem stops the cutover (the slot kept).
async fn cutover_storage(
    ctx: &Context,
    plan: &MigrationPlan,
    stores: &crate::storage::config::Stores,
    transfer: TransferOptions,
    report: &mut crate::follow::CutoverReport,
) -> Result<StorageSummary> {
    let started = std::time::Instant::now();
    let s = crate::storage::migrate(
        ctx.source()?,
        ctx.target()?,
        stores,
        &plan.storage,
        transfer,
        &ctx.observer,
    )
    .await?;
    report.downtime_seconds += started.elapsed().as_secs_f64();
    let problems = s.problems();
    if let Some(first) = problems.first() {
        return Err(Error::new(
            crate::error::ErrorKind::ObjectStore,
            format!(
                "{} Storage problem(s) at the cutover, first: {first}; the slot is kept",
                problems.len()
            ),
        )
        .with_hint("fix it"));
    }
    Ok(s)
}

/// `cutover --abort`: the source gets its writes back; the follow ends.
pub async fn cutover_abort(ctx: &Context) -> Result<Vec<String>> {
    let _lock = ctx
        .lock_as("cutover --abort", crate::guard::Hold::Cutover)
        .await?;
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
