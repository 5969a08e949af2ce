//! `supamigrate`: the command-line front end. All logic lives in the
//! `supamigrate` library; this file parses arguments, sets up logging, calls
//! the library and turns errors into messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use std::collections::BTreeSet;

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

mod commands;
use commands::{backup::*, run::*, sandbox::*, schema::*, storage::*, verify::*};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use supamigrate::config::{self, FileConfig, Flags};
use supamigrate::connect::{self, Password};
use supamigrate::provision::{self, ProvisionOptions};
use supamigrate::sandbox::{self, Sandbox, SandboxOptions};
use supamigrate::schema::{
    self, apply::Section, export::ExportOptions, ConvertOptions, PolicyMode,
};

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
    /// Export, convert and apply the schema (runbook Phases 1 and 3).
    Schema {
        #[command(subcommand)]
        action: SchemaCommand,
    },
    /// Copy every table, and auth.users into app_users, from one consistent
    /// snapshot of the source, in parallel; then set sequences and build
    /// indexes, constraints and triggers. Run after `provision` and
    /// `schema apply --section pre-data`. Resumes where a killed run stopped.
    Copy {
        #[command(flatten)]
        convert: ConvertArgs,
        #[command(flatten)]
        copy: CopyArgs,
    },
    /// Compare the target with the source (runbook Phase 5): row counts and
    /// content checksums of every table (auth.users against app_users),
    /// narrowed down to the rows and columns that differ; foreign-key orphans;
    /// sequences; the runbook's Step 5.2 queries on both sides; the target's
    /// schema against the conversion. Reads one snapshot per side; changes
    /// nothing. Exit codes: 0 everything matches, 1 a mismatch, 2 an error.
    Verify {
        #[command(flatten)]
        convert: ConvertArgs,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Back up the source (runbook "Pre-Migration Backup"): a folder
    /// OUT/YYYYmmdd_HHMMSS with the custom-format dump of the application
    /// schemas plus auth and storage data, schema.sql, data.sql and a manifest
    /// (versions, file sizes and SHA-256, per-table rows and fingerprints), all
    /// owner-only; OUT/latest points at the newest. `backup verify DIR` proves
    /// a backup restores.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        action: Option<BackupCommand>,
        /// Folder that holds the timestamped backups.
        #[arg(long, value_name = "DIR", default_value = "backups")]
        out: PathBuf,
        /// Application schema to back up (repeatable) [default: every schema that is not Supabase-internal].
        #[arg(long = "schema", value_name = "NAME")]
        schemas: Vec<String>,
        /// Schema to leave out (repeatable).
        #[arg(long = "exclude-schema", value_name = "NAME")]
        exclude_schemas: Vec<String>,
    },
    /// Restore the source from a backup (runbook "Rollback Procedures"):
    /// shows what it will do and asks first; checks the files against the
    /// manifest and refuses if they differ; drops and recreates the
    /// application schemas' objects the login role owns, merges back changed
    /// auth and storage rows, never touches Supabase-owned definitions; all in
    /// one transaction. Then checks every table against the manifest and prints
    /// how to point the application back.
    Rollback {
        /// The backup folder.
        #[arg(long, value_name = "DIR", default_value = "backups/latest")]
        backup: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Supabase Storage to S3 (runbook Step 4.4): `plan` lists what will be
    /// copied and every reference that will be rewritten, changing nothing;
    /// `copy` copies every object (resumable, each verified) and rewrites the
    /// reference columns on the target; `verify` re-reads both sides and
    /// compares every object's bytes.
    Storage {
        #[command(subcommand)]
        action: StorageCommand,
    },
    /// Check everything the migration needs before anything is written:
    /// tools, connections, privileges, extensions, disk, size. ✓/!/✗ with a
    /// fix per ✗; exit 1 when something fails.
    Preflight {
        #[command(flatten)]
        convert: ConvertArgs,
        /// Where backups will go (for the free-space check).
        #[arg(long, value_name = "DIR", default_value = "backups")]
        backup_dir: PathBuf,
    },
    /// Every step of `run` and every object that will be created, rewritten
    /// or dropped, and the Storage objects and references; changes nothing.
    Plan {
        #[command(flatten)]
        convert: ConvertArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// The whole migration: preflight, backup (with a restore test),
    /// provision, schema pre-data, users and data, storage, post-data,
    /// sequences, verify, report. Resumable: a re-run after a failure or a kill
    /// starts at the step that did not finish. Prints the runbook's checklist.
    Run {
        #[command(flatten)]
        convert: ConvertArgs,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Try it all on the local sandbox: start it (scale 1), run the whole
    /// migration with Storage into a local directory, print a summary and the
    /// HTML report's path, stop and remove the sandbox.
    Demo {
        /// Where the report and the copied objects stay.
        #[arg(long, value_name = "DIR", default_value = "supamigrate-demo")]
        dir: PathBuf,
        /// Fixture scale.
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// Create the target database if missing, its extensions, the application
    /// role (APP_DB_USER; password from APP_DB_PASSWORD, or generated into an
    /// owner-only file whose path is printed) and its privileges. Idempotent.
    Provision {
        #[command(flatten)]
        convert: ConvertArgs,
        /// Where a generated password is written (mode 0600).
        #[arg(long, value_name = "DIR", default_value = ".supamigrate")]
        secrets_dir: PathBuf,
    },
}

/// How to copy.
#[derive(Debug, Clone, Args)]
struct CopyArgs {
    /// Concurrent workers [default: the number of cores].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Leave indexes, constraints and triggers to `schema apply --section post-data`.
    #[arg(long)]
    no_post_data: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Restore a backup into a scratch database, compare every table's rows
    /// and fingerprint with the manifest, drop the scratch database. Exit 0
    /// when the backup restores exactly, 1 when it does not.
    Verify {
        /// The backup folder (or its `latest` link).
        dir: PathBuf,
        /// Restore into a throwaway local PostgreSQL cluster instead of a new
        /// database on the target server (RDS_URL).
        #[arg(long)]
        sandbox: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// What would be copied and rewritten; changes nothing.
    Plan(StorageArgs),
    /// Copy the objects, then rewrite the references on the target.
    Copy(StorageArgs),
    /// Compare every object's bytes on both sides (SHA-256).
    Verify(StorageArgs),
}

/// Where objects come from and go to, and how.
#[derive(Debug, Clone, Args)]
struct StorageArgs {
    /// Read objects from this directory (`<dir>/<bucket>/<name>`, a
    /// self-hosted Storage file backend; the sandbox exports it) instead of
    /// Supabase's S3 endpoint.
    #[arg(long, env = "SUPAMIGRATE_STORAGE_DIR", value_name = "DIR")]
    source_dir: Option<PathBuf>,
    /// Supabase Storage's S3 endpoint [default:
    /// https://<project-ref>.storage.supabase.co/storage/v1/s3]; keys from
    /// SUPABASE_S3_ACCESS_KEY_ID and SUPABASE_S3_SECRET_ACCESS_KEY, region from
    /// SUPABASE_S3_REGION.
    #[arg(long, env = "SUPABASE_S3_ENDPOINT", value_name = "URL")]
    source_endpoint: Option<String>,
    /// Write objects to this directory instead of S3 (S3 uses the standard AWS
    /// configuration: AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
    /// AWS_PROFILE, AWS_ENDPOINT_URL_S3 for S3-compatible servers).
    #[arg(long, value_name = "DIR")]
    dest_dir: Option<PathBuf>,
    /// Destination bucket = prefix + Supabase bucket.
    #[arg(long, value_name = "PREFIX", default_value = supamigrate::storage::DEFAULT_BUCKET_PREFIX)]
    bucket_prefix: String,
    /// S3 storage class of the copies.
    #[arg(long, value_name = "CLASS", default_value = supamigrate::storage::DEFAULT_STORAGE_CLASS)]
    storage_class: String,
    /// A column holding Storage paths or URLs, and the bucket of its bare
    /// paths (repeatable) [default: the TMS columns
    /// public.driver_documents.file_path=driver-documents and
    /// public.shipments.pod_file_path=pod-documents].
    #[arg(long = "reference", value_name = "SCHEMA.TABLE.COLUMN=BUCKET")]
    references: Vec<String>,
    /// New references are URL/BUCKET/KEY (e.g. a CloudFront domain) instead of s3://BUCKET/KEY.
    #[arg(long, value_name = "URL")]
    url_prefix: Option<String>,
    /// Copy the objects but leave the references alone.
    #[arg(long)]
    no_rewrite: bool,
    /// Objects copied at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    jobs: usize,
    /// Part size for streaming and multipart uploads, in MiB (at least 5).
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    part_size_mib: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Where `run` keeps its state, backups and report.
#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// The run's state file (run.json) and generated secrets.
    #[arg(long, value_name = "DIR", default_value = ".supamigrate")]
    state_dir: PathBuf,
    /// Backups.
    #[arg(long, value_name = "DIR", default_value = "backups")]
    backup_dir: PathBuf,
    /// The HTML and JSON report.
    #[arg(long, value_name = "DIR", default_value = "supamigrate-report")]
    report_dir: PathBuf,
}

/// How to verify.
#[derive(Debug, Clone, Args)]
struct VerifyArgs {
    /// Concurrent workers, each with a session on both sides [default: the number of cores].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// List at most this many differing rows per table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    max_rows: usize,
    /// Rows per first-level checksum chunk of a table (differing chunks are
    /// then cut 16 ways, down to 512 rows compared row by row).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    chunk_rows: i64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// `storage copy` has rewritten the reference columns: do not compare
    /// them with the source; check that none still points at Supabase Storage.
    #[arg(long)]
    storage_rewritten: bool,
    /// The reference columns (as for `storage copy`) [default: the TMS columns].
    #[arg(
        long = "reference",
        value_name = "SCHEMA.TABLE.COLUMN=BUCKET",
        requires = "storage_rewritten"
    )]
    references: Vec<String>,
    /// The bucket prefix `storage copy` used.
    #[arg(long, value_name = "PREFIX", default_value = supamigrate::storage::DEFAULT_BUCKET_PREFIX)]
    bucket_prefix: String,
    /// The URL prefix `storage copy` used, if any.
    #[arg(long, value_name = "URL", requires = "storage_rewritten")]
    url_prefix: Option<String>,
}

/// `verify` found differences: exit code 1 (the report says what).
#[derive(Debug)]
struct Mismatches(usize);

impl std::fmt::Display for Mismatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "verify found {} mismatch(es)", self.0)
    }
}

impl std::error::Error for Mismatches {}

/// How to read and convert the source schema.
#[derive(Debug, Clone, Args)]
struct ConvertArgs {
    /// Schema to migrate (repeatable) [default: every schema that is not Supabase-internal].
    #[arg(long = "schema", value_name = "NAME")]
    schemas: Vec<String>,
    /// Schema to leave out (repeatable).
    #[arg(long = "exclude-schema", value_name = "NAME")]
    exclude_schemas: Vec<String>,
    /// RLS policies: `shim` keeps RLS and every policy working (auth.uid() and
    /// friends, NOLOGIN anon/authenticated/service_role); `drop` removes RLS, as
    /// the runbook does.
    #[arg(long, value_name = "MODE", default_value = "shim", value_parser = ["shim", "drop"])]
    policies: String,
    /// Let an extension the target lacks be left behind, with what depends on it (repeatable).
    #[arg(long = "allow-drop-extension", value_name = "NAME")]
    allow_drop_extension: Vec<String>,
    /// The application role that gets the privileges anon, authenticated and service_role had.
    #[arg(
        long,
        env = "APP_DB_USER",
        value_name = "ROLE",
        default_value = "app_user"
    )]
    app_role: String,
}

impl ConvertArgs {
    fn export_options(&self) -> ExportOptions {
        ExportOptions {
            schemas: self.schemas.clone(),
            exclude: self.exclude_schemas.clone(),
        }
    }

    fn convert_options(&self) -> anyhow::Result<ConvertOptions> {
        Ok(ConvertOptions {
            policies: PolicyMode::parse(&self.policies)?,
            app_role: self.app_role.clone(),
            target_major: 0,
            available_extensions: None,
            allow_drop_extensions: self
                .allow_drop_extension
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
        })
    }

    /// Exports the source and converts it for the target (read-only): the
    /// first half of copy, verify and plan.
    async fn run<'a>(
        &self,
        settings: &'a config::Settings,
    ) -> anyhow::Result<(
        &'a connect::ConnInfo,
        &'a connect::ConnInfo,
        schema::export::SchemaSource,
        schema::Conversion,
    )> {
        let source = settings.source()?;
        let target = settings.target()?;
        let (src, conv) = schema::export_and_convert(
            source,
            Some(target),
            &self.export_options(),
            self.convert_options()?,
        )
        .await?;
        Ok((source, target, src, conv))
    }
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Dump the application schemas (pre-data and post-data apart) plus what the
    /// catalog adds (triggers on auth.users, extensions, publications…) to DIR.
    Export {
        #[command(flatten)]
        convert: ConvertArgs,
        /// Output directory.
        #[arg(long, value_name = "DIR", default_value = "migration/schema")]
        out: PathBuf,
    },
    /// Convert to standard PostgreSQL: write reviewable SQL and print the report
    /// of every object kept, rewritten or dropped. Changes nothing anywhere.
    Convert {
        #[command(flatten)]
        convert: ConvertArgs,
        /// Where the converted SQL goes.
        #[arg(long, value_name = "FILE", default_value = "03_converted_schema.sql")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply the converted schema to the target (after `provision`). Pre-data in
    /// one transaction, post-data in another; a re-run never applies twice.
    Apply {
        #[command(flatten)]
        convert: ConvertArgs,
        /// Which part: pre-data (before the data), post-data (after), or all.
        #[arg(long, default_value = "all", value_parser = ["pre-data", "post-data", "all"])]
        section: String,
    },
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
    let verifying = matches!(cli.command, Command::Verify { .. });
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Mismatches>().is_some() => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        // verify: 1 means "differences found", so any error is 2.
        Err(e) if verifying => {
            report(&e);
            ExitCode::from(2)
        }
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
    // The driver logs statement text at debug level (statements may carry data
    // we must not print) and server notices at info. Keep it at warn whatever
    // RUST_LOG says.
    let filter = match "tokio_postgres=warn".parse() {
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
        Command::Schema { ref action } => {
            let settings = settings(&cli)?;
            run_schema(action, &settings).await
        }
        Command::Copy {
            ref convert,
            ref copy,
        } => {
            let settings = settings(&cli)?;
            run_copy(convert, copy, &settings).await
        }
        Command::Verify {
            ref convert,
            ref verify,
        } => {
            let settings = settings(&cli)?;
            run_verify(convert, verify, &settings).await
        }
        Command::Backup {
            ref action,
            ref out,
            ref schemas,
            ref exclude_schemas,
        } => match action {
            Some(BackupCommand::Verify { dir, sandbox }) => {
                let server = if *sandbox {
                    None
                } else {
                    Some(settings(&cli)?.target()?.with_dbname("postgres"))
                };
                run_backup_verify(dir, server.as_ref()).await
            }
            None => {
                let settings = settings(&cli)?;
                let opts = supamigrate::backup::BackupOptions {
                    out: out.clone(),
                    schemas: ExportOptions {
                        schemas: schemas.clone(),
                        exclude: exclude_schemas.clone(),
                    },
                };
                run_backup(&opts, &settings).await
            }
        },
        Command::Rollback { ref backup, yes } => {
            let settings = settings(&cli)?;
            run_rollback(backup, yes, &settings).await
        }
        Command::Preflight {
            ref convert,
            ref backup_dir,
        } => {
            let settings = settings(&cli)?;
            run_preflight(convert, backup_dir, &settings).await
        }
        Command::Plan {
            ref convert,
            ref storage,
        } => {
            let settings = settings(&cli)?;
            run_plan(convert, storage, &settings).await
        }
        Command::Run {
            ref convert,
            ref storage,
            ref run,
        } => {
            let settings = settings(&cli)?;
            // A project without Storage needs no Storage configuration;
            // the storage step decides, from the source.
            let stores = match (
                storage_source(storage, &settings).await,
                storage_dest(storage).await,
            ) {
                (Ok(s), Ok(d)) => Ok((s, d)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            run_run(convert, storage, run, &settings, stores).await
        }
        Command::Demo { ref dir, scale } => run_demo(dir, scale).await,
        Command::Storage { ref action } => {
            let settings = settings(&cli)?;
            run_storage(action, &settings).await
        }
        Command::Provision {
            ref convert,
            ref secrets_dir,
        } => {
            let settings = settings(&cli)?;
            run_provision(convert, secrets_dir, &settings).await
        }
    }
}

fn settings(cli: &Cli) -> anyhow::Result<config::Settings> {
    let file = FileConfig::discover(cli.config.as_deref())?;
    let flags = Flags {
        source_url: cli.source_url.clone(),
        target_url: cli.target_url.clone(),
        project_ref: cli.project_ref.clone(),
    };
    Ok(config::resolve(
        &flags,
        &|k| std::env::var(k).ok(),
        file.as_ref(),
    )?)
}

fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

fn serde_json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}
