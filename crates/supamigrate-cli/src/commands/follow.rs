//! `follow` and `cutover`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::to_json;
use anyhow::Context as _;
use supamigrate::follow::{CutoverOptions, FollowOptions, Until};
use supamigrate::ops::{self, Context};

use crate::args::{CutoverArgs, FollowArgs, StoreArgs};

/// `supamigrate follow`.
pub async fn follow(ctx: &Context, args: &FollowArgs) -> anyhow::Result<()> {
    if args.status {
        let s = supamigrate::follow::status(ctx.source()?, ctx.target()?).await?;
        if args.json {
            println!("{}", to_json(&s)?);
            return Ok(());
        }
        println!(
            "follow on slot {}: {}; applied {} transactions ({} rows) up to {}; {} changed row(s) already found equal on the source (compared while following); the source is at {} ({} bytes behind); last applied {:.1} s ago; {}",
            s.state.slot,
            s.state.state,
            s.state.applied_transactions,
            s.state.applied_rows,
            s.state.applied_lsn,
            s.state.compared_while_following,
            s.source_lsn,
            s.lag_bytes,
            s.seconds_since_applied,
            match (s.slot_exists, s.slot_active) {
                (false, _) => "the slot is gone",
                (true, true) => "a follow is running",
                (true, false) => "no follow is running",
            }
        );
        return Ok(());
    }
    let opts = FollowOptions {
        until: if args.until_caught_up {
            Until::CaughtUp
        } else {
            Until::Cutover
        },
        compare_while_following: !args.no_compare_while_following,
        ..FollowOptions::default()
    };
    let target = ctx.target()?.clone();
    let s = ops::follow(ctx, &opts)
        .await
        .with_context(|| format!("following the source into {target}"))?;
    if args.json {
        println!("{}", to_json(&s)?);
        return Ok(());
    }
    let backlog = match s.caught_up_after_seconds {
        Some(t) => format!(
            "caught up after {t:.1} s (the backlog: max lag {:.2} s), then max lag {:.2} s",
            s.max_lag_seconds, s.max_lag_caught_up_seconds
        ),
        None => format!("never caught up: max lag {:.2} s", s.max_lag_seconds),
    };
    println!(
        "follow: applied {} transactions ({} rows) in {:.1} s ({:.0} rows/s), up to {}; {backlog}; {} already applied skipped; {} reconnect(s){}",
        s.transactions,
        s.rows,
        s.seconds,
        s.rows as f64 / s.seconds.max(1e-3),
        s.applied_lsn,
        s.skipped_transactions,
        s.reconnects,
        if s.reached_cutover {
            "; reached the cutover"
        } else {
            ""
        }
    );
    Ok(())
}

/// `supamigrate cutover`.
pub async fn cutover(ctx: &Context, args: &CutoverArgs, stores: &StoreArgs) -> anyhow::Result<()> {
    if args.abort {
        let roles = ops::cutover_abort(ctx).await?;
        println!(
            "cutover aborted: the source's roles can write again ({}); the replication slot and publication are dropped",
            if roles.is_empty() {
                "none had been made read-only".to_string()
            } else {
                roles.join(", ")
            }
        );
        return Ok(());
    }
    confirm(args.yes, ctx)?;
    let opts = CutoverOptions {
        roles: args.roles.clone(),
        timeout: Some(Duration::from_secs(args.timeout)),
    };
    let config = stores.config(&ctx.settings);
    let configured = config.source_dir.is_some()
        || config.source_endpoint.is_some()
        || config.source_keys.is_some();
    let done = ops::cutover(
        ctx,
        &opts,
        configured.then_some(&config),
        supamigrate::storage::transfer::TransferOptions::default(),
    )
    .await
    .context("cutting over to the target")?;
    let r = &done.report;
    if r.finished_earlier {
        if args.json {
            println!("{}", to_json(&r)?);
        } else {
            println!(
                "the cutover had finished in an earlier run; the replication slot and publication are gone from the source now. Point the application at {}",
                ctx.target()?
            );
        }
        return Ok(());
    }
    print_cutover(r, args.json)?;
    if r.verify.differs() {
        anyhow::bail!(supamigrate::Error::new(
            supamigrate::ErrorKind::Mismatch,
            "the target differs from the source after catching up; the cutover did not finish and the source stays read-only"
        )
        .with_hint("run `supamigrate verify` to see the rows, then `supamigrate cutover` again, or `supamigrate cutover --abort` to give the source its writes back"));
    }
    match &done.storage {
        Some(s) => println!(
            "storage: {} object(s) copied, {} already there; references rewritten: {}",
            s.copy.copied,
            s.copy.skipped,
            s.rewritten.unwrap_or(0)
        ),
        None if !configured => println!(
            "storage: no Storage source given (--source-dir, or the SUPABASE_S3_* keys): objects added during the follow are not copied; run `supamigrate storage copy` now"
        ),
        None => {}
    }
    println!(
        "cutover done in {:.2} s of downtime (first refused write to now). Point the application at {}",
        r.downtime_seconds,
        ctx.target()?
    );
    print_parts(r);
    println!(
        "the source's roles stay read-only; to write there again: ALTER ROLE <role> RESET default_transaction_read_only"
    );
    Ok(())
}

/// Where the downtime went.
fn print_parts(r: &supamigrate::follow::CutoverReport) {
    if r.parts.is_empty() {
        return;
    }
    let parts: Vec<String> = r
        .parts
        .iter()
        .map(|(name, s)| format!("{name} {s:.2} s"))
        .collect();
    println!("downtime by part: {}", parts.join(", "));
}

fn print_cutover(r: &supamigrate::follow::CutoverReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", to_json(&r)?);
    } else {
        if r.resumed {
            println!("continuing the cutover an earlier run began (it was interrupted)");
        }
        println!(
            "writes stopped on the source for: {}; {} session(s) ended",
            r.read_only_roles.join(", "),
            r.sessions_ended
        );
        for s in &r.sessions_remaining {
            println!(
                "still connected (may still write; not migrated): pid {} role {} ({})",
                s.pid, s.role, s.application
            );
        }
        let v = &r.verify;
        println!(
            "caught up ({} transaction(s) applied during the cutover); {} sequence(s) set; the {} table(s) the follow changed compared: {} changed row(s) by content ({} more while following), {} table(s) by count",
            r.transactions_applied, r.sequences, v.tables_compared, v.rows_compared, v.rows_compared_while_following, v.tables_counted
        );
        if !r.matviews_refreshed.is_empty() {
            println!(
                "materialized views refreshed with the follow's changes: {}",
                r.matviews_refreshed.join(", ")
            );
        }
        if !v.analyzed.is_empty() {
            println!(
                "analyzed again (the follow moved their row counts): {}",
                v.analyzed.join(", ")
            );
        }
        for d in &v.count_differences {
            println!(
                "rows differ: {} (source {}, target {})",
                d.table, d.source, d.target
            );
        }
        for d in &v.row_differences {
            println!("row differs: {} where {}: {}", d.table, d.key, d.what);
        }
        if v.rows_differing > v.row_differences.len() as u64 {
            println!("… {} changed row(s) differ in all", v.rows_differing);
        }
        if let Some(app) = &r.app {
            print_quick_app(app);
        }
    }
    Ok(())
}

/// The application's checks in their fast form.
fn print_quick_app(app: &supamigrate::verify::app::quick::Quick) {
    match &app.not_checked {
        Some(why) => println!("application: not checked: {why}"),
        None if app.differences.is_empty() => println!(
            "application: {}; {} (role, table) pair(s) see every row, none, or depend on the user alike (`verify --app` compares each user's rows)",
            if app.principals == 0 {
                "the source has no auth.uid() to compare".to_string()
            } else {
                format!(
                    "auth.uid(), auth.role() and auth.jwt() answer the same for {} principal(s)",
                    app.principals
                )
            },
            app.compared
        ),
        None => {
            println!(
                "application: {} difference(s) on the target (the data is equal; fix them before the application moves):",
                app.differences.len()
            );
            for d in &app.differences {
                println!("  ✗ {d}");
            }
        }
    }
}

fn confirm(yes: bool, ctx: &Context) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(supamigrate::Error::invalid_input(
            "the cutover makes the source read-only for the application, and there is no terminal to ask on; nothing was changed"
        )
        .with_hint("pass --yes, or run on a terminal to answer"));
    }
    print!(
        "Make the application's roles read-only on {} and switch to {}? [y/N] ",
        ctx.source()?,
        ctx.target()?
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        anyhow::bail!(supamigrate::Error::invalid_input(
            "the cutover was not confirmed; nothing was changed"
        ));
    }
    Ok(())
}
