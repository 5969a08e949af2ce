//! `preflight`, `plan`, `run`, `demo`.

use crate::*;

pub(crate) async fn run_preflight(
    convert: &ConvertArgs,
    backup_dir: &std::path::Path,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    use supamigrate::run::preflight::{self, Status};
    let checks = preflight::run(
        settings.source()?,
        settings.target()?,
        backup_dir,
        &convert.export_options(),
        &convert.convert_options()?,
    )
    .await?;
    print_checks(&checks);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("preflight: {failed} check(s) failed");
    }
    println!("preflight: ready");
    Ok(())
}

pub(crate) fn print_checks(checks: &[supamigrate::run::preflight::Check]) {
    use supamigrate::run::preflight::Status;
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

pub(crate) async fn run_plan(
    convert: &ConvertArgs,
    storage: &StorageArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let (source, target, src, conv) = convert.run(settings).await?;
    println!("Steps of `supamigrate run`:");
    for (i, s) in supamigrate::run::STEPS.iter().enumerate() {
        println!("  {}. {s}", i + 1);
    }
    println!(
        "\nSchema: {} ({} pre-data, {} post-data statements)",
        src.schemas.join(", "),
        conv.pre_data.len(),
        conv.post_data.len()
    );
    for item in &conv.report {
        println!("  {:?} {}: {}", item.action, item.object, item.reason);
    }
    let opts = storage_options(storage)?;
    let client = connect::connect(source).await?;
    let has_storage: bool = client
        .query_one("select to_regclass('storage.objects') is not null", &[])
        .await?
        .get(0);
    if has_storage {
        let store = storage_source(storage, settings).await?;
        let plan = supamigrate::storage::prepare(&client, &store, &opts).await?;
        println!(
            "\nStorage: {} objects from {}",
            plan.objects.len(),
            store.label()
        );
        for (b, d) in &plan.buckets {
            println!("  bucket {b} → {d}");
        }
        for n in &plan.notes {
            println!("  note: {n}");
        }
        match connect::connect(target).await {
            Ok(t) => {
                let r = supamigrate::storage::plan_rewrite(&t, &plan, &opts).await?;
                print_rewrite_plan(&r);
            }
            Err(_) => println!(
                "  references: {} column(s) will be rewritten once the data is copied",
                opts.references.len()
            ),
        }
    }
    println!("\nNothing was changed.");
    Ok(())
}

pub(crate) async fn run_run(
    convert: &ConvertArgs,
    storage: &StorageArgs,
    run: &RunArgs,
    settings: &config::Settings,
    stores: anyhow::Result<(
        supamigrate::storage::store::Store,
        supamigrate::storage::store::Store,
    )>,
) -> anyhow::Result<()> {
    let source = settings.source()?;
    let target = settings.target()?;
    let opts = supamigrate::run::RunOptions {
        state_dir: run.state_dir.clone(),
        backup_dir: run.backup_dir.clone(),
        report_dir: run.report_dir.clone(),
        export: convert.export_options(),
        convert: convert.convert_options()?,
        storage: storage_options(storage)?,
        storage_missing: stores.as_ref().err().map(|e| format!("{e:#}")),
        storage_stores: stores.ok(),
        jobs: storage.jobs.max(1),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let outcome = supamigrate::run::run(source, target, &opts, &|step, earlier| {
        if earlier {
            println!("✓ {step} (done by an earlier run)");
        } else {
            println!("→ {step}");
        }
    })
    .await;
    let state = supamigrate::run::load_state(&opts.state_dir, source, target).ok();
    if let Some(st) = &state {
        println!("\nMigration Execution Checklist:");
        print!("{}", supamigrate::report::checklist_text(st));
    }
    let outcome = outcome.context("the run stopped; fix the cause and run again to resume")?;
    let st = &outcome.state;
    let detail = |step: &str, path: &[&str]| {
        let mut v = st.get(step).map(|r| &r.detail);
        for p in path {
            v = v.and_then(|x| x.get(*p));
        }
        v.cloned().unwrap_or(serde_json::Value::Null)
    };
    let tables = detail("users-and-data", &["tables"]);
    let rows: i64 = tables
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["rows"].as_i64()).sum())
        .unwrap_or(0);
    let seconds: f64 = st.done.iter().map(|s| s.seconds).sum();
    println!(
        "\nsummary: {} tables, {rows} rows copied; {} Storage objects ({} references rewritten); verify: {} mismatches; {seconds:.1} s of steps",
        tables.as_array().map(Vec::len).unwrap_or(0),
        detail("storage", &["copy", "objects"]),
        detail("storage", &["rewritten"]),
        detail("verify", &["mismatches"]),
    );
    println!("report: {}", outcome.report_html.display());
    if !outcome.all_green {
        anyhow::bail!("verify did not end green");
    }
    println!("✓ migration complete: verify is all green");
    Ok(())
}

pub(crate) async fn run_demo(dir: &std::path::Path, scale: u32) -> anyhow::Result<()> {
    use supamigrate::storage::store::Store;
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let sandbox_dir = dir.join("sandbox");
    // A previous demo's own folders (its state names another sandbox).
    if sandbox_dir.exists() {
        sandbox::remove_dir(&sandbox_dir).context("removing the previous demo's sandbox")?;
    }
    for sub in ["state", "report", "s3", "backups"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("removing the previous demo's {}", p.display()))?;
        }
    }
    let sb = Sandbox::start(&SandboxOptions {
        dir: sandbox_dir.clone(),
        scale,
        seed: sandbox::DEFAULT_SEED,
    })
    .await
    .context("starting the sandbox")?;
    let settings = config::Settings::new(
        sb.source_url(),
        sb.target_url(),
        Some(sb.project_ref().to_string()),
    );
    let convert = ConvertArgs {
        schemas: Vec::new(),
        exclude_schemas: Vec::new(),
        policies: "shim".into(),
        allow_drop_extension: Vec::new(),
        app_role: "tms_app".into(),
    };
    let storage = StorageArgs {
        source_dir: Some(sb.storage_dir()),
        source_endpoint: None,
        dest_dir: Some(dir.join("s3")),
        bucket_prefix: supamigrate::storage::DEFAULT_BUCKET_PREFIX.into(),
        storage_class: supamigrate::storage::DEFAULT_STORAGE_CLASS.into(),
        references: Vec::new(),
        url_prefix: None,
        no_rewrite: false,
        jobs: 4,
        part_size_mib: 16,
        json: false,
    };
    let run = RunArgs {
        state_dir: dir.join("state"),
        backup_dir: dir.join("backups"),
        report_dir: dir.join("report"),
    };
    println!(
        "sandbox: a Supabase-like source and an RDS-like target (scale {scale}) in {}",
        sandbox_dir.display()
    );
    let result = run_run(
        &convert,
        &storage,
        &run,
        &settings,
        Ok((Store::Dir(sb.storage_dir()), Store::Dir(dir.join("s3")))),
    )
    .await;
    let removed = sb.remove();
    result?;
    removed.context("removing the sandbox")?;
    println!("demo: the sandbox is stopped and removed; the report, backups and copied objects stay in {}", dir.display());
    Ok(())
}
