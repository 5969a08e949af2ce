//! `supamigrate`: the command-line front end. All logic lives in the
//! `supamigrate` library; this file parses arguments, sets up logging, calls
//! the library and turns errors into messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use supamigrate::config::{self, FileConfig, Flags};
use supamigrate::connect;
use supamigrate::sandbox::{self, Sandbox, SandboxOptions};

/// Move a Supabase project to plain PostgreSQL on AWS RDS, and its Storage to S3.
///
/// Where the databases are comes from, in order of precedence: command-line
/// flags, then environment variables, then the configuration file
/// (--config FILE, or ./supamigrate.toml when present):
///
///   source       --source-url   SUPABASE_DB_URL          [source] url
///
///   target       --target-url   RDS_URL, else RDS_HOST RDS_PORT RDS_DATABASE
///                               RDS_USER RDS_PASSWORD    [target] url, or host/port/database/user/password
///
///   project ref  --project-ref  SUPABASE_PROJECT_REF     project_ref
///
/// Connection strings are libpq URLs or key=value strings; sslmode
/// disable/prefer/require/verify-ca/verify-full and sslrootcert are honoured
/// (RDS: sslmode=verify-full&sslrootcert=/path/to/global-bundle.pem).
///
/// Exit codes: 0 success, 1 failure, 2 bad input (nothing was changed).
#[derive(Debug, Parser)]
#[command(name = "supamigrate", version, verbatim_doc_comment)]
struct Cli {
    /// Configuration file [default: ./supamigrate.toml if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Source (Supabase) connection string; overrides SUPABASE_DB_URL. Prefer the
    /// environment variable: other users can see command-line arguments.
    #[arg(long, global = true, value_name = "URL")]
    source_url: Option<String>,
    /// Target (RDS) connection string; overrides RDS_URL and RDS_*. Prefer the
    /// environment variable: other users can see command-line arguments.
    #[arg(long, global = true, value_name = "URL")]
    target_url: Option<String>,
    /// Supabase project ref; overrides SUPABASE_PROJECT_REF.
    #[arg(long, global = true, value_name = "REF")]
    project_ref: Option<String>,
    /// Less output: warnings and errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Local clusters to try supamigrate on: a Supabase-like source with the TMS
    /// fixture and an RDS-like target.
    Sandbox {
        #[command(subcommand)]
        action: SandboxCommand,
    },
    /// Connect to the source and the target and report what was found.
    Check,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Start the sandbox (creating and loading it the first time) and print
    /// `export` lines for SUPABASE_DB_URL, RDS_URL and friends:
    ///
    ///   eval "$(supamigrate sandbox start)"
    #[command(verbatim_doc_comment)]
    Start {
        /// Sandbox directory [default: $TMPDIR/supamigrate-sandbox-<uid>].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Fixture scale: 1 is a few MB of rows, 100 a few GB; 0 loads the schema only.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Seed of the data generator.
        #[arg(long, default_value_t = sandbox::DEFAULT_SEED)]
        seed: u64,
    },
    /// Stop the sandbox's clusters.
    Stop {
        /// Sandbox directory [default: $TMPDIR/supamigrate-sandbox-<uid>].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also delete the sandbox directory and everything in it.
        #[arg(long)]
        remove: bool,
    },
    /// Tell what runs.
    Status {
        /// Sandbox directory [default: $TMPDIR/supamigrate-sandbox-<uid>].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
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
    // The driver logs statement text at debug level; statements may carry data
    // we must not print. Keep it at info whatever RUST_LOG says.
    let filter = match "tokio_postgres=info".parse() {
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
    let bad_input = lib.is_some_and(|l| l.is_bad_input())
        || e.chain().any(|c| c.downcast_ref::<clap::Error>().is_some());
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sandbox { ref action } => run_sandbox(action).await,
        Command::Check => {
            let file = FileConfig::discover(cli.config.as_deref())?;
            let flags = Flags {
                source_url: cli.source_url.clone(),
                target_url: cli.target_url.clone(),
                project_ref: cli.project_ref.clone(),
            };
            let settings = config::resolve(&flags, &|k| std::env::var(k).ok(), file.as_ref())?;
            check(&settings).await
        }
    }
}

async fn run_sandbox(action: &SandboxCommand) -> anyhow::Result<()> {
    let dir_or_default =
        |d: &Option<PathBuf>| d.clone().unwrap_or_else(SandboxOptions::default_dir);
    match action {
        SandboxCommand::Start { dir, scale, seed } => {
            let opts = SandboxOptions {
                dir: dir_or_default(dir),
                scale: *scale,
                seed: *seed,
            };
            let sb = Sandbox::start(&opts)
                .await
                .with_context(|| format!("starting the sandbox in {}", opts.dir.display()))?;
            tracing::info!(
                dir = %sb.dir().display(),
                source = %sb.source_url(),
                target = %sb.target_url(),
                "sandbox running"
            );
            print!("{}", sb.exports());
            Ok(())
        }
        SandboxCommand::Stop { dir, remove } => {
            let dir = dir_or_default(dir);
            if *remove {
                sandbox::remove_dir(&dir)
                    .with_context(|| format!("removing the sandbox in {}", dir.display()))?;
                tracing::info!(dir = %dir.display(), "sandbox stopped and removed");
            } else {
                let sb = Sandbox::open(&dir)?;
                sb.stop()
                    .with_context(|| format!("stopping the sandbox in {}", dir.display()))?;
                tracing::info!(dir = %dir.display(), "sandbox stopped");
            }
            Ok(())
        }
        SandboxCommand::Status { dir } => {
            let dir = dir_or_default(dir);
            let sb = Sandbox::open(&dir)?;
            println!(
                "sandbox {} (scale {}, seed {})",
                sb.dir().display(),
                sb.scale(),
                sb.seed()
            );
            for c in sb.status() {
                match c.pid {
                    Some(pid) => println!("  {}: running, pid {pid}, port {}", c.role, c.port),
                    None => println!("  {}: stopped", c.role),
                }
            }
            Ok(())
        }
    }
}

async fn check(settings: &config::Settings) -> anyhow::Result<()> {
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
