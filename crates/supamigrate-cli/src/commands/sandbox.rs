//! `sandbox start|stop|status`.

use std::path::PathBuf;

use anyhow::Context as _;
use supamigrate_sandbox::{Sandbox, SandboxOptions};

use crate::args::SandboxCommand;

pub async fn sandbox(action: &SandboxCommand) -> anyhow::Result<()> {
    let dir_or_default =
        |d: &Option<PathBuf>| d.clone().unwrap_or_else(SandboxOptions::default_dir);
    match action {
        SandboxCommand::Start {
            dir,
            scale,
            seed,
            app,
            target_version,
        } => {
            let app = match app {
                None => None,
                Some(name) => Some(supamigrate_sandbox::apps::find(name).ok_or_else(|| {
                    supamigrate::Error::invalid_input(format!(
                        "there is no fixture application {name:?}"
                    ))
                    .with_hint(format!(
                        "choose one of {}",
                        supamigrate_sandbox::apps::APPS
                            .iter()
                            .map(|a| a.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?),
            };
            let opts = SandboxOptions {
                dir: dir_or_default(dir),
                scale: *scale,
                seed: *seed,
                app,
                target_version: *target_version,
            };
            let sb = Sandbox::start(&opts)
                .await
                .with_context(|| format!("starting the sandbox in {}", opts.dir.display()))?;
            tracing::info!(
                dir = %sb.dir().display(),
                source = %sb.source_url(),
                target = %sb.target_url(),
                "sandbox running"
            );
            print!("{}", sb.exports());
            Ok(())
        }
        SandboxCommand::Stop { dir, remove } => {
            let dir = dir_or_default(dir);
            if *remove {
                supamigrate_sandbox::remove_dir(&dir)
                    .with_context(|| format!("removing the sandbox in {}", dir.display()))?;
                tracing::info!(dir = %dir.display(), "sandbox stopped and removed");
            } else {
                let sb = Sandbox::open(&dir)?;
                sb.stop()
                    .with_context(|| format!("stopping the sandbox in {}", dir.display()))?;
                tracing::info!(dir = %dir.display(), "sandbox stopped");
            }
            Ok(())
        }
        SandboxCommand::Status { dir } => {
            let dir = dir_or_default(dir);
            let sb = Sandbox::open(&dir)?;
            println!(
                "sandbox {} (scale {}, seed {})",
                sb.dir().display(),
                sb.scale(),
                sb.seed()
            );
            for c in sb.status() {
                match c.pid {
                    Some(pid) => println!("  {}: running, pid {pid}, port {}", c.role, c.port),
                    None => println!("  {}: stopped", c.role),
                }
            }
            Ok(())
        }
    }
}
