//! `supamigrate`: the command-line front end. All logic lives in the
//! `supamigrate` library; this crate parses arguments (`args.rs`), maps each
//! command to one library call (`commands/`), shows progress and asks for
//! confirmation (`ui.rs`), and turns errors into messages and exit codes.

// Product code handles every failure as an error: no unwrap, expect or
// panic outside tests (docs/errors-and-logging.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// `println!`/`print!` that end the process quietly when stdout is closed
// (`supamigrate schema convert | head`), as Unix tools do, instead of
// panicking. SIGPIPE itself stays ignored (Rust's default): a peer closing
// a network connection must be an error we handle, not a signal that kills us.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

mod args;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// `verify` found differences: exit code 1 (the report says what).
#[derive(Debug)]
struct Mismatches(usize);

impl std::fmt::Display for Mismatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "verify found {} mismatch(es)", self.0)
    }
}

impl std::error::Error for Mismatches {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verifying = matches!(cli.command, Command::Verify { .. });
    let ui = ui::Ui::new(&cli);
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = commands::dispatch(cli, &ui) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        None => {
            ui.interrupted();
            // Blocking work (a pg_dump child) is not waited for.
            std::process::exit(130)
        }
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) if e.downcast_ref::<Mismatches>().is_some() => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        // verify: 1 means "differences found", so any error is 2.
        Some(Err(e)) if verifying => {
            report(&e);
            ExitCode::from(2)
        }
        Some(Err(e)) => report(&e),
    }
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The driver logs statement text at debug level (statements may carry data
    // we must not print) and server notices at info. Keep it at warn whatever
    // RUST_LOG says.
    let filter = match "tokio_postgres=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // The AWS configuration chain logs every source it tries (IMDS off
    // EC2); a store that cannot be configured is reported by us, once.
    let filter = match "aws_config=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // The replication client logs the error that ends its stream; we report
    // it (or reconnect and say so) where it is handled.
    let filter = match "pgwire_replication=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Prints the error once, with its hint, and picks the exit code.
fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    let lib = e
        .chain()
        .find_map(|c| c.downcast_ref::<supamigrate::Error>());
    if let Some(hint) = lib.and_then(|l| l.hint()) {
        eprintln!("hint: {hint}");
    }
    // Only where a re-run can help: a transient failure (the work done is kept).
    if lib.is_some_and(|l| l.is_retryable()) {
        eprintln!("hint: this can be transient: run the same command again to resume; finished work is kept");
    }
    let bad_input = lib.is_some_and(|l| l.is_bad_input())
        || e.chain().any(|c| c.downcast_ref::<clap::Error>().is_some());
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}
