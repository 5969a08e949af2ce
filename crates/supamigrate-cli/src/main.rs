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
            let source = storage_source(storage, &settings).await?;
            let dest = storage_dest(storage).await?;
            run_run(convert, storage, run, &settings, source, dest).await
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

async fn run_schema(action: &SchemaCommand, settings: &config::Settings) -> anyhow::Result<()> {
    match action {
        SchemaCommand::Export { convert, out } => {
            let src = schema::export::export(settings.source()?, &convert.export_options()).await?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let write = |name: &str, text: &str| {
                let p = out.join(name);
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
            };
            write("pre-data.sql", &src.pre_data)?;
            write("post-data.sql", &src.post_data)?;
            write("source.json", &serde_json(&src)?)?;
            println!(
                "exported schemas {} to {} (pre-data.sql, post-data.sql, source.json)",
                src.schemas.join(", "),
                out.display()
            );
            Ok(())
        }
        SchemaCommand::Convert { convert, out, json } => {
            let target = settings.target().ok();
            if target.is_none() {
                tracing::warn!("no target given: extensions are not checked against it");
            }
            let (_, conv) = schema::export_and_convert(
                settings.source()?,
                target,
                &convert.export_options(),
                convert.convert_options()?,
            )
            .await?;
            std::fs::write(out, conv.sql())
                .with_context(|| format!("writing {}", out.display()))?;
            if *json {
                println!("{}", serde_json(&conv)?);
            } else {
                print!("{}", conv.report_text());
                println!("\nconverted SQL: {}", out.display());
            }
            Ok(())
        }
        SchemaCommand::Apply { convert, section } => {
            let target = settings.target()?;
            let opts = convert.convert_options()?;
            let (_, conv) = schema::export_and_convert(
                settings.source()?,
                Some(target),
                &convert.export_options(),
                opts.clone(),
            )
            .await?;
            if conv.shim {
                require_shim_roles(target).await?;
            }
            let sections: &[Section] = match section.as_str() {
                "pre-data" => &[Section::PreData],
                "post-data" => &[Section::PostData],
                _ => &[Section::PreData, Section::PostData],
            };
            for s in sections {
                let done = schema::apply::apply(target, &conv, *s)
                    .await
                    .with_context(|| format!("applying {} to {target}", s.name()))?;
                match done {
                    schema::apply::Applied::Now(n) => {
                        println!("{}: applied {n} statements", s.name())
                    }
                    schema::apply::Applied::Earlier => {
                        println!("{}: already applied, nothing to do", s.name())
                    }
                }
            }
            let dropped = conv
                .report
                .iter()
                .filter(|r| r.action == schema::convert::Action::Dropped)
                .count();
            let rewritten = conv
                .report
                .iter()
                .filter(|r| r.action == schema::convert::Action::Rewritten)
                .count();
            println!("conversion: {rewritten} rewritten, {dropped} dropped (see `supamigrate schema convert` for the list)");
            Ok(())
        }
    }
}

async fn require_shim_roles(target: &connect::ConnInfo) -> anyhow::Result<()> {
    let client = connect::connect(&target.with_dbname("postgres")).await?;
    let n: i64 = client
        .query_one(
            "select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')",
            &[],
        )
        .await?
        .get(0);
    if n < 3 {
        return Err(supamigrate::Error::invalid_input(
            "--policies shim needs the roles anon, authenticated and service_role on the target; nothing was changed",
        )
        .with_hint("run `supamigrate provision` (with the same --policies) first")
        .into());
    }
    Ok(())
}

async fn run_provision(
    convert: &ConvertArgs,
    secrets_dir: &std::path::Path,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let target = settings.target()?;
    let (src, conv) = schema::export_and_convert(
        settings.source()?,
        Some(target),
        &convert.export_options(),
        convert.convert_options()?,
    )
    .await?;
    let report = provision::provision(
        target,
        &ProvisionOptions {
            app_password: std::env::var("APP_DB_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Password::new),
            ..ProvisionOptions::for_conversion(&convert.app_role, secrets_dir, &src, &conv)
        },
    )
    .await
    .with_context(|| format!("provisioning {target}"))?;
    println!(
        "database {}: {}",
        target.dbname,
        if report.database_created {
            "created"
        } else {
            "exists"
        }
    );
    println!(
        "extensions: {}",
        if report.extensions_created.is_empty() {
            "none created".to_string()
        } else {
            report.extensions_created.join(", ")
        }
    );
    println!(
        "role {}: {}",
        convert.app_role,
        if report.role_created {
            "created"
        } else {
            "exists"
        }
    );
    if let Some(p) = &report.password_file {
        println!("its generated password is in {} (owner-only)", p.display());
    }
    if !report.shim_roles_created.is_empty() {
        println!(
            "RLS shim roles created: {}",
            report.shim_roles_created.join(", ")
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

async fn run_copy(
    convert: &ConvertArgs,
    args: &CopyArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let target = settings.target()?;
    let source = settings.source()?;
    let (src, conv) = schema::export_and_convert(
        source,
        Some(target),
        &convert.export_options(),
        convert.convert_options()?,
    )
    .await?;
    let jobs = default_jobs(args.jobs);
    let summary = supamigrate::copy::copy(
        source,
        target,
        &supamigrate::copy::CopyOptions {
            schemas: src.schemas.clone(),
            jobs,
            plan: supamigrate::copy::PlanOptions::default(),
            users: src.auth_users_columns.is_some(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            post_data: (!args.no_post_data).then(|| conv.post_data.clone()),
        },
    )
    .await
    .with_context(|| format!("copying to {target} (re-run to resume)"))?;
    if args.json {
        println!("{}", serde_json(&summary)?);
        return Ok(());
    }
    println!(
        "{:<44} {:>12} {:>10} {:>8} {:>8}",
        "TABLE", "ROWS", "MB", "SECONDS", "MB/S"
    );
    let (mut rows, mut bytes) = (0i64, 0i64);
    for t in &summary.tables {
        rows += t.rows;
        bytes += t.bytes;
        println!(
            "{:<44} {:>12} {:>10.1} {:>8.2} {:>8.1}",
            t.table,
            t.rows,
            t.bytes as f64 / 1e6,
            t.seconds,
            t.bytes as f64 / 1e6 / t.seconds.max(1e-3)
        );
    }
    println!(
        "{:<44} {:>12} {:>10.1} {:>8.2} {:>8.1}",
        "TOTAL (this run's wall time)",
        rows,
        bytes as f64 / 1e6,
        summary.seconds,
        bytes as f64 / 1e6 / summary.seconds.max(1e-3)
    );
    println!(
        "tasks: {} now, {} done by an earlier run; sequences set: {}",
        summary.tasks_now, summary.tasks_earlier, summary.sequences
    );
    if !summary.password_hashes.is_empty() {
        println!("password hashes in auth.users:");
        for (format, n) in &summary.password_hashes {
            println!("  {format}: {n}");
        }
    }
    match summary.post_data_built {
        Some(0) => println!("post-data: already built"),
        Some(n) => println!("post-data: built {n} statements (indexes overlapping the copy)"),
        None => println!("post-data: skipped (--no-post-data)"),
    }
    Ok(())
}

async fn run_backup(
    opts: &supamigrate::backup::BackupOptions,
    settings: &config::Settings,
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

fn print_table_checks(checks: &[supamigrate::backup::restore::TableCheck]) {
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

async fn run_backup_verify(
    dir: &std::path::Path,
    server: Option<&connect::ConnInfo>,
) -> anyhow::Result<()> {
    use supamigrate::backup::restore;
    let check = match server {
        Some(s) => restore::verify_backup(dir, s).await,
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

async fn run_rollback(
    dir: &std::path::Path,
    yes: bool,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    use supamigrate::backup::{self, restore};
    let source = settings.source()?;
    let (manifest, problems) = backup::check(dir)?;
    if !problems.is_empty() {
        return Err(supamigrate::Error::invalid_input(format!(
            "refusing to roll back from {}: its files do not match the manifest ({}); nothing was changed",
            dir.display(),
            problems.join("; ")
        ))
        .with_hint("use an intact backup; `supamigrate backup verify DIR` checks one")
        .into());
    }
    let client = connect::connect(source).await?;
    let plan = restore::prepare_rollback(&client, dir, &manifest).await?;
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
    for (what, why) in &plan.kept {
        println!("  keep {what}: {why}");
    }
    for t in &plan.not_in_backup {
        println!("  leave {t} alone: it is not in the backup");
    }
    if !yes {
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
            return Err(
                supamigrate::Error::invalid_input("not confirmed; nothing was changed").into(),
            );
        }
    }
    drop(client);
    let client = connect::connect(source).await?;
    restore::execute_rollback(&client, dir, &plan)
        .await
        .context("rolling back (the transaction was rolled back: nothing changed)")?;
    println!("\nHealth check:");
    client
        .query_one("select 1", &[])
        .await
        .context("SELECT 1 on the source")?;
    println!("✓ SELECT 1");
    let checks = restore::check_tables(&client, &manifest.tables).await?;
    print_table_checks(&checks);
    let bad = restore::summarize(&checks);
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

fn storage_options(args: &StorageArgs) -> anyhow::Result<supamigrate::storage::StorageOptions> {
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
fn parse_references(
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

async fn storage_source(
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

async fn storage_dest(args: &StorageArgs) -> anyhow::Result<supamigrate::storage::store::Store> {
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

async fn run_storage(action: &StorageCommand, settings: &config::Settings) -> anyhow::Result<()> {
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

async fn run_preflight(
    convert: &ConvertArgs,
    backup_dir: &std::path::Path,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    use supamigrate::run::preflight::{self, Status};
    let checks = preflight::run(
        settings.source()?,
        settings.target()?,
        backup_dir,
        &convert.export_options(),
        &convert.convert_options()?,
    )
    .await?;
    print_checks(&checks);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("preflight: {failed} check(s) failed");
    }
    println!("preflight: ready");
    Ok(())
}

fn print_checks(checks: &[supamigrate::run::preflight::Check]) {
    use supamigrate::run::preflight::Status;
    for c in checks {
        let mark = match c.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        };
        println!("{mark} {}: {}", c.name, c.detail);
        if c.status != Status::Pass {
            if let Some(h) = &c.hint {
                println!("    fix: {h}");
            }
        }
    }
}

async fn run_plan(
    convert: &ConvertArgs,
    storage: &StorageArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let source = settings.source()?;
    let target = settings.target()?;
    let (src, conv) = schema::export_and_convert(
        source,
        Some(target),
        &convert.export_options(),
        convert.convert_options()?,
    )
    .await?;
    println!("Steps of `supamigrate run`:");
    for (i, s) in supamigrate::run::STEPS.iter().enumerate() {
        println!("  {}. {s}", i + 1);
    }
    println!(
        "\nSchema: {} ({} pre-data, {} post-data statements)",
        src.schemas.join(", "),
        conv.pre_data.len(),
        conv.post_data.len()
    );
    for item in &conv.report {
        println!("  {:?} {}: {}", item.action, item.object, item.reason);
    }
    let opts = storage_options(storage)?;
    let client = connect::connect(source).await?;
    let has_storage: bool = client
        .query_one("select to_regclass('storage.objects') is not null", &[])
        .await?
        .get(0);
    if has_storage {
        let store = storage_source(storage, settings).await?;
        let plan = supamigrate::storage::prepare(&client, &store, &opts).await?;
        println!(
            "\nStorage: {} objects from {}",
            plan.objects.len(),
            store.label()
        );
        for (b, d) in &plan.buckets {
            println!("  bucket {b} → {d}");
        }
        for n in &plan.notes {
            println!("  note: {n}");
        }
        match connect::connect(target).await {
            Ok(t) => {
                let r = supamigrate::storage::plan_rewrite(&t, &plan, &opts).await?;
                print_rewrite_plan(&r);
            }
            Err(_) => println!(
                "  references: {} column(s) will be rewritten once the data is copied",
                opts.references.len()
            ),
        }
    }
    println!("\nNothing was changed.");
    Ok(())
}

async fn run_run(
    convert: &ConvertArgs,
    storage: &StorageArgs,
    run: &RunArgs,
    settings: &config::Settings,
    storage_source: supamigrate::storage::store::Store,
    storage_dest: supamigrate::storage::store::Store,
) -> anyhow::Result<()> {
    let source = settings.source()?;
    let target = settings.target()?;
    let opts = supamigrate::run::RunOptions {
        state_dir: run.state_dir.clone(),
        backup_dir: run.backup_dir.clone(),
        report_dir: run.report_dir.clone(),
        export: convert.export_options(),
        convert: convert.convert_options()?,
        storage: storage_options(storage)?,
        storage_source,
        storage_dest,
        jobs: storage.jobs.max(1),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let outcome = supamigrate::run::run(source, target, &opts, &|step, earlier| {
        if earlier {
            println!("✓ {step} (done by an earlier run)");
        } else {
            println!("→ {step}");
        }
    })
    .await;
    let state = supamigrate::run::load_state(&opts.state_dir, source, target).ok();
    if let Some(st) = &state {
        println!("\nMigration Execution Checklist:");
        print!("{}", supamigrate::report::checklist_text(st));
    }
    let outcome = outcome.context("the run stopped; fix the cause and run again to resume")?;
    let st = &outcome.state;
    let detail = |step: &str, path: &[&str]| {
        let mut v = st.get(step).map(|r| &r.detail);
        for p in path {
            v = v.and_then(|x| x.get(*p));
        }
        v.cloned().unwrap_or(serde_json::Value::Null)
    };
    let tables = detail("users-and-data", &["tables"]);
    let rows: i64 = tables
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["rows"].as_i64()).sum())
        .unwrap_or(0);
    let seconds: f64 = st.done.iter().map(|s| s.seconds).sum();
    println!(
        "\nsummary: {} tables, {rows} rows copied; {} Storage objects ({} references rewritten); verify: {} mismatches; {seconds:.1} s of steps",
        tables.as_array().map(Vec::len).unwrap_or(0),
        detail("storage", &["copy", "objects"]),
        detail("storage", &["rewritten"]),
        detail("verify", &["mismatches"]),
    );
    println!("report: {}", outcome.report_html.display());
    if !outcome.all_green {
        anyhow::bail!("verify did not end green");
    }
    println!("✓ migration complete: verify is all green");
    Ok(())
}

async fn run_demo(dir: &std::path::Path, scale: u32) -> anyhow::Result<()> {
    use supamigrate::storage::store::Store;
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let sandbox_dir = dir.join("sandbox");
    // A previous demo's own folders (its state names another sandbox).
    if sandbox_dir.exists() {
        sandbox::remove_dir(&sandbox_dir).context("removing the previous demo's sandbox")?;
    }
    for sub in ["state", "report", "s3", "backups"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("removing the previous demo's {}", p.display()))?;
        }
    }
    let sb = Sandbox::start(&SandboxOptions {
        dir: sandbox_dir.clone(),
        scale,
        seed: sandbox::DEFAULT_SEED,
    })
    .await
    .context("starting the sandbox")?;
    let settings = config::Settings::new(
        sb.source_url(),
        sb.target_url(),
        Some(sb.project_ref().to_string()),
    );
    let convert = ConvertArgs {
        schemas: Vec::new(),
        exclude_schemas: Vec::new(),
        policies: "shim".into(),
        allow_drop_extension: Vec::new(),
        app_role: "tms_app".into(),
    };
    let storage = StorageArgs {
        source_dir: Some(sb.storage_dir()),
        source_endpoint: None,
        dest_dir: Some(dir.join("s3")),
        bucket_prefix: supamigrate::storage::DEFAULT_BUCKET_PREFIX.into(),
        storage_class: supamigrate::storage::DEFAULT_STORAGE_CLASS.into(),
        references: Vec::new(),
        url_prefix: None,
        no_rewrite: false,
        jobs: 4,
        part_size_mib: 16,
        json: false,
    };
    let run = RunArgs {
        state_dir: dir.join("state"),
        backup_dir: dir.join("backups"),
        report_dir: dir.join("report"),
    };
    println!(
        "sandbox: a Supabase-like source and an RDS-like target (scale {scale}) in {}",
        sandbox_dir.display()
    );
    let result = run_run(
        &convert,
        &storage,
        &run,
        &settings,
        Store::Dir(sb.storage_dir()),
        Store::Dir(dir.join("s3")),
    )
    .await;
    let removed = sb.remove();
    result?;
    removed.context("removing the sandbox")?;
    println!("demo: the sandbox is stopped and removed; the report, backups and copied objects stay in {}", dir.display());
    Ok(())
}

fn print_rewrite_plan(r: &supamigrate::storage::RewritePlan) {
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

fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

async fn run_verify(
    convert: &ConvertArgs,
    args: &VerifyArgs,
    settings: &config::Settings,
) -> anyhow::Result<()> {
    let target = settings.target()?;
    let source = settings.source()?;
    let (src, conv) = schema::export_and_convert(
        source,
        Some(target),
        &convert.export_options(),
        convert.convert_options()?,
    )
    .await?;
    let mut opts = supamigrate::verify::VerifyOptions::new(
        src.schemas.clone(),
        src.auth_users_columns.is_some(),
        conv.pre_data
            .iter()
            .chain(&conv.post_data)
            .cloned()
            .collect(),
    );
    opts.jobs = default_jobs(args.jobs);
    opts.max_rows = args.max_rows;
    opts.chunk_rows = args.chunk_rows;
    if args.storage_rewritten {
        opts.rewritten = parse_references(&args.references)?;
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

fn serde_json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
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
