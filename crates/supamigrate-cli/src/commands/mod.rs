//! One module per group of commands. Each arm of [`dispatch`] maps its
//! arguments to the library's options and calls one library function; the
//! modules print what came back.

pub mod backup;
pub mod follow;
pub mod rds;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schema;
pub mod storage;
pub mod verify;

use supamigrate::ops::Context;

use crate::args::{default_jobs, Cli, Command, PlanArgs};
use crate::ui::{Confirm, Ui};

/// The operations' context for a command with `plan` choices.
fn context(cli: &Cli, plan: &PlanArgs, ui: &Ui) -> anyhow::Result<Context> {
    Ok(Context {
        settings: cli.settings()?,
        state_dir: cli.state_dir.clone(),
        overrides: plan.overrides()?,
        observer: ui.observer(),
    })
}

/// Runs the command.
pub async fn dispatch(cli: Cli, ui: &Ui) -> anyhow::Result<()> {
    match &cli.command {
        #[cfg(feature = "sandbox")]
        Command::Sandbox { action } => sandbox::sandbox(action).await,
        Command::Check => schema::check(&cli.settings()?).await,
        Command::Plan { plan, json, out } => {
            run::plan(&context(&cli, plan, ui)?, *json, out.as_deref()).await
        }
        Command::Preflight {
            plan,
            stores,
            backup_dir,
            jobs,
            copy_jobs,
            allow_missing_objects,
        } => {
            let how = run::PreflightArgs {
                backup_dir,
                jobs: *jobs,
                copy_jobs: *copy_jobs,
                allow_missing_objects: *allow_missing_objects,
            };
            run::preflight(&context(&cli, plan, ui)?, stores, &how).await
        }
        Command::Schema { action } => schema::schema(&cli, action, ui).await,
        Command::Provision {
            plan,
            secrets_dir,
            yes,
        } => {
            let ctx = context(&cli, plan, ui)?;
            let dir = secrets_dir.clone().unwrap_or_else(|| cli.state_dir.clone());
            schema::provision(&ctx, dir, &Confirm { yes: *yes }).await
        }
        Command::Copy { plan, copy } => {
            let opts = supamigrate::copy::CopyOptions {
                jobs: default_jobs(copy.jobs),
                post_data: !copy.no_post_data,
                recopy: copy.recopy.clone(),
                ..supamigrate::copy::CopyOptions::new(1, true)
            };
            schema::copy(&context(&cli, plan, ui)?, opts, copy.follow, copy.json).await
        }
        Command::Follow { plan, follow } => follow::follow(&context(&cli, plan, ui)?, follow).await,
        Command::Cutover { cutover, stores } => {
            let ctx = context(&cli, &PlanArgs::default(), ui)?;
            follow::cutover(&ctx, cutover, stores).await
        }
        Command::Verify { plan, verify } => verify::verify(&context(&cli, plan, ui)?, verify).await,
        Command::Backup {
            action,
            out,
            schemas,
            exclude_schemas,
        } => backup::backup(&cli, action.as_ref(), out, schemas, exclude_schemas).await,
        Command::Rollback { backup, yes } => backup::rollback(&cli.settings()?, backup, *yes).await,
        Command::Storage { action } => storage::storage(&cli, action, ui).await,
        Command::Rds { action } => rds::rds(&cli, action).await,
        Command::Run {
            plan,
            stores,
            run,
            instance,
        } => run::run_command(&cli, context(&cli, plan, ui)?, stores, run, instance).await,
        #[cfg(feature = "sandbox")]
        Command::Demo {
            dir,
            scale,
            target_version,
        } => run::demo(dir, *scale, *target_version, ui).await,
    }
}

/// JSON for `--json`.
pub fn to_json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}
