//! `verify`.

use crate::*;

pub(crate) async fn run_verify(
    convert: &ConvertArgs,
    args: &VerifyArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let (source, target, src, conv) = convert.run(settings).await?;
    let mut opts = supamigrate::verify::VerifyOptions::for_conversion(&src, &conv);
    opts.jobs = default_jobs(args.jobs);
    opts.max_rows = args.max_rows;
    opts.chunk_rows = args.chunk_rows;
    if args.storage_rewritten {
        opts.rewritten = parse_references(&args.references)?;
        opts.rewrite_prefixes = (args.bucket_prefix.clone(), args.url_prefix.clone());
    }
    opts.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = supamigrate::verify::verify(source, target, &opts)
        .await
        .with_context(|| format!("verifying {target} against {source}"))?;
    if args.json {
        println!("{}", serde_json(&report)?);
    } else {
        print!("{}", supamigrate::verify::render::text(&report));
    }
    if let Some(path) = &args.report {
        let md = supamigrate::verify::render::markdown(&report);
        supamigrate::fsutil::write_atomically(path, md.as_bytes(), 0o644)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        if !args.json {
            println!("report written to {}", path.display());
        }
    }
    if report.all_match() {
        Ok(())
    } else {
        Err(Mismatches(report.mismatches()).into())
    }
}
