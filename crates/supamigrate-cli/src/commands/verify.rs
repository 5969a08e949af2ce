//! `verify`.

use std::path::Path;

use anyhow::Context as _;
use supamigrate::ops::{self, Context, VerifyRequest};
use supamigrate::verify::checks::Check;

use super::to_json;
use crate::args::{default_jobs, VerifyArgs};
use crate::Mismatches;

/// The application's checks from a `-- check: NAME` file.
pub fn read_checks(path: &Path) -> anyhow::Result<Vec<Check>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        supamigrate::Error::invalid_input(format!("cannot read the checks file {}", path.display()))
            .with_source(e)
            .with_hint("give a file of `-- check: NAME` blocks, one query each")
    })?;
    Ok(supamigrate::verify::checks::parse(&text)?)
}

pub async fn verify(ctx: &Context, args: &VerifyArgs) -> anyhow::Result<()> {
    let req = VerifyRequest {
        jobs: default_jobs(args.jobs),
        max_rows: args.max_rows,
        chunk_rows: args.chunk_rows,
        storage_rewritten: args.storage_rewritten,
        checks: match &args.checks {
            Some(f) => read_checks(f)?,
            None => Vec::new(),
        },
    };
    let (source, target) = (ctx.source()?.clone(), ctx.target()?.clone());
    let report = ops::verify(ctx, &req)
        .await
        .with_context(|| format!("verifying {target} against {source}"))?;
    if args.json {
        println!("{}", to_json(&report)?);
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
