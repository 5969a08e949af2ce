//! `check`, `schema export|convert|apply`, `provision`, `copy`.

use crate::*;

pub(crate) async fn run_schema(
    action: &SchemaCommand,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    match action {
        SchemaCommand::Export { convert, out } => {
            let src = schema::export::export(settings.source()?, &convert.export_options()).await?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let write = |name: &str, text: &str| {
                let p = out.join(name);
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
            };
            write("pre-data.sql", &src.pre_data)?;
            write("post-data.sql", &src.post_data)?;
            write("source.json", &serde_json(&src)?)?;
            println!(
                "exported schemas {} to {} (pre-data.sql, post-data.sql, source.json)",
                src.schemas.join(", "),
                out.display()
            );
            Ok(())
        }
        SchemaCommand::Convert { convert, out, json } => {
            let target = settings.target().ok();
            if target.is_none() {
                tracing::warn!("no target given: extensions are not checked against it");
            }
            let (_, conv) = schema::export_and_convert(
                settings.source()?,
                target,
                &convert.export_options(),
                convert.convert_options()?,
            )
            .await?;
            std::fs::write(out, conv.sql())
                .with_context(|| format!("writing {}", out.display()))?;
            if *json {
                println!("{}", serde_json(&conv)?);
            } else {
                print!("{}", conv.report_text());
                println!("\nconverted SQL: {}", out.display());
            }
            Ok(())
        }
        SchemaCommand::Apply { convert, section } => {
            let target = settings.target()?;
            let opts = convert.convert_options()?;
            let (_, conv) = schema::export_and_convert(
                settings.source()?,
                Some(target),
                &convert.export_options(),
                opts.clone(),
            )
            .await?;
            if conv.shim {
                require_shim_roles(target).await?;
            }
            let sections: &[Section] = match section.as_str() {
                "pre-data" => &[Section::PreData],
                "post-data" => &[Section::PostData],
                _ => &[Section::PreData, Section::PostData],
            };
            for s in sections {
                let done = schema::apply::apply(target, &conv, *s)
                    .await
                    .with_context(|| format!("applying {} to {target}", s.name()))?;
                match done {
                    schema::apply::Applied::Now(n) => {
                        println!("{}: applied {n} statements", s.name())
                    }
                    schema::apply::Applied::Earlier => {
                        println!("{}: already applied, nothing to do", s.name())
                    }
                }
            }
            let dropped = conv
                .report
                .iter()
                .filter(|r| r.action == schema::convert::Action::Dropped)
                .count();
            let rewritten = conv
                .report
                .iter()
                .filter(|r| r.action == schema::convert::Action::Rewritten)
                .count();
            println!("conversion: {rewritten} rewritten, {dropped} dropped (see `supamigrate schema convert` for the list)");
            Ok(())
        }
    }
}

pub(crate) async fn require_shim_roles(target: &connect::ConnInfo) -> anyhow::Result<()> {
    let client = connect::connect(&target.with_dbname("postgres")).await?;
    let n: i64 = client
        .query_one(
            "select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')",
            &[],
        )
        .await?
        .get(0);
    if n < 3 {
        return Err(supamigrate::Error::invalid_input(
            "--policies shim needs the roles anon, authenticated and service_role on the target; nothing was changed",
        )
        .with_hint("run `supamigrate provision` (with the same --policies) first")
        .into());
    }
    Ok(())
}

pub(crate) async fn run_provision(
    convert: &ConvertArgs,
    secrets_dir: &std::path::Path,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let target = settings.target()?;
    let (src, conv) = schema::export_and_convert(
        settings.source()?,
        Some(target),
        &convert.export_options(),
        convert.convert_options()?,
    )
    .await?;
    let report = provision::provision(
        target,
        &ProvisionOptions {
            app_password: std::env::var("APP_DB_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Password::new),
            ..ProvisionOptions::for_conversion(&convert.app_role, secrets_dir, &src, &conv)
        },
    )
    .await
    .with_context(|| format!("provisioning {target}"))?;
    println!(
        "database {}: {}",
        target.dbname,
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
    println!(
        "role {}: {}",
        convert.app_role,
        if report.role_created {
            "created"
        } else {
            "exists"
        }
    );
    if let Some(p) = &report.password_file {
        println!("its generated password is in {} (owner-only)", p.display());
    }
    if !report.shim_roles_created.is_empty() {
        println!(
            "RLS shim roles created: {}",
            report.shim_roles_created.join(", ")
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

pub(crate) async fn run_copy(
    convert: &ConvertArgs,
    args: &CopyArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let (source, target, src, conv) = convert.run(settings).await?;
    let jobs = default_jobs(args.jobs);
    let summary = supamigrate::copy::copy(
        source,
        target,
        &supamigrate::copy::CopyOptions {
            schemas: src.schemas.clone(),
            jobs,
            plan: supamigrate::copy::PlanOptions::default(),
            users: src.auth_users_columns.is_some(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            post_data: (!args.no_post_data).then(|| conv.post_data.clone()),
        },
    )
    .await
    .with_context(|| format!("copying to {target} (re-run to resume)"))?;
    if args.json {
        println!("{}", serde_json(&summary)?);
        return Ok(());
    }
    println!(
        "{:<44} {:>12} {:>10} {:>8} {:>8}",
        "TABLE", "ROWS", "MB", "SECONDS", "MB/S"
    );
    let (mut rows, mut bytes) = (0i64, 0i64);
    for t in &summary.tables {
        rows += t.rows;
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
        rows,
        bytes as f64 / 1e6,
        summary.seconds,
        bytes as f64 / 1e6 / summary.seconds.max(1e-3)
    );
    println!(
        "tasks: {} now, {} done by an earlier run; sequences set: {}",
        summary.tasks_now, summary.tasks_earlier, summary.sequences
    );
    if !summary.password_hashes.is_empty() {
        println!("password hashes in auth.users:");
        for (format, n) in &summary.password_hashes {
            println!("  {format}: {n}");
        }
    }
    match summary.post_data_built {
        Some(0) => println!("post-data: already built"),
        Some(n) => println!("post-data: built {n} statements (indexes overlapping the copy)"),
        None => println!("post-data: skipped (--no-post-data)"),
    }
    Ok(())
}

pub(crate) async fn check(settings: &config::Settings) -> anyhow::Result<()> {
    let source = settings.source()?;
    let target = settings.target()?;
    let mut failed = false;
    for (side, info) in [("source", source), ("target", target)] {
        match connect::probe(info).await {
            Ok(p) => {
                println!("{side}: {info}");
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
                println!("{side}: {info}");
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
