//! The one-command migration, as a step machine over the journal:
//! preflight (and the plan) → plan confirmed → backup → provision → schema
//! pre-data → users and data → storage → post-data → sequences → verify →
//! report. A re-run after a failure or a kill resumes at the first step that
//! did not finish.
//!
//! Each step is idempotent on its own (provision, apply and post-data record
//! what they did on the target, the copy keeps per-task checkpoints, storage
//! skips objects already there, verify only reads); the journal adds the
//! order and each step's typed outcome. It is written atomically after every
//! step. Nothing is written to the target before the plan step, where the
//! user sees the plan and confirms it.

use std::path::PathBuf;
use std::time::Instant;

use tracing::Instrument;

use crate::connect::{connect, Password};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::journal::{
    self, BackupOutcome, PlanConfirmed, RunState, StepOutcome, StepRecord, Stopped, StorageOutcome,
};
use crate::ops::{Approver, Context};
use crate::plan::{MigrationPlan, Section};
use crate::steps::Step;
use crate::storage::config::StoreConfig;
use crate::storage::transfer::TransferOptions;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Backups go here.
    pub backup_dir: PathBuf,
    /// The HTML and JSON report go here.
    pub report_dir: PathBuf,
    /// Workers for the data copy and post-data.
    pub copy_jobs: usize,
    /// Workers for verify.
    pub verify_jobs: usize,
    /// Where Storage objects come from and go to; `None` is fine only for a
    /// project without Storage objects.
    pub stores: Option<StoreConfig>,
    /// Why the stores are not configured (for the error when they are needed).
    pub stores_missing: Option<String>,
    /// How objects move.
    pub transfer: TransferOptions,
    /// The application role's password (`APP_DB_PASSWORD`).
    pub app_password: Option<Password>,
    /// The application's own checks for verify.
    pub checks: Vec<crate::verify::checks::Check>,
    /// Tables the copy step copies again whole (`--recopy`).
    pub recopy: Vec<String>,
    /// Copy under a replication slot's snapshot, then follow the source
    /// until `supamigrate cutover` before verifying (`--follow`).
    pub follow: bool,
}

impl RunOptions {
    /// What preflight checks besides the facts, as `supamigrate preflight`
    /// is given it.
    fn preflight_extra(&self) -> crate::preflight::Extra<'_> {
        crate::preflight::Extra {
            copy_jobs: self.copy_jobs,
            verify_jobs: self.verify_jobs,
            stores: self.stores.as_ref(),
            stores_missing: self.stores_missing.as_deref(),
            allow_missing_objects: self.transfer.allow_missing_objects,
        }
    }
}

/// What `run` reports back.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The final journal.
    pub state: RunState,
    /// Steps this invocation did.
    pub done_now: Vec<Step>,
    /// The HTML report.
    pub report_html: PathBuf,
    /// Verify matched everything.
    pub all_green: bool,
    /// What of the application the plan left behind: green means complete
    /// only when this is empty.
    pub left_behind: crate::plan::LeftBehind,
}

struct Runner<'a> {
    ctx: &'a Context,
    opts: &'a RunOptions,
    approver: &'a dyn Approver,
    state: RunState,
    plan: Option<MigrationPlan>,
    /// Held alone, but beside a cutover while `--follow` follows.
    lock: crate::guard::Lock,
}

/// How long `run --follow` waits, once the follow reached the cutover, for
/// the `cutover` beside it to end before it goes on alone.
const CUTOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs (or resumes) the migration.
pub async fn run(ctx: &Context, opts: &RunOptions, approver: &dyn Approver) -> Result<RunOutcome> {
    let lock = ctx.lock("run").await?;
    ctx.check_sides().await?;
    // A restore test killed by an earlier run left its scratch database.
    if let Ok(admin) = connect(&ctx.target()?.with_dbname("postgres")).await {
        crate::backup::restore::drop_leftover_scratch(&admin).await;
    }
    let state = journal::load(&ctx.state_dir, ctx.source()?, ctx.target()?)?;
    let mut r = Runner {
        ctx,
        opts,
        approver,
        state,
        plan: None,
        lock,
    };
    let mut done_now = Vec::new();
    if Step::ALL.iter().all(|s| r.state.get(*s).is_some()) {
        // A finished run run again: the source may have moved on since.
        // Verify again before saying green.
        r.reverify().await?;
        done_now.push(Step::Verify);
    }
    for step in Step::ALL {
        if r.state.get(step).is_some() {
            ctx.observer.event(Event::Step {
                name: step.name(),
                earlier: true,
            });
            continue;
        }
        ctx.observer.event(Event::Step {
            name: step.name(),
            earlier: false,
        });
        let started = Instant::now();
        let span = tracing::info_span!("step", step = step.name());
        match r.step(step).instrument(span).await {
            Ok(outcome) => {
                r.state.done.push(StepRecord {
                    step,
                    seconds: started.elapsed().as_secs_f64(),
                    finished_at: crate::clock::epoch_seconds(),
                    outcome,
                });
                r.state.failed = None;
                journal::save(&ctx.state_dir, &r.state)?;
                done_now.push(step);
                crate::failpoint::hit(crate::failpoint::RUN_STEP_DONE);
            }
            Err(e) => return Err(r.stop(step, e)),
        }
    }
    let left_behind = r.plan().await?.conversion.left_behind();
    Ok(RunOutcome {
        left_behind,
        all_green: r.state.all_green(),
        report_html: opts.report_dir.join("report.html"),
        state: r.state,
        done_now,
    })
}

impl Runner<'_> {
    /// Records where the run stopped and writes the report of the stopped run.
    fn stop(&mut self, step: Step, e: Error) -> Error {
        self.state.failed = Some(Stopped {
            step,
            message: e.to_string(),
        });
        if let Err(se) = journal::save(&self.ctx.state_dir, &self.state) {
            tracing::warn!(error = %se, "could not save the run state");
        }
        if let Err(re) =
            crate::report::write(&self.opts.report_dir, &self.state, self.plan.as_ref())
        {
            tracing::warn!(error = %re, "could not write the report of the stopped run");
        }
        e
    }

    /// The plan, loaded once per run.
    async fn plan(&mut self) -> Result<&MigrationPlan> {
        if self.plan.is_none() {
            let planned = self.ctx.plan().await?;
            if let Some(id) = &self.state.plan_id {
                if *id != planned.plan.id {
                    return Err(Error::invalid_input(format!(
                        "this run executes plan {id}, but the plan found now is {}; nothing was changed",
                        planned.plan.id
                    ))
                    .with_hint("run with the options the run started with, or use another --state-dir"));
                }
            }
            self.plan = Some(planned.plan);
        }
        self.plan
            .as_ref()
            .ok_or_else(|| Error::internal("the plan was not loaded"))
    }

    async fn step(&mut self, step: Step) -> Result<StepOutcome> {
        match step {
            Step::Preflight => self.preflight().await,
            Step::Plan => self.confirm().await,
            Step::Backup => self.backup().await,
            Step::Provision => self.provision().await,
            Step::SchemaPreData => {
                let plan = self.plan().await?.clone();
                crate::apply::apply(
                    self.ctx.target()?,
                    &plan,
                    Section::PreData,
                    &self.ctx.secrets()?,
                )
                .await
                .map(StepOutcome::SchemaPreData)
            }
            Step::UsersAndData => self.copy().await,
            Step::Storage => self.storage().await,
            Step::PostData => {
                let plan = self.plan().await?.clone();
                let secrets = self.ctx.secrets()?;
                crate::copy::post_data::build(
                    self.ctx.target()?,
                    &plan,
                    self.opts.copy_jobs,
                    &secrets,
                )
                .await
                .map(StepOutcome::PostData)
            }
            Step::Sequences => {
                let plan = self.plan().await?.clone();
                crate::copy::sync_sequences(self.ctx.source()?, self.ctx.target()?, &plan)
                    .await
                    .map(StepOutcome::Sequences)
            }
            Step::Verify => self.verify().await,
            Step::Report => {
                let plan = self.plan().await?.clone();
                crate::report::write(&self.opts.report_dir, &self.state, Some(&plan))
                    .map(StepOutcome::Report)
            }
        }
    }

    async fn preflight(&mut self) -> Result<StepOutcome> {
        let planned = self.ctx.plan().await;
        let plan = planned
            .as_ref()
            .map(|p| p.plan.clone())
            .map_err(clone_error);
        let checks = crate::preflight::checks(
            self.ctx.source()?,
            self.ctx.target()?,
            &self.opts.backup_dir,
            &plan,
            &self.opts.preflight_extra(),
        )
        .await;
        if let Some(e) = crate::preflight::failure(&checks) {
            return Err(e);
        }
        let plan = planned?.plan;
        self.ctx.save_plan(&plan)?;
        self.state.plan_id = Some(plan.id.clone());
        self.plan = Some(plan);
        Ok(StepOutcome::Preflight(checks))
    }

    async fn confirm(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        let confirmed = self
            .approver
            .approve(&crate::plan::describe::describe(&plan))?;
        Ok(StepOutcome::Plan(PlanConfirmed {
            plan_id: plan.id,
            confirmed,
        }))
    }

    async fn backup(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        let b = crate::backup::create(
            self.ctx.source()?,
            &crate::backup::BackupOptions {
                out: self.opts.backup_dir.clone(),
                schemas: plan.options.schemas.clone(),
            },
        )
        .await?;
        // The checklist's "Test backup restoration", on the target server.
        let check = crate::backup::restore::verify_backup(
            &b.dir,
            &self.ctx.target()?.with_dbname("postgres"),
            &plan.options.allow_drop_extensions,
        )
        .await?;
        if !check.ok() {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "the backup in {} does not restore to its manifest: {}; pg_restore said: {}",
                    b.dir.display(),
                    crate::backup::restore::summarize(&check.tables)
                        .into_iter()
                        .map(|(t, why)| format!("{t} ({why})"))
                        .chain(check.file_problems.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(", "),
                    check.errors_shown(5)
                ),
            ));
        }
        let excused: Vec<String> = check
            .tables
            .iter()
            .filter_map(|t| t.excused.as_ref().map(|why| format!("{} ({why})", t.table)))
            .collect();
        Ok(StepOutcome::Backup(BackupOutcome {
            dir: b.dir,
            files: b.manifest.files,
            tables: b.manifest.tables.len(),
            restore_test: {
                let mut said = if excused.is_empty() {
                    "every table restored equal to the manifest".to_string()
                } else {
                    format!(
                        "every other table restored equal to the manifest; not on this server: {}",
                        excused.join(", ")
                    )
                };
                if !check.left_out.is_empty() {
                    said.push_str(&format!(
                        "; not replayed on the target server (their SQL holds a secret): {}",
                        check.left_out.join(", ")
                    ));
                }
                said
            },
        }))
    }

    async fn provision(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        let req = crate::provision::ProvisionRequest {
            password: self.opts.app_password.clone(),
            secrets_dir: self.ctx.state_dir.clone(),
            secrets: self.ctx.secrets()?,
        };
        crate::provision::provision(self.ctx.target()?, &plan, &req)
            .await
            .map(StepOutcome::Provision)
    }

    async fn copy(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        let opts = crate::copy::CopyOptions {
            jobs: self.opts.copy_jobs,
            post_data: false,
            recopy: self.opts.recopy.clone(),
            ..crate::copy::CopyOptions::new(self.opts.copy_jobs, false)
        };
        let (source, target) = (self.ctx.source()?, self.ctx.target()?);
        let mut opts = opts;
        let start = if self.opts.follow {
            let start = crate::follow::begin(source, target, &plan).await?;
            opts.snapshot = Some(start.snapshot.clone());
            opts.recopy_all |= start.recopy_all;
            Some(start)
        } else {
            None
        };
        let copied = crate::copy::copy(
            source,
            target,
            &plan,
            opts,
            &self.ctx.secrets()?,
            &self.ctx.observer,
        )
        .await;
        if let Some(start) = start {
            start.release();
            if copied.is_ok() {
                crate::follow::copy_finished(target).await?;
            }
        }
        copied.map(StepOutcome::UsersAndData)
    }

    async fn storage(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        if !plan.storage.present {
            return Ok(StepOutcome::Storage(StorageOutcome::Skipped {
                reason: "the source has no storage.objects".into(),
            }));
        }
        let Some(config) = &self.opts.stores else {
            if plan.storage.objects() == 0 {
                return Ok(StepOutcome::Storage(StorageOutcome::Skipped {
                    reason: "storage.objects is empty".into(),
                }));
            }
            return Err(Error::invalid_input(format!(
                "the project has {} Storage objects, but no Storage source or destination is configured: {}",
                plan.storage.objects(),
                self.opts.stores_missing.as_deref().unwrap_or("")
            ))
            .with_hint("give --source-dir or the SUPABASE_S3_* keys, and AWS_REGION (or --dest-dir); finished steps are kept"));
        };
        let stores = config.open().await?;
        let s = crate::storage::migrate(
            self.ctx.source()?,
            self.ctx.target()?,
            &stores,
            &plan.storage,
            self.opts.transfer,
            &self.ctx.observer,
        )
        .await?;
        let problems = s.problems();
        if !problems.is_empty() {
            return Err(Error::new(
                ErrorKind::ObjectStore,
                format!(
                    "{} Storage problem(s), first: {}; run again to resume",
                    problems.len(),
                    problems[0]
                ),
            ));
        }
        Ok(StepOutcome::Storage(StorageOutcome::Copied(Box::new(s))))
    }

    /// Verifies a finished run again and records the new report (and the
    /// report files); a mismatch stops as the verify step does.
    async fn reverify(&mut self) -> Result<()> {
        self.ctx.observer.event(Event::Step {
            name: "verify (again: the run had finished)",
            earlier: false,
        });
        let started = Instant::now();
        let outcome = match self.verify().await {
            Ok(o) => o,
            Err(e) => {
                if let Some(rec) = self.state.done.iter().position(|s| s.step == Step::Verify) {
                    // The finished verify no longer holds: the run resumes there.
                    self.state.done.truncate(rec);
                }
                return Err(self.stop(Step::Verify, e));
            }
        };
        if let Some(rec) = self.state.done.iter_mut().find(|s| s.step == Step::Verify) {
            rec.outcome = outcome;
            rec.seconds = started.elapsed().as_secs_f64();
            rec.finished_at = crate::clock::epoch_seconds();
        }
        journal::save(&self.ctx.state_dir, &self.state)?;
        let plan = self.plan().await?.clone();
        crate::report::write(&self.opts.report_dir, &self.state, Some(&plan))?;
        Ok(())
    }

    /// `--follow`: the source's changes applied until `supamigrate cutover`
    /// has caught up and finished (run elsewhere), so verify compares the
    /// target with a source that no longer changes.
    async fn follow_until_cutover(&mut self, plan: &MigrationPlan) -> Result<()> {
        let (source, target) = (self.ctx.source()?, self.ctx.target()?);
        let tgt = crate::connect::connect(target).await?;
        if crate::follow::state(&tgt)
            .await?
            .is_some_and(|s| s.state == "cut-over")
        {
            return Ok(());
        }
        tracing::info!("the copy is done: following the source's changes; run `supamigrate cutover` to switch over");
        self.lock.admit_cutover().await?;
        let opts = crate::follow::FollowOptions::default();
        crate::follow::follow(source, target, plan, &opts).await?;
        loop {
            match crate::follow::state(&tgt).await?.map(|s| s.state) {
                Some(s) if s == "cut-over" => {
                    // The cutover beside us ends (its Storage step, the
                    // slot dropped) before the run goes on.
                    return self.lock.alone_again(CUTOVER_WAIT).await;
                }
                Some(s) if s == "aborted" => {
                    return Err(Error::invalid_input(
                        "the cutover was aborted: the source has its writes back and the follow ended; nothing was verified",
                    )
                    .with_hint("start over with `supamigrate run --follow` again (or `supamigrate copy --follow`): it copies every table again under a new slot"))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    async fn verify(&mut self) -> Result<StepOutcome> {
        let plan = self.plan().await?.clone();
        if self.opts.follow {
            self.follow_until_cutover(&plan).await?;
            // Objects added while following, and references the follow
            // wrote back as Supabase URLs: the Storage step again (it skips
            // what is there already).
            self.storage().await?;
        }
        let mut v = crate::verify::VerifyOptions::for_plan(&plan, self.ctx.observer.clone());
        if let Some(StorageOutcome::Copied(s)) = self.state.storage() {
            v = v.after_rewrite(&plan);
            for u in &s.to_missing_objects {
                *v.allowed_remaining.entry(u.column.clone()).or_default() += 1;
            }
        }
        v.jobs = self.opts.verify_jobs;
        v.checks = self.opts.checks.clone();
        let report = crate::verify::verify(self.ctx.source()?, self.ctx.target()?, &v).await?;
        let n = report.mismatches();
        if n > 0 {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "verify found {n} mismatch(es):\n{}",
                    crate::verify::render::text(&report)
                ),
            )
            .with_hint(if report.extension_config.iter().any(|c| !c.matches()) {
                "rows of an extension's configuration table are missing: once the target user may insert into it (see the copy's warning), `supamigrate copy` carries them; then run again: the finished steps are kept"
            } else {
                "fix the cause and run again: the finished steps are kept"
            }));
        }
        Ok(StepOutcome::Verify(Box::new(report)))
    }
}

/// Errors are not `Clone`; preflight needs the plan's error as a fact and
/// again as the step's outcome.
fn clone_error(e: &Error) -> Error {
    let mut c = Error::new(e.kind(), e.message());
    if let Some(h) = e.hint() {
        c = c.with_hint(h);
    }
    c
}
