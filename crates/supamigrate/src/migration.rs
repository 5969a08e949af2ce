//! One migration, resolved once: [`Context::open`] checks the sides, takes
//! the lock (for commands that write), finds the plan (on the target, else
//! in the state folder, else made now), checks it against the command's
//! flags and the source's schema, and loads the secrets kept apart. The
//! result, a [`Migration`], is what every executor takes: the sides, the
//! plan, the secrets and the observer, each found once per command.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::inventory;
use crate::config::Settings;
use crate::connect::{connect, probe, ConnInfo};
use crate::error::{Error, Result};
use crate::events::SharedObserver;
use crate::guard::{Hold, Lock};
use crate::plan::{MigrationPlan, PlanOverrides};
use crate::secrets::Vault;

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

/// The state folder and the name of every file in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The folder at `path`.
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir(path.into())
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `run`'s journal.
    pub fn run_file(&self) -> PathBuf {
        self.0.join(RUN_FILE)
    }

    /// The saved plan.
    pub fn plan_file(&self) -> PathBuf {
        self.0.join(crate::plan::file::PLAN_FILE)
    }

    /// The secrets found in the source's definitions, owner-only.
    pub fn secrets_file(&self) -> PathBuf {
        self.0.join(SECRETS_FILE)
    }

    /// The RDS instance's files (its password, the target configuration).
    pub fn rds_dir(&self) -> PathBuf {
        self.0.join("rds")
    }
}

/// The state folder's file of secrets found in definitions.
pub const SECRETS_FILE: &str = "secrets.json";

/// `run`'s journal in the state folder.
pub const RUN_FILE: &str = "run.json";

/// How the plan was confirmed before the first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confirmation {
    /// The user answered yes on the terminal.
    Terminal,
    /// `--yes`.
    Flag,
}

/// What every command is given: where the sides are, the state folder, the
/// plan choices of its flags, where progress goes.
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

/// How a command uses the migration.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// It only reads: no lock.
    Read,
    /// It writes as `command`, holding the migration lock as `Hold` says.
    Write(&'a str, Hold),
}

/// Which plan a command works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFrom {
    /// The one stored on the target, else the state folder's, else a new
    /// one; a source whose schema changed since is refused.
    Any,
    /// The one stored on the target only (the follow's cutover and abort).
    Target,
    /// As `Any`, but a source whose schema changed since the target's plan
    /// is compared as planned (verify names each change).
    AsPlanned,
}

/// One migration, resolved once (see the module).
pub struct Migration {
    /// The source.
    pub source: ConnInfo,
    /// The target.
    pub target: ConnInfo,
    /// The plan.
    pub plan: Arc<MigrationPlan>,
    /// Where it came from.
    pub origin: Origin,
    /// The secrets found in the source's definitions (the plan holds
    /// placeholders): loaded once.
    pub vault: Vault,
    /// Where progress goes.
    pub observer: SharedObserver,
    /// The state folder.
    pub state: StateDir,
    lock: Option<Lock>,
}

impl Migration {
    /// A migration from its parts, for callers that resolved them
    /// themselves (tests, other front ends): no lock held.
    pub fn new(
        source: ConnInfo,
        target: ConnInfo,
        plan: MigrationPlan,
        vault: Vault,
        observer: SharedObserver,
        state: StateDir,
    ) -> Migration {
        Migration {
            source,
            target,
            plan: Arc::new(plan),
            origin: Origin::Made,
            vault,
            observer,
            state,
            lock: None,
        }
    }

    /// The migration lock, when this command holds it.
    pub fn lock(&mut self) -> Option<&mut Lock> {
        self.lock.as_mut()
    }

    /// Shows the plan and asks, unless it is stored on the target already
    /// (confirmed when it was stored).
    pub fn confirm(&self, approver: &dyn Approver) -> Result<Option<Confirmation>> {
        if self.origin == Origin::Target {
            return Ok(None);
        }
        approver
            .approve(&crate::plan::describe::describe(&self.plan))
            .map(Some)
    }
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

    /// The state folder.
    pub fn state(&self) -> StateDir {
        StateDir::new(&self.state_dir)
    }

    /// Opens the migration for a command: the sides checked, the lock
    /// taken (writes), the plan found and checked, the secrets loaded.
    pub async fn open(&self, access: Access<'_>, from: PlanFrom) -> Result<Migration> {
        let lock = match access {
            Access::Read => None,
            Access::Write(command, hold) => Some(self.lock_as(command, hold).await?),
        };
        self.open_locked(lock, from).await
    }

    /// [`Context::open`] with the lock the caller took.
    pub async fn open_locked(&self, lock: Option<Lock>, from: PlanFrom) -> Result<Migration> {
        self.check_sides().await?;
        let planned = match from {
            PlanFrom::Any => self.plan().await?,
            PlanFrom::Target => Planned {
                plan: self.target_plan().await?.ok_or_else(|| {
                    Error::invalid_input(
                        "the target holds no migration to cut over; nothing was changed",
                    )
                    .with_hint("start one with `supamigrate copy --follow`")
                })?,
                origin: Origin::Target,
            },
            PlanFrom::AsPlanned => match self.target_plan().await? {
                Some(plan) => {
                    self.check_choices(&plan, Origin::Target)?;
                    Planned {
                        plan,
                        origin: Origin::Target,
                    }
                }
                None => self.plan().await?,
            },
        };
        Ok(Migration {
            source: self.source()?.clone(),
            target: self.target()?.clone(),
            plan: Arc::new(planned.plan),
            origin: planned.origin,
            vault: Vault::load(&self.state().secrets_file())?,
            observer: self.observer.clone(),
            state: self.state(),
            lock,
        })
    }

    /// The plan stored on the target, when its database exists.
    pub(crate) async fn target_plan(&self) -> Result<Option<MigrationPlan>> {
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
        let Some(plan) = crate::plan::file::load(&self.state().plan_file())?
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
            inv.source.secrets.save(&self.state().secrets_file())?;
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
    pub(crate) async fn check_stored(&self, plan: &MigrationPlan, origin: Origin) -> Result<()> {
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
    pub async fn lock(&self, command: &str) -> Result<Lock> {
        crate::guard::lock(&self.state_dir, self.target()?, command).await
    }

    /// Takes the migration lock for `command` as `hold` says.
    pub async fn lock_as(&self, command: &str, hold: Hold) -> Result<Lock> {
        crate::guard::lock_as(&self.state_dir, self.target()?, command, hold).await
    }

    /// Refuses a target that is the source or a Supabase project, and a
    /// source that is not one.
    pub async fn check_sides(&self) -> Result<()> {
        crate::guard::check_sides(self.source()?, self.target()?, self.settings.plain_source).await
    }

    /// The migration's plan: the one stored on the target, else the one
    /// saved in the state folder, else a new one. A stored plan must agree
    /// with the command's flags and with the source's schema.
    pub async fn plan(&self) -> Result<Planned> {
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
        crate::plan::file::save(&self.state().plan_file(), plan)
    }
}
