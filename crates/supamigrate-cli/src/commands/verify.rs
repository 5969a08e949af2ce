//! `verify`.

use std::path::Path;

use anyhow::Context as _;
use supamigrate::ops::{self, AppChecks, Context, VerifyRequest};
use supamigrate::verify::app::logins::LoginOutcome;
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
    if let Some(email) = &args.login {
        return login(ctx, email, args.json).await;
    }
    let req = VerifyRequest {
        jobs: default_jobs(args.jobs),
        max_rows: args.max_rows,
        chunk_rows: args.chunk_rows,
        storage_rewritten: args.storage_rewritten,
        checks: match &args.checks {
            Some(f) => read_checks(f)?,
            None => Vec::new(),
        },
        app: args.app.then_some(AppChecks {
            users: args.users,
            statements: args.statements,
        }),
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

/// The password for `--login`: SUPAMIGRATE_LOGIN_PASSWORD, or asked for
/// without echo.
fn login_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SUPAMIGRATE_LOGIN_PASSWORD") {
        return Ok(p);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(supamigrate::Error::invalid_input(
            "verify --login needs the user's password: nothing was checked",
        )
        .with_hint("set SUPAMIGRATE_LOGIN_PASSWORD, or run it in a terminal to be asked")
        .into());
    }
    Ok(rpassword::prompt_password(
        "the user's password (not echoed): ",
    )?)
}

fn outcome_text(o: &LoginOutcome) -> String {
    match o {
        LoginOutcome::Matches { scheme } => {
            format!("the password matches the stored hash ({scheme})")
        }
        LoginOutcome::WrongPassword { scheme } => {
            format!("the password does NOT match the stored hash ({scheme})")
        }
        LoginOutcome::NotChecked { scheme } => {
            format!("not checked: the stored hash is {scheme}, not bcrypt; verify it with an {scheme} library")
        }
        LoginOutcome::NoPassword => "the user has no password (signs in another way)".into(),
        LoginOutcome::NoSuchUser => "no user with this email".into(),
    }
}

async fn login(ctx: &Context, email: &str, json: bool) -> anyhow::Result<()> {
    let password = login_password()?;
    let r = ops::verify_login(ctx, email, &password)
        .await
        .context("checking a login")?;
    if json {
        println!("{}", to_json(&r)?);
    } else {
        println!("login {email} on the source: {}", outcome_text(&r.source));
        println!("login {email} on the target: {}", outcome_text(&r.target));
        if r.proven() {
            println!("verify --login: the user can sign in with this password on both sides");
        }
    }
    if r.proven() {
        Ok(())
    } else {
        Err(Mismatches(1).into())
    }
}
