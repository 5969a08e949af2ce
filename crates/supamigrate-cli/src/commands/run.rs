//! `plan`, `preflight`, `run`, `demo`.

use std::path::Path;

use anyhow::Context as _;
use supamigrate::ops::{self, Context, Origin};
use supamigrate::preflight::{Check, Status};
use supamigrate::run::{RunOptions, RunOutcome};

use supamigrate::rds::api;
use supamigrate::rds::settings::Phase;

use super::rds::{ca_bundle, make_instance, settings_for, Ask};
use crate::args::{default_jobs, Cli, RunArgs, RunInstanceArgs, StoreArgs};
use crate::ui::Confirm;

pub async fn plan(ctx: &Context, json: bool, out: Option<&Path>) -> anyhow::Result<()> {
    let planned = ops::plan(ctx).await?;
    if let Some(path) = out {
        supamigrate::plan::file::save(path, &planned.plan)
            .with_context(|| format!("writing the plan to {}", path.display()))?;
    }
    if json {
        println!("{}", supamigrate::plan::file::to_json(&planned.plan)?);
        return Ok(());
    }
    print!("{}", supamigrate::plan::describe::describe(&planned.plan));
    match planned.origin {
        Origin::Target => println!("\nThe target is being migrated by this plan (stored there)."),
        _ => println!(
            "\nSaved to {} for `supamigrate run`.",
            ctx.state_dir
                .join(supamigrate::plan::file::PLAN_FILE)
                .display()
        ),
    }
    println!("Nothing was changed.");
    Ok(())
}

pub fn print_checks(checks: &[Check]) {
    for c in checks {
        let mark = match c.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        };
        println!("{mark} {}: {}", c.name, c.detail);
        if c.status != Status::Pass {
            if let Some(h) = &c.hint {
                println!("    fix: {h}");
            }
        }
    }
}

/// What `supamigrate preflight` was given besides the plan's choices.
pub struct PreflightArgs<'a> {
    pub backup_dir: &'a Path,
    pub jobs: Option<u16>,
    pub copy_jobs: Option<u16>,
    pub allow_missing_objects: bool,
}

/// `preflight`: the checks `run`'s preflight step makes, with the same
/// workers and stores.
pub async fn preflight(
    ctx: &Context,
    stores: &StoreArgs,
    args: &PreflightArgs<'_>,
) -> anyhow::Result<()> {
    let jobs = default_jobs(args.jobs);
    let config = stores.config(&ctx.settings);
    let missing = config.open().await.err().map(|e| format!("{e}"));
    let extra = supamigrate::preflight::Extra {
        copy_jobs: args.copy_jobs.map_or(jobs, usize::from),
        verify_jobs: jobs,
        stores: missing.is_none().then_some(&config),
        stores_missing: missing.as_deref(),
        allow_missing_objects: args.allow_missing_objects,
    };
    let checks = ops::preflight(ctx, args.backup_dir, &extra).await?;
    print_checks(&checks);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("preflight: {failed} check(s) failed");
    }
    println!("preflight: ready");
    Ok(())
}

fn run_options(ctx: &Context, stores: &StoreArgs, args: &RunArgs) -> anyhow::Result<RunOptions> {
    let checks = match &args.checks {
        Some(f) => super::verify::read_checks(f)?,
        None => Vec::new(),
    };
    let jobs = default_jobs(args.jobs);
    Ok(RunOptions {
        backup_dir: args.backup_dir.clone(),
        report_dir: args.report_dir.clone(),
        copy_jobs: args.copy_jobs.map_or(jobs, usize::from),
        verify_jobs: jobs,
        stores: Some(stores.config(&ctx.settings)),
        stores_missing: None,
        transfer: supamigrate::storage::transfer::TransferOptions {
            part_size: usize::from(args.part_size_mib) * 1024 * 1024,
            jobs: usize::from(args.storage_jobs),
            allow_missing_objects: args.allow_missing_objects,
        },
        app_password: std::env::var("APP_DB_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(supamigrate::connect::Password::new),
        checks,
        recopy: args.recopy.clone(),
        follow: args.follow,
    })
}

pub async fn run(ctx: &Context, stores: &StoreArgs, args: &RunArgs) -> anyhow::Result<()> {
    // Both sides first: their errors say what to set, before anything else runs.
    ctx.settings.source()?;
    ctx.settings.target()?;
    let mut opts = run_options(ctx, stores, args)?;
    // A project without Storage objects needs no Storage configuration: the
    // stores are checked here, and preflight decides whether they are needed.
    if let Some(config) = &opts.stores {
        if let Err(e) = config.open().await {
            opts.stores_missing = Some(format!("{e}"));
            opts.stores = None;
        }
    }
    let outcome = supamigrate::run::run(ctx, &opts, &Confirm { yes: args.yes }).await;
    let source = ctx.settings.source()?;
    let target = ctx.settings.target()?;
    if let Ok(st) = supamigrate::journal::load(&ctx.state_dir, source, target) {
        println!("\nMigration Execution Checklist:");
        print!("{}", supamigrate::report::checklist_text(&st));
    }
    let outcome = outcome.context("the run stopped; fix the cause and run again to resume")?;
    finish(&outcome)
}

/// `run`, into the configured target or, with `--create-instance`, into
/// the instance made first.
pub async fn run_command(
    cli: &Cli,
    ctx: Context,
    stores: &StoreArgs,
    args: &RunArgs,
    instance: &RunInstanceArgs,
) -> anyhow::Result<()> {
    if let Some(id) = &instance.create_instance {
        return run_creating_instance(cli, ctx, stores, args, id, instance).await;
    }
    if let Some(flag) = instance.opts.first_given().or(instance.wait.first_given()) {
        return Err(supamigrate::Error::invalid_input(format!(
            "{flag} is an option of the instance to make, and no --create-instance ID was given"
        ))
        .with_hint("add --create-instance ID, or leave the option out")
        .into());
    }
    run(&ctx, stores, args).await
}

/// `run --create-instance ID`: the instance made (or reused) first, as
/// `rds create` does, the migration into it, and its parameter group in
/// the production phase once the run is done.
async fn run_creating_instance(
    cli: &Cli,
    ctx: Context,
    stores: &StoreArgs,
    args: &RunArgs,
    id: &str,
    instance: &RunInstanceArgs,
) -> anyhow::Result<()> {
    ctx.settings.source()?;
    if ctx.settings.has_target() {
        return Err(supamigrate::Error::invalid_input(
            "--create-instance makes the target, and a target is configured as well (RDS_URL, RDS_HOST, --target-url or [target])",
        )
        .with_hint("unset the target to migrate into the instance, or leave --create-instance out to migrate into the configured one")
        .into());
    }
    // Checked before anything is made: the run connects with verify-full.
    let ca = ca_bundle(cli, &instance.opts);
    if !ca.is_file() {
        return Err(supamigrate::Error::invalid_input(format!(
            "the RDS CA bundle {} does not exist: the run checks the instance's certificate (sslmode=verify-full) against it",
            ca.display()
        ))
        .with_hint("download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem there, or give --ca-bundle FILE")
        .into());
    }
    let how = Ask {
        yes: args.yes,
        json: false,
    };
    let (_, created, env_file, env) =
        make_instance(cli, id, &instance.opts, instance.wait.wait(), None, how).await?;
    println!(
        "rds: {id} is available; its target configuration is in {}",
        env_file.display()
    );
    let password = match (&env.password, &created.instance.secret_arn) {
        (Some(p), _) => p.clone(),
        (None, Some(arn)) => api::managed_password(arn).await?,
        (None, None) => {
            anyhow::bail!("the instance {id} has neither a generated nor a managed master password")
        }
    };
    let ctx = Context {
        settings: ctx.settings.with_target(env.conninfo(password)?),
        state_dir: ctx.state_dir,
        overrides: ctx.overrides,
        observer: ctx.observer,
    };
    if let Err(e) = run(&ctx, stores, args).await {
        println!("rds: {id}'s parameter group keeps the bulk-load settings until a run completes (`supamigrate rds settings --instance-id {id} --for production` resets them now)");
        return Err(e);
    }
    settings_for(id, Phase::Production).await
}

fn finish(outcome: &RunOutcome) -> anyhow::Result<()> {
    let st = &outcome.state;
    let (tables, rows) = st
        .copy()
        .map(|c| (c.tables.len(), c.rows()))
        .unwrap_or((0, 0));
    let (objects, rewritten) = match st.storage() {
        Some(supamigrate::journal::StorageOutcome::Copied(s)) => {
            (s.copy.objects, s.rewritten.unwrap_or(0))
        }
        _ => (0, 0),
    };
    let seconds: f64 = st.done.iter().map(|s| s.seconds).sum();
    println!(
        "\nsummary: {tables} tables, {rows} rows copied; {objects} Storage objects ({rewritten} references rewritten); verify: {} mismatches; {seconds:.1} s of steps",
        st.verify().map(|v| v.mismatches()).unwrap_or(0),
    );
    if let Some(app) = st.verify().and_then(|v| v.app.as_ref()) {
        println!("{}", supamigrate::verify::app::summary(app));
        if let Some(p) = &app.settings_file {
            println!("the application's new settings: {}", p.display());
        }
    }
    println!("report: {}", outcome.report_html.display());
    for rec in &st.done {
        if let supamigrate::journal::StepOutcome::Provision(p) = &rec.outcome {
            match (&p.password_file, p.password_set) {
                (Some(f), _) => println!(
                    "the application role's generated password is in {} (owner-only); set APP_DB_PASSWORD to choose it",
                    f.display()
                ),
                (None, true) => println!("the application role's password is APP_DB_PASSWORD's"),
                (None, false) => {}
            }
        }
    }
    if !outcome.all_green {
        anyhow::bail!("verify did not end green");
    }
    for d in &outcome.app_differences {
        println!("✗ {d}");
    }
    let app = if outcome.app_differences.is_empty() {
        String::new()
    } else {
        format!(
            "; the application differs on the target in {} place(s) (above; `supamigrate verify --app` checks again)",
            outcome.app_differences.len()
        )
    };
    if outcome.left_behind.is_empty() && app.is_empty() {
        println!("✓ migration complete: verify is all green");
    } else {
        // Equal data is not the whole application: say what stayed behind.
        let left = if outcome.left_behind.is_empty() {
            String::new()
        } else {
            format!(
                "; {} left behind (the plan's \"what changes for the application\" names each, with what to do)",
                outcome.left_behind.describe()
            )
        };
        println!("✓ migration complete: data equal{left}{app}");
    }
    Ok(())
}

#[cfg(feature = "sandbox")]
pub async fn demo(
    dir: &Path,
    scale: u32,
    target_version: Option<u32>,
    ui: &crate::ui::Ui,
) -> anyhow::Result<()> {
    let opts = supamigrate_sandbox::demo::DemoOptions {
        dir: dir.to_path_buf(),
        scale,
        target_version,
    };
    let on_sandbox = |p: &Path| {
        println!(
            "sandbox: a Supabase-like source and an RDS-like target (scale {scale}) in {}",
            p.display()
        )
    };
    let on_s3 = |endpoint: &str| {
        println!(
            "storage: uploaded to a local S3 server (moto) at {endpoint}, stopped with the demo"
        )
    };
    let outcome = supamigrate_sandbox::demo::run(
        &opts,
        &Confirm { yes: true },
        ui.observer(),
        &on_sandbox,
        &on_s3,
    )
    .await
    .context("the demo stopped")?;
    println!("\nMigration Execution Checklist:");
    print!(
        "{}",
        supamigrate::report::checklist_text(&outcome.run.state)
    );
    finish(&outcome.run)?;
    println!(
        "demo: the sandbox and the S3 server are stopped and removed; the report and backups stay in {}",
        outcome.dir.display()
    );
    Ok(())
}
