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
use crate::follow::FollowPhase;
use crate::journal::{
    self, BackupOutcome, PlanConfirmed, RunState, StepOutcome, StepRecord, Stopped, StorageOutcome,
};
use crate::migration::{Approver, Context, Migration, PlanFrom};
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
    /// Verify found the data, schema and objects equal.
    pub all_green: bool,
    /// What the application's checks (`verify --app`) found different,
    /// one line each: the application may not work the same.
    pub app_differences: Vec<String>,
    /// What of the application the plan left behind: green means complete
    /// only when this is empty.
    pub left_behind: crate::plan::LeftBehind,
}

struct Runner<'a> {
    ctx: &'a Context,
    opts: &'a RunOptions,
    approver: &'a dyn Approver,
    state: RunState,
    /// The migration, resolved once; it holds the lock (alone, but beside
    /// a cutover while `--follow` follows).
    m: Migration,
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
    let mut state = journal::load(&ctx.state_dir, ctx.source()?, ctx.target()?)?;
    let m = match ctx.open_locked(Some(lock), PlanFrom::Any).await {
        Ok(m) => m,
        Err(e) => return Err(unplanned(ctx, opts, &mut state, e).await),
    };
    if let Some(id) = &state.plan_id {
        if *id != m.plan.id {
            return Err(Error::invalid_input(format!(
                "this run executes plan {id}, but the plan found now is {}; nothing was changed",
                m.plan.id
            ))
            .with_hint("run with the options the run started with, or use another --state-dir"));
        }
    }
    let mut r = Runner {
        ctx,
        opts,
        approver,
        state,
        m,
    };
    let done_now = r.steps().await?;
    Ok(RunOutcome {
        left_behind: r.m.plan.conversion.left_behind(),
        all_green: r.state.data_green(),
        app_differences: r
            .state
            .verify()
            .and_then(|v| v.app.as_ref())
            .map(crate::verify::app::differences)
            .unwrap_or_default(),
        report_html: opts.report_dir.join("report.html"),
        state: r.state,
        done_now,
    })
}

/// The plan cannot be found or made: where the run stands, preflight says
/// so among its checks (the facts that can be read without a plan).
async fn unplanned(ctx: &Context, opts: &RunOptions, state: &mut RunState, e: Error) -> Error {
    let step = Step::ALL
        .into_iter()
        .find(|s| state.get(*s).is_none())
        .unwrap_or(Step::Preflight);
    for s in Step::ALL.into_iter().take_while(|s| *s != step) {
        ctx.observer.event(Event::Step {
            name: s.name(),
            earlier: true,
        });
    }
    ctx.observer.event(Event::Step {
        name: step.name(),
        earlier: false,
    });
    let e = if step == Step::Preflight {
        match (ctx.source(), ctx.target()) {
            (Ok(source), Ok(target)) => {
                let checks = crate::preflight::checks(
                    source,
                    target,
                    &opts.backup_dir,
                    Err(&e),
                    &opts.preflight_extra(),
                )
                .await;
                crate::preflight::failure(&checks).unwrap_or(e)
            }
            _ => e,
        }
    } else {
        e
    };
    stopped(ctx, opts, state, step, e, None)
}

/// Records where the run stopped and writes the report of the stopped run.
fn stopped(
    ctx: &Context,
    opts: &RunOptions,
    state: &mut RunState,
    step: Step,
    e: Error,
    plan: Option<&MigrationPlan>,
) -> Error {
    state.failed = Some(Stopped {
        step,
        message: e.to_string(),
    });
    if let Err(se) = journal::save(&ctx.state_dir, state) {
        tracing::warn!(error = %se, "could not save the run state");
    }
    if let Err(re) = crate::report::write(&opts.report_dir, state, plan) {
        tracing::warn!(error = %re, "could not write the report of the stopped run");
    }
    e
}

impl Runner<'_> {
    /// Every step not done yet, in order; returns those done now.
    async fn steps(&mut self) -> Result<Vec<Step>> {
        let mut done_now = Vec::new();
        if Step::ALL.iter().all(|s| self.state.get(*s).is_some()) {
            // A finished run run again: the source may have moved on since.
            // Verify again before saying green.
            self.reverify().await?;
            done_now.push(Step::Verify);
        }
        for step in Step::ALL {
            let earlier = self.state.get(step).is_some();
            self.ctx.observer.event(Event::Step {
                name: step.name(),
                earlier,
            });
            if earlier {
                continue;
            }
            let started = Instant::now();
            let span = tracing::info_span!("step", step = step.name());
            match self.step(step).instrument(span).await {
                Ok(outcome) => {
                    self.state.done.push(StepRecord {
                        step,
                        seconds: started.elapsed().as_secs_f64(),
                        finished_at: crate::clock::epoch_seconds(),
                        outcome,
                    });
                    self.state.failed = None;
                    journal::save(&self.ctx.state_dir, &self.state)?;
                    done_now.push(step);
                    crate::failpoint::hit(crate::failpoint::RUN_STEP_DONE);
                }
                Err(e) => return Err(self.stop(step, e)),
            }
        }
        Ok(done_now)
    }

    fn stop(&mut self, step: Step, e: Error) -> Error {
        stopped(
            self.ctx,
            self.opts,
            &mut self.state,
            step,
            e,
            Some(&self.m.plan),
        )
    }

    /// Each step is its command's call over the one migration.
    async fn step(&mut self, step: Step) -> Result<StepOutcome> {
        let m = &self.m;
        match step {
            Step::Preflight => self.preflight().await,
            Step::Plan => self.confirm(),
            Step::Backup => self.backup().await,
            Step::Provision => {
                let req = crate::provision::ProvisionRequest {
                    password: self.opts.app_password.clone(),
                    secrets_dir: self.ctx.state_dir.clone(),
                };
                crate::provision::provision(m, &req)
                    .await
                    .map(StepOutcome::Provision)
            }
            Step::SchemaPreData => crate::apply::apply(m, Section::PreData)
                .await
                .map(StepOutcome::SchemaPreData),
            Step::UsersAndData => self.copy().await,
            Step::Storage => self.storage().await,
            Step::PostData => crate::copy::post_data::build(m, self.opts.copy_jobs)
                .await
                .map(StepOutcome::PostData),
            Step::Sequences => crate::copy::sync_sequences(m)
                .await
                .map(StepOutcome::Sequences),
            Step::Verify => self.verify().await,
            Step::Report => crate::report::write(&self.opts.report_dir, &self.state, Some(&m.plan))
                .map(StepOutcome::Report),
        }
    }

    async fn preflight(&mut self) -> Result<StepOutcome> {
        let checks = crate::preflight::checks(
            &self.m.source,
            &self.m.target,
            &self.opts.backup_dir,
            Ok(&self.m.plan),
            &self.opts.preflight_extra(),
        )
        .await;
        if let Some(e) = crate::preflight::failure(&checks) {
            return Err(e);
        }
        self.ctx.save_plan(&self.m.plan)?;
        self.state.plan_id = Some(self.m.plan.id.clone());
        Ok(StepOutcome::Preflight(checks))
    }

    fn confirm(&mut self) -> Result<StepOutcome> {
        let confirmed = self
            .approver
            .approve(&crate::plan::describe::describe(&self.m.plan))?;
        Ok(StepOutcome::Plan(PlanConfirmed {
            plan_id: self.m.plan.id.clone(),
            confirmed,
        }))
    }

    async fn backup(&mut self) -> Result<StepOutcome> {
        let b = crate::backup::create(
            &self.m.source,
            &crate::backup::BackupOptions {
                out: self.opts.backup_dir.clone(),
                schemas: self.m.plan.options.schemas.clone(),
            },
        )
        .await?;
        // The checklist's "Test backup restoration", on the target server.
        let check = crate::backup::restore::verify_backup(
            &b.dir,
            &self.m.target.with_dbname("postgres"),
            &self.m.plan.options.allow_drop_extensions,
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
        Ok(StepOutcome::Backup(BackupOutcome {
            restore_test: restore_said(&check),
            dir: b.dir,
            files: b.manifest.files,
            tables: b.manifest.tables.len(),
        }))
    }

    async fn copy(&mut self) -> Result<StepOutcome> {
        let opts = crate::copy::CopyOptions {
            recopy: self.opts.recopy.clone(),
            ..crate::copy::CopyOptions::new(self.opts.copy_jobs, false)
        };
        let copied = if self.opts.follow {
            crate::ops::copy_under_slot(&self.m, opts).await
        } else {
            crate::copy::copy(&self.m, opts).await
        };
        copied.map(StepOutcome::UsersAndData)
    }

    async fn storage(&mut self) -> Result<StepOutcome> {
        let plan = &self.m.plan;
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
        let s = crate::ops::storage_step(&self.m, &stores, self.opts.transfer, "")
            .await
            .map_err(|e| {
                let message = format!("{}; run again to resume", e.message());
                Error::new(e.kind(), message)
            })?;
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
        crate::report::write(&self.opts.report_dir, &self.state, Some(&self.m.plan))?;
        Ok(())
    }

    /// `--follow`: the source's changes applied until `supamigrate cutover`
    /// has caught up and finished (run elsewhere), so verify compares the
    /// target with a source that no longer changes.
    async fn follow_until_cutover(&mut self) -> Result<()> {
        let tgt = crate::connect::connect(&self.m.target).await?;
        if crate::follow::state(&tgt)
            .await?
            .is_some_and(|s| s.state == FollowPhase::CutOver)
        {
            return Ok(());
        }
        tracing::info!("the copy is done: following the source's changes; run `supamigrate cutover` to switch over");
        self.held()?.admit_cutover().await?;
        let opts = crate::follow::FollowOptions::default();
        crate::follow::follow(&self.m, &opts).await?;
        loop {
            match crate::follow::state(&tgt).await?.map(|s| s.state) {
                Some(FollowPhase::CutOver) => {
                    // The cutover beside us ends (its Storage step, the
                    // slot dropped) before the run goes on.
                    return self.held()?.alone_again(CUTOVER_WAIT).await;
                }
                Some(FollowPhase::Aborted) => {
                    return Err(Error::invalid_input(
                        "the cutover was aborted: the source has its writes back and the follow ended; nothing was verified",
                    )
                    .with_hint("start over with `supamigrate run --follow` again (or `supamigrate copy --follow`): it copies every table again under a new slot"))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// The run's lock.
    fn held(&mut self) -> Result<&mut crate::guard::Lock> {
        self.m
            .lock()
            .ok_or_else(|| Error::internal("run holds no lock"))
    }

    async fn verify(&mut self) -> Result<StepOutcome> {
        if self.opts.follow {
            self.follow_until_cutover().await?;
            // Objects added while following, and references the follow
            // wrote back as Supabase URLs: the Storage step again (it skips
            // what is there already).
            self.storage().await?;
        }
        let plan = &self.m.plan;
        let mut v = crate::verify::VerifyOptions::for_plan(plan, self.ctx.observer.clone());
        if let Some(StorageOutcome::Copied(s)) = self.state.storage() {
            v = v.after_rewrite(plan);
            for u in &s.to_missing_objects {
                *v.allowed_remaining.entry(u.column.clone()).or_default() += 1;
            }
        }
        v.jobs = self.opts.verify_jobs;
        v.checks = self.opts.checks.clone();
        v.app = Some(crate::verify::app::AppOptions::new(self.m.plan.clone()));
        let mut report = crate::verify::verify(&self.m, &v).await?;
        if let Some(app) = report.app.as_mut() {
            app.settings_file = Some(crate::verify::app::write_settings(&self.m, app).await?);
        }
        // The application's checks' differences are said in the verdict
        // (a Vault secret's value cannot move, a setting the target does
        // not take): the data's stop the run.
        let n = report.data_mismatches();
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

/// What the restore test found, said in a line.
fn restore_said(check: &crate::backup::restore::RestoreCheck) -> String {
    let excused: Vec<String> = check
        .tables
        .iter()
        .filter_map(|t| t.excused.as_ref().map(|why| format!("{} ({why})", t.table)))
        .collect();
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
}
