//! `storage plan|copy|verify`.

use supamigrate::ops;
use supamigrate::plan::refs::redact_token;
use supamigrate::storage::rewrite::RewritePlan;
use supamigrate::storage::ObjectsPlan;

use super::{context, to_json};
use crate::args::{Cli, StorageArgs, StorageCommand};
use crate::ui::Ui;

fn describe(objects: &ObjectsPlan, from: &str, to: &str) {
    println!(
        "{} objects ({:.1} MB) from {from} to {to}",
        objects.objects.len(),
        objects.bytes() as f64 / 1e6,
    );
    for o in &objects.missing_in_store {
        println!("  ✗ listed in storage.objects but missing from the store: {o}");
    }
    for o in &objects.not_in_table {
        println!("  ✗ in the store but not in storage.objects (not copied): {o}");
    }
    for n in &objects.notes {
        println!("  note: {n}");
    }
}

pub fn print_rewrite_plan(r: &RewritePlan) {
    println!(
        "references: {} to rewrite, {} already moved, {} other URLs left alone, {} unresolved",
        r.changes.len(),
        r.already_moved,
        r.foreign,
        r.unresolved.len()
    );
    for c in &r.changes {
        println!(
            "  {} [{}]: {} → {}",
            c.column,
            c.key,
            redact_token(&c.old),
            c.new
        );
    }
    for u in &r.unresolved {
        println!(
            "  ✗ {} [{}]: {:?} matches no object that will be copied",
            u.column, u.key, u.value
        );
    }
}

pub async fn storage(cli: &Cli, action: &StorageCommand, ui: &Ui) -> anyhow::Result<()> {
    let (StorageCommand::Plan(args) | StorageCommand::Copy(args) | StorageCommand::Verify(args)) =
        action;
    let ctx = context(cli, &args.plan, ui)?;
    let stores = args.stores.config(&ctx.settings);
    match action {
        StorageCommand::Plan(_) => {
            let p = ops::storage_plan(&ctx, &stores).await?;
            if args.json {
                println!(
                    "{}",
                    to_json(
                        &serde_json::json!({"plan": p.plan.storage, "objects": p.objects, "rewrite": p.rewrite})
                    )?
                );
                return Ok(());
            }
            describe(&p.objects, &p.labels.0, &p.labels.1);
            for b in &p.plan.storage.buckets {
                println!("  bucket {} → {}", b.id, b.dest);
            }
            for n in &p.plan.storage.notes {
                println!("  note: {n}");
            }
            match (&p.rewrite, p.plan.storage.rewrite.is_some()) {
                (Some(r), _) => print_rewrite_plan(r),
                (None, true) => println!("references: rewritten once the data is on the target"),
                (None, false) => {
                    println!("references: none rewritten (no reference column, or --no-rewrite)")
                }
            }
            Ok(())
        }
        StorageCommand::Copy(_) => copy(&ctx, &stores, args).await,
        StorageCommand::Verify(_) => {
            let (objects, bad) = ops::storage_verify(&ctx, &stores, args.transfer()).await?;
            if args.json {
                println!("{}", to_json(&bad)?);
            } else {
                describe(&objects, "the source", "the destination");
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
                    objects.objects.len()
                );
            }
            Ok(())
        }
    }
}

async fn copy(
    ctx: &ops::Context,
    stores: &supamigrate::storage::config::StoreConfig,
    args: &StorageArgs,
) -> anyhow::Result<()> {
    let s = ops::storage_copy(ctx, stores, args.transfer()).await?;
    if args.json {
        println!("{}", to_json(&s)?);
    } else {
        describe(&s.objects, "the source", "the destination");
        let c = &s.copy;
        println!(
            "objects: {} copied, {} already there (skipped), {} failed; {:.1} MB uploaded in {:.1} s ({:.1} MB/s)",
            c.copied,
            c.skipped,
            c.failed.len(),
            c.bytes_copied as f64 / 1e6,
            c.seconds,
            c.mb_per_s()
        );
        if !c.buckets_created.is_empty() {
            println!("buckets created: {}", c.buckets_created.join(", "));
        }
        match s.rewritten {
            Some(n) => println!("references rewritten: {n} row(s)"),
            None if !c.failed.is_empty() => {
                println!("references: not rewritten, because objects failed; re-run to resume")
            }
            None => println!(
                "references: none rewritten (no reference column in the plan, or --no-rewrite)"
            ),
        }
        for p in s.problems() {
            println!("✗ {p}");
        }
    }
    if !s.copy.failed.is_empty() {
        anyhow::bail!(
            "{} object(s) failed; re-run to resume (finished objects are skipped)",
            s.copy.failed.len()
        );
    }
    if !s.problems().is_empty() {
        anyhow::bail!("some references could not be rewritten (listed above)");
    }
    Ok(())
}
