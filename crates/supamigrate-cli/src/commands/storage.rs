//! `storage plan|copy|verify`, and the Storage options `run` shares.

use crate::*;

pub(crate) fn storage_options(
    args: &StorageArgs,
) -> anyhow::Result<supamigrate::storage::StorageOptions> {
    use supamigrate::storage::StorageOptions;
    let mut opts = StorageOptions::new();
    opts.bucket_prefix = args.bucket_prefix.clone();
    opts.storage_class = Some(args.storage_class.clone()).filter(|s| !s.is_empty());
    opts.part_size = args.part_size_mib.max(5) * 1024 * 1024;
    opts.jobs = args.jobs.max(1);
    opts.url_prefix = args.url_prefix.clone();
    opts.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    opts.references = parse_references(&args.references)?;
    Ok(opts)
}

/// `--reference` values, or the TMS defaults when none is given.
pub(crate) fn parse_references(
    values: &[String],
) -> anyhow::Result<Vec<supamigrate::storage::refs::RefColumn>> {
    use supamigrate::storage::refs::{tms_defaults, RefColumn};
    if values.is_empty() {
        return Ok(tms_defaults());
    }
    Ok(values
        .iter()
        .map(|r| {
            RefColumn::parse(r).ok_or_else(|| {
                supamigrate::Error::invalid_input(format!(
                    "--reference {r:?} is not SCHEMA.TABLE.COLUMN=BUCKET"
                ))
                .with_hint("for example --reference public.shipments.pod_file_path=pod-documents")
            })
        })
        .collect::<Result<_, _>>()?)
}

pub(crate) async fn storage_source(
    args: &StorageArgs,
    settings: &config::Settings,
) -> anyhow::Result<supamigrate::storage::store::Store> {
    use supamigrate::storage::store::{self, Store};
    if let Some(d) = &args.source_dir {
        if !d.is_dir() {
            return Err(supamigrate::Error::invalid_input(format!(
                "--source-dir {} is not a directory",
                d.display()
            ))
            .into());
        }
        return Ok(Store::Dir(d.clone()));
    }
    let endpoint = match (&args.source_endpoint, &settings.project_ref) {
        (Some(e), _) => e.clone(),
        (None, Some(r)) => format!("https://{r}.storage.supabase.co/storage/v1/s3"),
        (None, None) => {
            return Err(supamigrate::Error::invalid_input("no Storage source given")
                .with_hint("set SUPABASE_PROJECT_REF (with SUPABASE_S3_ACCESS_KEY_ID/SUPABASE_S3_SECRET_ACCESS_KEY from the project's Storage S3 settings), or --source-endpoint, or --source-dir")
                .into())
        }
    };
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(ak), Some(sk)) = (
        var("SUPABASE_S3_ACCESS_KEY_ID"),
        var("SUPABASE_S3_SECRET_ACCESS_KEY"),
    ) else {
        return Err(supamigrate::Error::invalid_input(
            "SUPABASE_S3_ACCESS_KEY_ID and SUPABASE_S3_SECRET_ACCESS_KEY are needed to read Supabase Storage",
        )
        .with_hint("create S3 access keys in the Supabase dashboard (Storage → S3 connection)")
        .into());
    };
    let region = var("SUPABASE_S3_REGION").unwrap_or_else(|| "us-east-1".into());
    Ok(store::s3_with_keys(
        &endpoint,
        &ak,
        &sk,
        &region,
        &format!("Supabase Storage ({endpoint})"),
    )
    .await)
}

pub(crate) async fn storage_dest(
    args: &StorageArgs,
) -> anyhow::Result<supamigrate::storage::store::Store> {
    use supamigrate::storage::store::{self, Store, S3};
    if let Some(d) = &args.dest_dir {
        return Ok(Store::Dir(d.clone()));
    }
    let config = store::aws_config().await;
    if config.region().is_none() {
        return Err(
            supamigrate::Error::invalid_input("no AWS region for the destination S3")
                .with_hint("set AWS_REGION (or a region in the AWS_PROFILE), or use --dest-dir")
                .into(),
        );
    }
    let label = match config.endpoint_url() {
        Some(e) => format!("S3 at {e}"),
        None => "S3".to_string(),
    };
    Ok(Store::S3(S3::new(&config, None, &label)))
}

pub(crate) async fn run_storage(
    action: &StorageCommand,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    use supamigrate::storage;
    let (StorageCommand::Plan(args) | StorageCommand::Copy(args) | StorageCommand::Verify(args)) =
        action;
    let opts = storage_options(args)?;
    let source_db = connect::connect(settings.source()?).await?;
    let source = storage_source(args, settings).await?;
    let dest = storage_dest(args).await?;
    let plan = storage::prepare(&source_db, &source, &opts)
        .await
        .context("reading the Storage inventory")?;
    let total: i64 = plan.objects.iter().map(|o| o.size.unwrap_or(0)).sum();
    let describe = |json: bool| {
        if json {
            return;
        }
        println!(
            "{} objects ({:.1} MB) from {} to {}",
            plan.objects.len(),
            total as f64 / 1e6,
            source.label(),
            dest.label()
        );
        for (b, d) in &plan.buckets {
            println!("  bucket {b} → {d}");
        }
        for (b, k) in &plan.missing_in_store {
            println!("  ✗ listed in storage.objects but missing from the store: {b}/{k}");
        }
        for (b, k) in &plan.not_in_table {
            println!("  ✗ in the store but not in storage.objects (not copied): {b}/{k}");
        }
        for n in &plan.notes {
            println!("  note: {n}");
        }
    };
    match action {
        StorageCommand::Verify(_) => {
            describe(args.json);
            let bad = storage::verify(&source, &dest, &plan, &opts).await?;
            if args.json {
                println!("{}", serde_json(&bad)?);
            }
            for m in &bad {
                println!("✗ {}: {}", m.object, m.problem);
            }
            if !bad.is_empty() {
                anyhow::bail!(
                    "{} object(s) differ between the source and the destination",
                    bad.len()
                );
            }
            if !args.json {
                println!(
                    "✓ every object's bytes are equal on both sides ({})",
                    plan.objects.len()
                );
            }
            Ok(())
        }
        StorageCommand::Plan(_) => {
            describe(args.json);
            let rewrite = match settings.target() {
                Ok(t) if !args.no_rewrite => {
                    let target_db = connect::connect(t).await?;
                    Some(storage::plan_rewrite(&target_db, &plan, &opts).await?)
                }
                _ => None,
            };
            if args.json {
                println!(
                    "{}",
                    serde_json(&serde_json::json!({"plan": plan, "rewrite": rewrite}))?
                );
                return Ok(());
            }
            if let Some(r) = &rewrite {
                print_rewrite_plan(r);
            }
            Ok(())
        }
        StorageCommand::Copy(_) => {
            describe(args.json);
            let report = storage::copy(&source, &dest, &plan, &opts).await?;
            let mut rewritten = None;
            let mut remaining = Vec::new();
            let mut unresolved = Vec::new();
            if report.failed.is_empty() && !args.no_rewrite {
                let mut target_db = connect::connect(settings.target()?).await?;
                let r = storage::plan_rewrite(&target_db, &plan, &opts).await?;
                rewritten = Some(storage::rewrite(&mut target_db, &r, &opts).await?);
                remaining =
                    storage::remaining_supabase_references(&target_db, &opts.references).await?;
                unresolved = r.unresolved.clone();
            }
            if args.json {
                println!(
                    "{}",
                    serde_json(&serde_json::json!({
                        "copy": report, "rewritten": rewritten,
                        "unresolved": unresolved, "remaining": remaining
                    }))?
                );
            } else {
                println!(
                    "objects: {} copied, {} already there (skipped), {} failed; {:.1} MB uploaded in {:.1} s ({:.1} MB/s)",
                    report.copied,
                    report.skipped,
                    report.failed.len(),
                    report.bytes_copied as f64 / 1e6,
                    report.seconds,
                    report.mb_per_s()
                );
                if !report.buckets_created.is_empty() {
                    println!("buckets created: {}", report.buckets_created.join(", "));
                }
                for (o, why) in &report.failed {
                    println!("✗ {o}: {why}");
                }
                match rewritten {
                    Some(n) => println!(
                        "references rewritten: {n} row(s) in {}",
                        opts.references
                            .iter()
                            .map(|r| format!("{}.{}", r.table, r.column))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None if args.no_rewrite => println!("references: left alone (--no-rewrite)"),
                    None => println!(
                        "references: not rewritten, because objects failed; re-run to resume"
                    ),
                }
                for (c, k, v) in &unresolved {
                    println!(
                        "✗ {c} [{k}]: {:?} matches no copied object; left as it is",
                        storage::refs::redact_token(v)
                    );
                }
                for (c, n) in &remaining {
                    println!("✗ {c}: {n} value(s) still point at Supabase Storage");
                }
            }
            if !report.failed.is_empty() {
                anyhow::bail!(
                    "{} object(s) failed; re-run to resume (finished objects are skipped)",
                    report.failed.len()
                );
            }
            if !remaining.is_empty() || !unresolved.is_empty() {
                anyhow::bail!("some references could not be rewritten (listed above)");
            }
            Ok(())
        }
    }
}

pub(crate) fn print_rewrite_plan(r: &supamigrate::storage::RewritePlan) {
    println!(
        "references: {} to rewrite, {} already moved, {} other URLs left alone, {} unresolved",
        r.changes.len(),
        r.already_moved,
        r.foreign,
        r.unresolved.len()
    );
    use supamigrate::storage::refs::redact_token;
    for c in &r.changes {
        println!(
            "  {} [{}]: {} → {}",
            c.column,
            c.key,
            redact_token(&c.old),
            c.new
        );
    }
    for (c, k, v) in &r.unresolved {
        println!(
            "  ✗ {c} [{k}]: {:?} matches no object that will be copied",
            redact_token(v)
        );
    }
}
