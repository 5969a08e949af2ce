//! `check`, `schema export|convert|apply`, `provision`, `copy`.

use std::path::PathBuf;

use anyhow::Context as _;
use supamigrate::apply::Applied;
use supamigrate::config::Settings;
use supamigrate::ops::{self, Context};
use supamigrate::plan::Action;

use super::{context, to_json};
use crate::args::{Cli, SchemaCommand};
use crate::ui::{Confirm, Ui};

pub async fn check(settings: &Settings) -> anyhow::Result<()> {
    let report = ops::check(settings).await?;
    let mut failed = false;
    for (side, info, probe) in [
        ("source", settings.source()?, &report.source),
        ("target", settings.target()?, &report.target),
    ] {
        println!("{side}: {info}");
        match probe {
            Ok(p) => {
                println!("  server     PostgreSQL {}", p.server_version);
                println!(
                    "  login      {}{}",
                    p.user,
                    if p.superuser {
                        " (superuser)"
                    } else {
                        " (not superuser)"
                    }
                );
                println!("  tls        {}", if p.tls { "yes" } else { "no" });
                if !p.database_exists {
                    println!(
                        "  database   {} does not exist yet (provisioning creates it)",
                        info.dbname
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("  error      {e}");
                if let Some(h) = e.hint() {
                    println!("  hint       {h}");
                }
            }
        }
    }
    if failed {
        anyhow::bail!("a connection check failed");
    }
    Ok(())
}

pub async fn schema(cli: &Cli, action: &SchemaCommand, ui: &Ui) -> anyhow::Result<()> {
    match action {
        SchemaCommand::Export { plan, out } => {
            let schemas = ops::schema_export(&context(cli, plan, ui)?, out).await?;
            println!(
                "exported schemas {} to {} (pre-data.sql, post-data.sql)",
                schemas.join(", "),
                out.display()
            );
            Ok(())
        }
        SchemaCommand::Convert { plan, out, json } => {
            let planned = context(cli, plan, ui)?.plan().await?;
            let conv = &planned.plan.conversion;
            std::fs::write(out, conv.sql())
                .with_context(|| format!("writing {}", out.display()))?;
            if *json {
                println!("{}", to_json(conv)?);
            } else {
                print!("{}", conv.report_text());
                println!("\nconverted SQL: {}", out.display());
            }
            Ok(())
        }
        SchemaCommand::Apply { plan, section } => {
            let ctx = context(cli, plan, ui)?;
            let target = ctx.target()?.clone();
            let done = ops::schema_apply(&ctx, section.sections())
                .await
                .with_context(|| format!("applying the schema to {target}"))?;
            for (s, a) in done {
                match a {
                    Applied::Now(n) => println!("{}: applied {n} statements", s.name()),
                    Applied::Earlier => println!("{}: already applied, nothing to do", s.name()),
                }
            }
            let planned = ctx.plan().await?;
            let counts = planned.plan.conversion.counts();
            let n = |a| counts.get(&a).copied().unwrap_or(0);
            println!(
                "conversion: {} rewritten, {} dropped (see `supamigrate plan` for the list)",
                n(Action::Rewritten),
                n(Action::Dropped)
            );
            Ok(())
        }
    }
}

pub async fn provision(
    ctx: &Context,
    secrets_dir: PathBuf,
    confirm: &Confirm,
) -> anyhow::Result<()> {
    let req = supamigrate::provision::ProvisionRequest {
        password: std::env::var("APP_DB_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(supamigrate::connect::Password::new),
        secrets_dir,
    };
    let target = ctx.target()?.clone();
    let report = ops::provision(ctx, &req, confirm)
        .await
        .with_context(|| format!("provisioning {target}"))?;
    let planned = ctx.plan().await?;
    let p = &planned.plan.provision;
    println!(
        "database {}: {}",
        p.database,
        if report.database_created {
            "created"
        } else {
            "exists"
        }
    );
    println!(
        "extensions: {}",
        if report.extensions_created.is_empty() {
            "none created".to_string()
        } else {
            report.extensions_created.join(", ")
        }
    );
    let role = match (report.role_created, report.password_set) {
        (true, true) => "created, with the password from APP_DB_PASSWORD",
        (true, false) => "created",
        (false, true) => "exists; its password was set from APP_DB_PASSWORD",
        (false, false) => "exists (its password is unchanged)",
    };
    println!("role {}: {role}", p.app_role);
    if let Some(f) = &report.password_file {
        println!("its generated password is in {} (owner-only)", f.display());
    }
    if !report.shim_roles_created.is_empty() {
        println!(
            "RLS shim roles created: {}",
            report.shim_roles_created.join(", ")
        );
    }
    if !report.database_settings_set.is_empty() {
        println!(
            "database settings set: {}",
            report.database_settings_set.join(", ")
        );
    }
    if !report.role_settings_set.is_empty() {
        println!("role settings set: {}", report.role_settings_set.join(", "));
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

pub async fn copy(
    ctx: &Context,
    opts: supamigrate::copy::CopyOptions,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let target = ctx.target()?.clone();
    let summary = if follow {
        ops::copy_follow(ctx, opts).await
    } else {
        ops::copy(ctx, opts).await
    }
    .with_context(|| format!("copying to {target}"))?;
    if json {
        println!("{}", to_json(&summary)?);
        return Ok(());
    }
    println!(
        "{:<44} {:>12} {:>10} {:>8} {:>8}",
        "TABLE", "ROWS", "MB", "SECONDS", "MB/S"
    );
    let mut bytes = 0i64;
    for t in &summary.tables {
        bytes += t.bytes;
        println!(
            "{:<44} {:>12} {:>10.1} {:>8.2} {:>8.1}",
            t.table,
            t.rows,
            t.bytes as f64 / 1e6,
            t.seconds,
            t.bytes as f64 / 1e6 / t.seconds.max(1e-3)
        );
    }
    println!(
        "{:<44} {:>12} {:>10.1} {:>8.2} {:>8.1}",
        "TOTAL (this run's wall time)",
        summary.rows(),
        bytes as f64 / 1e6,
        summary.seconds,
        bytes as f64 / 1e6 / summary.seconds.max(1e-3)
    );
    println!(
        "tasks: {} now, {} done by an earlier run; sequences set: {}",
        summary.tasks_now, summary.tasks_earlier, summary.sequences
    );
    for r in &summary.recopied {
        println!("copied again, whole: {} ({})", r.table, r.reason);
    }
    print_extension_config(&summary.extension_config);
    if follow {
        println!("the copy read the replication slot's snapshot: every change made on the source since is kept for `supamigrate follow`, then `supamigrate cutover`");
    }
    if summary.retries > 0 {
        println!(
            "retried {} time(s) after a transient failure (see the warnings above)",
            summary.retries
        );
    }
    if !summary.password_hashes.is_empty() {
        println!("password hashes in auth.users:");
        for h in &summary.password_hashes {
            println!("  {}: {}", h.format, h.users);
        }
    }
    match summary.post_data_built {
        Some(0) => println!("post-data: already built"),
        Some(n) => println!("post-data: built {n} statements (indexes overlapping the copy)"),
        None => println!("post-data: skipped (--no-post-data)"),
    }
    Ok(())
}

/// What the copy did with kept extensions' configuration tables.
fn print_extension_config(done: &[supamigrate::copy::extension_config::ConfigCopied]) {
    for c in done {
        match (&c.refused, c.earlier) {
            (Some(why), _) => println!("extension configuration NOT copied: {why}"),
            (None, earlier) => println!(
                "extension {} configuration {}: {} row(s) copied, {} already on the target{}{}",
                c.extension,
                c.relation,
                c.rows_copied,
                c.rows_present,
                c.owner_taken
                    .as_ref()
                    .map(|o| format!(" (the target user took it over from {o})"))
                    .unwrap_or_default(),
                if earlier { " (by an earlier run)" } else { "" }
            ),
        }
    }
}
