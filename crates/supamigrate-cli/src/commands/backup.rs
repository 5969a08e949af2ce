//! `backup`, `backup verify`, `rollback`.

use std::path::Path;

use anyhow::Context as _;
use supamigrate::backup::restore::TableCheck;
use supamigrate::catalog::dump::SchemaSelection;
use supamigrate::config::Settings;

use crate::args::{BackupCommand, Cli};

pub async fn backup(
    cli: &Cli,
    action: Option<&BackupCommand>,
    out: &Path,
    schemas: &[String],
    exclude: &[String],
) -> anyhow::Result<()> {
    match action {
        Some(BackupCommand::Verify { dir, sandbox }) => {
            let server = if *sandbox {
                None
            } else {
                Some(cli.settings()?.target()?.with_dbname("postgres"))
            };
            backup_verify(dir, server.as_ref()).await
        }
        None => {
            let opts = supamigrate::backup::BackupOptions {
                out: out.to_path_buf(),
                schemas: SchemaSelection {
                    schemas: schemas.to_vec(),
                    exclude: exclude.to_vec(),
                },
            };
            create(&opts, &cli.settings()?).await
        }
    }
}

async fn create(
    opts: &supamigrate::backup::BackupOptions,
    settings: &Settings,
) -> anyhow::Result<()> {
    let source = settings.source()?;
    let b = supamigrate::backup::create(source, opts)
        .await
        .with_context(|| format!("backing up {source}"))?;
    let m = &b.manifest;
    println!("backup: {}", b.dir.display());
    println!(
        "  source PostgreSQL {}, schemas {} + data of {}",
        m.source.server_version,
        m.schemas.join(", "),
        m.supabase_schemas.join(", ")
    );
    for f in &m.files {
        println!(
            "  {:<12} {:>12} bytes  sha256 {}",
            f.name, f.bytes, f.sha256
        );
    }
    let rows: i64 = m.tables.iter().map(|t| t.rows).sum();
    println!("  {} tables, {rows} rows fingerprinted", m.tables.len());
    for t in &m.data_not_backed_up {
        println!("  warning: data not backed up: {t}");
    }
    println!(
        "check that it restores: supamigrate backup verify {}",
        b.dir.display()
    );
    Ok(())
}

fn print_table_checks(checks: &[TableCheck]) {
    println!("{:<44} {:>12} {:>12}  STATUS", "TABLE", "BACKUP", "NOW");
    for c in checks {
        println!(
            "{:<44} {:>12} {:>12}  {}",
            c.table.to_string(),
            c.expected_rows,
            c.rows.map(|n| n.to_string()).unwrap_or("missing".into()),
            if c.matches {
                "✓ MATCH"
            } else {
                "✗ DIFFERS"
            }
        );
    }
}

async fn backup_verify(
    dir: &Path,
    server: Option<&supamigrate::connect::ConnInfo>,
) -> anyhow::Result<()> {
    use supamigrate::backup::restore;
    let check = match server {
        Some(s) => restore::verify_backup(dir, s, &Default::default()).await,
        None => restore::verify_backup_locally(dir).await,
    }
    .with_context(|| format!("verifying the backup {}", dir.display()))?;
    for p in &check.file_problems {
        println!("✗ {p}");
    }
    if !check.file_problems.is_empty() {
        anyhow::bail!(
            "the backup in {} is damaged: its files do not match the manifest",
            dir.display()
        );
    }
    print_table_checks(&check.tables);
    for e in &check.restore_errors {
        println!("note: pg_restore: {e}");
    }
    for o in &check.left_out {
        println!("note: not replayed on the restore server (its SQL holds a secret, which a refused statement would put in the server's log): {o}");
    }
    let bad = check.tables.iter().filter(|t| !t.matches).count();
    if bad > 0 {
        anyhow::bail!("{bad} table(s) did not restore to their backed-up content");
    }
    println!(
        "✓ the backup restores: {} tables equal to the manifest",
        check.tables.len()
    );
    Ok(())
}

fn describe_rollback(
    source: &supamigrate::connect::ConnInfo,
    dir: &Path,
    r: &supamigrate::ops::Rollback,
) {
    let (manifest, plan) = (&r.manifest, &r.plan);
    println!(
        "Rollback of {source} from {} (taken {}):",
        dir.display(),
        manifest.created_at
    );
    if (
        manifest.source.host.as_str(),
        manifest.source.port,
        manifest.source.database.as_str(),
    ) != (source.host.as_str(), source.port, source.dbname.as_str())
    {
        println!(
            "  warning: the backup was taken from {}:{}/{}",
            manifest.source.host, manifest.source.port, manifest.source.database
        );
    }
    println!(
        "  drop and recreate {} object(s) in {} from the backup (tables with their rows)",
        plan.restored.len(),
        manifest.schemas.join(", ")
    );
    for t in &plan.merge {
        println!("  merge back the rows of {t} (differs from the backup, or references a table that does)");
    }
    for k in &plan.kept {
        println!("  keep {}: {}", k.object, k.reason);
    }
    for t in &plan.not_in_backup {
        println!("  leave {t} alone: it is not in the backup");
    }
    if r.since.is_empty() {
        println!("  rows written since the backup: none (every table equals it)");
        return;
    }
    println!("  rows written since the backup, which the rollback undoes:");
    println!(
        "    {:<44} {:>10} {:>10} {:>10}",
        "TABLE", "DISCARDED", "PUT BACK", "REVERTED"
    );
    for s in &r.since {
        let changed = s.changed.map_or("?".to_string(), |n| n.to_string());
        println!(
            "    {:<44} {:>10} {:>10} {:>10}",
            s.table.to_string(),
            s.inserted,
            s.deleted,
            changed
        );
        if let Some(why) = &s.not_compared {
            println!("      (not compared row by row: {why})");
        }
    }
    let lost: i64 = r
        .since
        .iter()
        .map(|s| s.inserted + s.changed.unwrap_or(0))
        .sum();
    println!("  {lost} row(s) written since the backup will be lost (inserted rows discarded, changed rows reverted)");
}

fn confirm_rollback(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(supamigrate::Error::invalid_input(
            "rollback needs a confirmation; nothing was changed",
        )
        .with_hint("run it in a terminal to answer, or pass --yes")
        .into());
    }
    print!("Type 'rollback' to go ahead: ");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "rollback" {
        return Err(supamigrate::Error::invalid_input("not confirmed; nothing was changed").into());
    }
    Ok(())
}

pub async fn rollback(settings: &Settings, dir: &Path, yes: bool) -> anyhow::Result<()> {
    let source = settings.source()?;
    let r = supamigrate::ops::rollback_prepare(settings, dir).await?;
    describe_rollback(source, dir, &r);
    confirm_rollback(yes)?;
    let checks = supamigrate::ops::rollback_execute(settings, dir, &r)
        .await
        .context("rolling back (the transaction was rolled back: nothing changed)")?;
    println!("\nHealth check:");
    println!("✓ SELECT 1");
    print_table_checks(&checks);
    let bad = supamigrate::backup::restore::summarize(&checks);
    if !bad.is_empty() {
        anyhow::bail!(
            "after the rollback {} table(s) differ from the backup: {}",
            bad.len(),
            bad.iter()
                .map(|(t, why)| format!("{t} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("✓ every table equals the backup\n");
    println!("Point the application back at Supabase:");
    let mut url = source.clone();
    url.password = None;
    println!(
        "  export DATABASE_URL='{}'   # add the password",
        url.to_url_with_password()
    );
    match &settings.project_ref {
        Some(r) => println!("  export SUPABASE_URL='https://{r}.supabase.co'"),
        None => println!("  export SUPABASE_URL='https://<project-ref>.supabase.co'"),
    }
    Ok(())
}
