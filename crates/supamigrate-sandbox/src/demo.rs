//! `supamigrate demo`: the whole migration on a fresh local sandbox. It
//! starts the sandbox, runs `supamigrate run` on it with the TMS fixture's
//! reference columns, bucket prefix and checks, with Storage uploaded to a
//! local S3 server (moto), then stops both and removes the sandbox. The
//! report and the backups stay in the demo's folder.

use std::path::{Path, PathBuf};

use supamigrate::config::Settings;
use supamigrate::error::{Error, Result};
use supamigrate::events::SharedObserver;
use supamigrate::ops::{Approver, Context};
use supamigrate::plan::PlanOverrides;
use supamigrate::run::{RunOptions, RunOutcome};
use supamigrate::storage::config::StoreConfig;
use supamigrate::storage::transfer::TransferOptions;

use crate::{fixture, Sandbox, SandboxOptions, DEFAULT_SEED};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the report and backups stay.
    pub dir: PathBuf,
    /// Fixture scale.
    pub scale: u32,
    /// The target's PostgreSQL major (`None`: the system's).
    pub target_version: Option<u32>,
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The migration's outcome.
    pub run: RunOutcome,
    /// The demo's folder (absolute).
    pub dir: PathBuf,
    /// Where the sandbox was (removed now).
    pub sandbox_dir: PathBuf,
}

/// The folders of a previous demo in `dir`, removed before a new one.
fn clear_previous(dir: &Path) -> Result<()> {
    let sandbox_dir = dir.join("sandbox");
    if sandbox_dir.exists() {
        crate::remove_dir(&sandbox_dir)?;
    }
    for sub in ["state", "report", "s3", "backups"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| {
                Error::io(format!("removing the previous demo's {}", p.display()), e)
            })?;
        }
    }
    Ok(())
}

/// The fixture's choices: the runbook's reference columns and bucket prefix.
fn overrides() -> PlanOverrides {
    PlanOverrides {
        app_role: Some("tms_app".into()),
        references: Some(fixture::references()),
        bucket_prefix: Some(fixture::BUCKET_PREFIX.into()),
        ..PlanOverrides::default()
    }
}

/// Runs the demo; `on_sandbox` is told where the sandbox runs once started.
pub async fn run(
    opts: &DemoOptions,
    approver: &dyn Approver,
    observer: SharedObserver,
    on_sandbox: &dyn Fn(&Path),
    on_s3: &dyn Fn(&str),
) -> Result<DemoOutcome> {
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| Error::io(format!("creating {}", opts.dir.display()), e))?;
    let dir = std::fs::canonicalize(&opts.dir)
        .map_err(|e| Error::io(format!("resolving {}", opts.dir.display()), e))?;
    clear_previous(&dir)?;
    let sandbox_dir = dir.join("sandbox");
    let sb = Sandbox::start(&SandboxOptions {
        dir: sandbox_dir.clone(),
        scale: opts.scale,
        seed: DEFAULT_SEED,
        app: None,
        target_version: opts.target_version,
    })
    .await?;
    on_sandbox(&sandbox_dir);
    // The application has been running against the source: its reads are
    // in pg_stat_statements, for verify --app's query plans.
    if let Err(e) = fixture::application_reads(&sb.source_url()).await {
        let _ = sb.remove();
        return Err(e);
    }
    // Storage goes to a local S3 server, so the demo runs the real upload
    // path; it stops with the demo.
    let s3 = match crate::s3::LocalS3::start() {
        Ok(s3) => s3,
        Err(e) => {
            let _ = sb.remove();
            return Err(e);
        }
    };
    on_s3(&s3.endpoint());
    let ctx = Context {
        settings: Settings::new(
            sb.source_url(),
            sb.target_url(),
            Some(sb.project_ref().to_string()),
        ),
        state_dir: dir.join("state"),
        overrides: overrides(),
        observer,
    };
    let run_opts = RunOptions {
        backup_dir: dir.join("backups"),
        report_dir: dir.join("report"),
        copy_jobs: 4,
        verify_jobs: 2,
        stores: Some(StoreConfig {
            source_dir: Some(sb.storage_dir()),
            dest_s3: Some((s3.endpoint(), s3.keys())),
            ..StoreConfig::default()
        }),
        stores_missing: None,
        transfer: TransferOptions {
            jobs: 4,
            ..TransferOptions::default()
        },
        app_password: None,
        checks: fixture::checks()?,
        recopy: Vec::new(),
        follow: false,
    };
    let result = supamigrate::run::run(&ctx, &run_opts, approver).await;
    drop(s3);
    let removed = sb.remove();
    let run = result?;
    removed?;
    Ok(DemoOutcome {
        run,
        dir,
        sandbox_dir,
    })
}
