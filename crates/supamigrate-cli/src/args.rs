//! The command line: every command and flag (clap derive; the doc comments
//! are the help), and their mapping to the library's option structs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use supamigrate::config::{self, FileConfig, Flags, Settings};
use supamigrate::plan::refs::RefColumn;
use supamigrate::plan::{GeneratedChoice, PlanOverrides, PolicyMode, RestrictiveChoice, Section};
use supamigrate::storage::config::StoreConfig;
use supamigrate::storage::transfer::TransferOptions;

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
/// Every command works from one migration plan: `supamigrate plan` makes it
/// (and shows it), `run` and `provision` show it and ask before the first
/// write, and later commands read it back from the target.
///
/// Exit codes: 0 success, 1 failure, 2 bad input (nothing was changed).
#[derive(Debug, Parser)]
#[command(name = "supamigrate", version, verbatim_doc_comment)]
pub struct Cli {
    /// Configuration file [default: ./supamigrate.toml if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Source (Supabase) connection string; overrides SUPABASE_DB_URL. Prefer the
    /// environment variable: other users can see command-line arguments.
    #[arg(long, global = true, value_name = "URL")]
    pub source_url: Option<String>,
    /// Target (RDS) connection string; overrides RDS_URL and RDS_*. Prefer the
    /// environment variable: other users can see command-line arguments.
    #[arg(long, global = true, value_name = "URL")]
    pub target_url: Option<String>,
    /// Supabase project ref; overrides SUPABASE_PROJECT_REF.
    #[arg(long, global = true, value_name = "REF")]
    pub project_ref: Option<String>,
    /// The source is plain PostgreSQL, not a Supabase project (no Auth, no
    /// Storage). Without it, a source without auth.users is refused: most
    /// often the URLs are swapped.
    #[arg(long, global = true)]
    pub plain_source: bool,
    /// The migration's state folder: the saved plan (plan.json), run's
    /// journal (run.json), generated secrets.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = ".supamigrate"
    )]
    pub state_dir: PathBuf,
    /// Less output: warnings and errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Local clusters to try supamigrate on: a Supabase-like source with the TMS
    /// fixture and an RDS-like target.
    #[cfg(feature = "sandbox")]
    Sandbox {
        #[command(subcommand)]
        action: SandboxCommand,
    },
    /// Connect to the source and the target and report what was found.
    Check,
    /// The migration plan: every step, every object kept, rewritten, dropped
    /// or added with why, what provisioning creates, what is copied (sizes,
    /// predicted time), Storage buckets and references. Changes nothing on
    /// either side; saves the plan in the state folder for `run`. When the
    /// target is being migrated already, shows the plan it is migrated by.
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the whole plan as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the whole plan, as JSON, to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check everything the migration needs before anything is written:
    /// tools, connections, privileges, extensions, disk, size. ✓/!/✗ with a
    /// fix per ✗; exit 1 when something fails.
    Preflight {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        stores: StoreArgs,
        /// Where backups will go (for the free-space check).
        #[arg(long, value_name = "DIR", default_value = "backups")]
        backup_dir: PathBuf,
        /// Database workers `run` will use (sessions checked on both sides)
        /// [default: the number of cores].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
        jobs: Option<u16>,
        /// Database workers for the copy and post-data [default: --jobs].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
        copy_jobs: Option<u16>,
        /// Objects listed in storage.objects but missing from the Storage
        /// source are a warning, as `run --allow-missing-objects` takes them.
        #[arg(long)]
        allow_missing_objects: bool,
    },
    /// Export, convert and apply the schema (runbook Phases 1 and 3).
    Schema {
        #[command(subcommand)]
        action: SchemaCommand,
    },
    /// Create the target database if missing, supamigrate's state in it (with
    /// the plan), its extensions, the application role (APP_DB_USER; password
    /// from APP_DB_PASSWORD, or generated into an owner-only file whose path is
    /// printed) and its privileges. Shows the plan and asks first when the
    /// target has none yet. Idempotent.
    Provision {
        #[command(flatten)]
        plan: PlanArgs,
        /// Where a generated password is written (mode 0600) [default: the state folder].
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
        /// Go ahead without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Copy every table, and auth.users into app_users, from one consistent
    /// snapshot of the source, in parallel; then set sequences and build
    /// indexes, constraints and triggers. Run after `provision` and
    /// `schema apply --section pre-data`. Resumes where a killed run stopped.
    Copy {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        copy: CopyArgs,
    },
    /// Apply the source's changes since a `copy --follow` to the target, one
    /// source transaction at a time in commit order, until `cutover` (or,
    /// with --until-caught-up, until it has what the source had written
    /// when it started). Resumes exactly where a killed or disconnected
    /// follow stopped; rides out a source restart.
    Follow {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Switch the application to the target: make its roles read-only on the
    /// source (ending their sessions and naming those that remain), wait
    /// until the target has applied everything up to that moment, set the
    /// sequences, compare every table's rows by count, drop the replication
    /// slot and publication, and report the downtime. Asks first.
    Cutover {
        #[command(flatten)]
        cutover: CutoverArgs,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Compare the target with the source (runbook Phase 5): row counts and
    /// content checksums of every table (auth.users against app_users),
    /// narrowed down to the rows and columns that differ; foreign-key orphans;
    /// sequences; the application's own checks (--checks); the target's
    /// schema against the plan. Reads one snapshot per side; changes nothing.
    /// Exit codes: 0 everything matches, 1 a mismatch, 2 an error.
    Verify {
        #[command(flatten)]
        plan: PlanArgs,
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
    /// plan's reference columns on the target; `verify` re-reads both sides and
    /// compares every object's bytes.
    Storage {
        #[command(subcommand)]
        action: StorageCommand,
    },
    /// The RDS instance (runbook Step 2.1), through the AWS API with the
    /// standard AWS configuration (AWS_REGION, AWS_PROFILE,
    /// AWS_ENDPOINT_URL_RDS): `plan` shows every call `create` would make
    /// and why, changing nothing; `create` makes (or reuses) the instance and
    /// its parameter group and writes the target configuration; `status`;
    /// `settings` switches the bulk-load parameters on or off; `delete`.
    Rds {
        #[command(subcommand)]
        action: RdsCommand,
    },
    /// The whole migration: preflight (and the plan), the plan shown and
    /// confirmed, backup (with a restore test), provision, schema pre-data,
    /// users and data, storage, post-data, sequences, verify, report.
    /// Resumable: a re-run after a failure or a kill starts at the step that
    /// did not finish. Prints the runbook's checklist.
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        stores: StoreArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(
            flatten,
            next_help_heading = "The RDS instance (with --create-instance)"
        )]
        instance: RunInstanceArgs,
    },
    /// Try it all on the local sandbox: start it (scale 1) and a local S3
    /// server (moto), run the whole migration with Storage uploaded to it,
    /// print a summary and the HTML report's path, stop and remove both.
    #[cfg(feature = "sandbox")]
    Demo {
        /// Where the report and backups stay.
        #[arg(long, value_name = "DIR", default_value = "supamigrate-demo")]
        dir: PathBuf,
        /// Fixture scale.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// The target's PostgreSQL major: 15 (the default), 16, 17 or 18.
        #[arg(long, value_name = "N")]
        target_version: Option<u32>,
    },
}

/// RLS policies on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policies {
    /// Keep RLS and every policy working: auth.uid() and friends, NOLOGIN
    /// anon/authenticated/service_role.
    Shim,
    /// Remove RLS and the policies, as the runbook does.
    Drop,
}

/// The choices a plan depends on. Given to a command that finds a plan made
/// earlier, each must agree with it; left out, the plan's choice holds.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArgs {
    /// Schema to migrate (repeatable) [default: every schema that is not Supabase-internal].
    #[arg(long = "schema", value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Schema to leave out (repeatable).
    #[arg(long = "exclude-schema", value_name = "NAME")]
    pub exclude_schemas: Vec<String>,
    /// RLS policies [default: shim].
    #[arg(long, value_name = "MODE")]
    pub policies: Option<Policies>,
    /// Let an extension the target lacks be left behind, with what depends on it (repeatable).
    #[arg(long = "allow-drop-extension", value_name = "NAME")]
    pub allow_drop_extension: Vec<String>,
    /// The application role that gets the privileges anon, authenticated and
    /// service_role had [default: app_user].
    #[arg(long, env = "APP_DB_USER", value_name = "ROLE")]
    pub app_role: Option<String>,
    /// Destination bucket = prefix + Supabase bucket [default: <project ref>-, else supabase-].
    #[arg(long, value_name = "PREFIX")]
    pub bucket_prefix: Option<String>,
    /// S3 storage class of the copies [default: STANDARD_IA; "" for the store's default].
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// A column holding Storage paths or URLs, and the bucket of its bare
    /// paths (repeatable). Without any, objects are copied and no column is
    /// rewritten.
    #[arg(long = "reference", value_name = "SCHEMA.TABLE.COLUMN=BUCKET")]
    pub references: Vec<String>,
    /// New references are URL/BUCKET/KEY (e.g. a CloudFront domain) instead of s3://BUCKET/KEY.
    #[arg(long, value_name = "URL")]
    pub url_prefix: Option<String>,
    /// Copy the objects but leave the references alone.
    #[arg(long)]
    pub no_rewrite: bool,
    /// Stored generated columns whose rows no longer match their expression:
    /// recompute them on the target, or keep the source's values in a plain column.
    #[arg(long, value_name = "CHOICE")]
    pub stale_generated: Option<StaleGenerated>,
    /// Leave ANALYZE for later: the copy gathers no planner statistics
    /// (tables copied whole still go in with COPY FREEZE).
    #[arg(long)]
    pub no_analyze: bool,
    /// A RESTRICTIVE policy that uses what the target will not have (an MFA
    /// check reading auth.mfa_factors): refuse the plan and name it, or keep
    /// it failing closed (it denies every row to its roles until you
    /// rewrite it) [default: refuse].
    #[arg(long, value_name = "CHOICE")]
    pub restrictive: Option<Restrictive>,
    /// Let this RESTRICTIVE policy go although the target then lets through
    /// what it stopped (SCHEMA.TABLE.POLICY or the policy's name; repeatable).
    #[arg(long = "allow-wider-access", value_name = "POLICY")]
    pub allow_wider_access: Vec<String>,
}

/// What becomes of a restrictive policy the target cannot keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Restrictive {
    /// Stop before any write, naming the policy and what it needs.
    Refuse,
    /// Keep it, denying every row to its roles.
    FailClosed,
}

/// What to do with stale stored generated columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StaleGenerated {
    /// The target computes the values again: the stale rows change.
    Recompute,
    /// The column becomes a plain column holding the source's values.
    Keep,
}

impl PlanArgs {
    /// The choices given.
    pub fn overrides(&self) -> anyhow::Result<PlanOverrides> {
        let given = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let references = if self.references.is_empty() {
            None
        } else {
            Some(parse_references(&self.references)?)
        };
        Ok(PlanOverrides {
            schemas: given(&self.schemas),
            exclude_schemas: given(&self.exclude_schemas),
            policies: self.policies.map(|p| match p {
                Policies::Shim => PolicyMode::Shim,
                Policies::Drop => PolicyMode::Drop,
            }),
            app_role: self.app_role.clone(),
            allow_drop_extensions: (!self.allow_drop_extension.is_empty()).then(|| {
                self.allow_drop_extension
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
            }),
            bucket_prefix: self.bucket_prefix.clone(),
            storage_class: self.storage_class.clone(),
            references,
            url_prefix: self.url_prefix.clone(),
            no_rewrite: self.no_rewrite.then_some(true),
            split: None,
            stale_generated: self.stale_generated.map(|g| match g {
                StaleGenerated::Recompute => GeneratedChoice::Recompute,
                StaleGenerated::Keep => GeneratedChoice::Keep,
            }),
            no_analyze: self.no_analyze.then_some(true),
            restrictive: self.restrictive.map(|r| match r {
                Restrictive::Refuse => RestrictiveChoice::Refuse,
                Restrictive::FailClosed => RestrictiveChoice::FailClosed,
            }),
            allow_wider_access: (!self.allow_wider_access.is_empty())
                .then(|| self.allow_wider_access.iter().cloned().collect()),
        })
    }
}

/// `--reference` values.
fn parse_references(values: &[String]) -> anyhow::Result<Vec<RefColumn>> {
    Ok(values
        .iter()
        .map(|r| {
            RefColumn::parse(r).ok_or_else(|| {
                supamigrate::Error::invalid_input(format!(
                    "--reference {r:?} is not SCHEMA.TABLE.COLUMN=BUCKET"
                ))
                .with_hint("for example --reference public.documents.file_path=documents")
            })
        })
        .collect::<Result<_, _>>()?)
}

/// How to copy.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// Concurrent workers, each with a session on both sides (1–256, and no
    /// more than both servers have connections free) [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub jobs: Option<u16>,
    /// Leave indexes, constraints and triggers to `schema apply --section post-data`.
    #[arg(long)]
    pub no_post_data: bool,
    /// Copy this table again, whole, in one transaction (schema.table, the
    /// source's or the target's name; repeatable). Tables whose source
    /// changed since an interrupted copy are copied again without asking.
    #[arg(long, value_name = "TABLE")]
    pub recopy: Vec<String>,
    /// Create a logical replication slot (and a publication of the copied
    /// tables) on the source first, and copy under its snapshot, so that
    /// `supamigrate follow` then applies every change made since: no gap, no
    /// overlap. Needs wal_level = logical and a user with REPLICATION on a
    /// direct (not pooled) connection. A follow copy that was interrupted
    /// starts over under a new slot.
    #[arg(long)]
    pub follow: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to follow.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Stop once everything the source had written when the follow started
    /// is applied, instead of at the cutover.
    #[arg(long)]
    pub until_caught_up: bool,
    /// Do not compare the changed rows with the source while following
    /// (fewer reads on the source; the cutover then compares them all, and
    /// its downtime grows with the follow's length).
    #[arg(long)]
    pub no_compare_while_following: bool,
    /// Print the follow's state (position applied, lag behind the source)
    /// and stop; changes nothing.
    #[arg(long)]
    pub status: bool,
    /// Print the summary (or the status) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to cut over.
#[derive(Debug, Clone, Args)]
pub struct CutoverArgs {
    /// Make only this role read-only on the source (repeatable) [default:
    /// every login role that is not a superuser].
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Seconds to wait for the target to catch up.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
    /// Give the source its writes back and end the follow (drops the slot
    /// and publication; a later follow needs a fresh `copy --follow`).
    #[arg(long)]
    pub abort: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to verify.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Concurrent workers, each with a session on both sides (1–256, and no
    /// more than both servers have connections free) [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub jobs: Option<u16>,
    /// List at most this many differing rows per table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_rows: usize,
    /// Rows per first-level checksum chunk of a table (differing chunks are
    /// then cut 16 ways, down to 512 rows compared row by row).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub chunk_rows: i64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// `storage copy` has rewritten the plan's reference columns: each value
    /// must be the new location of the source's; none may still point at
    /// Supabase Storage [default: as the target records it, once the
    /// Storage step rewrote them].
    #[arg(long)]
    pub storage_rewritten: bool,
    /// The application's own integrity queries: a file of `-- check: NAME`
    /// blocks, one query each, run on both sides and compared row for row.
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// Also prove the application works on the target: a census of how
    /// users sign in, each user's access (RLS) for anon, service_role and a
    /// sample of users, views and functions, the plans of the source's
    /// busiest reads; writes the application's new settings to
    /// `app-settings.md` in the state folder. Read-only on both sides.
    #[arg(long)]
    pub app: bool,
    /// With --app: signed-up users whose access is compared (besides anon
    /// and service_role).
    #[arg(long, value_name = "N", default_value_t = 20, requires = "app")]
    pub users: usize,
    /// With --app: statements from the source's pg_stat_statements whose
    /// plans are compared.
    #[arg(long, value_name = "N", default_value_t = 50, requires = "app")]
    pub statements: usize,
    /// Check one user's password against the stored hash on both sides, in
    /// this process (bcrypt); nothing else is verified. The password is read
    /// from SUPAMIGRATE_LOGIN_PASSWORD or asked for; never give it as an
    /// argument.
    #[arg(long, value_name = "EMAIL", conflicts_with_all = ["app", "checks"])]
    pub login: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
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
pub enum StorageCommand {
    /// What would be copied and rewritten; changes nothing.
    Plan(StorageArgs),
    /// Copy the objects, then rewrite the references on the target.
    Copy(StorageArgs),
    /// Compare every object's bytes on both sides (SHA-256).
    Verify(StorageArgs),
}

/// Where Storage objects come from and go to.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Read objects from this directory (`<dir>/<bucket>/<name>`, a
    /// self-hosted Storage file backend; the sandbox exports it) instead of
    /// Supabase's S3 endpoint.
    #[arg(long, env = "SUPAMIGRATE_STORAGE_DIR", value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
    /// Supabase Storage's S3 endpoint [default:
    /// https://<project-ref>.storage.supabase.co/storage/v1/s3]; keys from
    /// SUPABASE_S3_ACCESS_KEY_ID and SUPABASE_S3_SECRET_ACCESS_KEY, region from
    /// SUPABASE_S3_REGION.
    #[arg(long, env = "SUPABASE_S3_ENDPOINT", value_name = "URL")]
    pub source_endpoint: Option<String>,
    /// Write objects to this directory instead of S3 (S3 uses the standard AWS
    /// configuration: AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
    /// AWS_PROFILE, AWS_ENDPOINT_URL_S3 for S3-compatible servers).
    #[arg(long, value_name = "DIR")]
    pub dest_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// Where the stores are.
    pub fn config(&self, settings: &Settings) -> StoreConfig {
        StoreConfig {
            source_dir: self.source_dir.clone(),
            source_endpoint: self.source_endpoint.clone(),
            project_ref: settings.project_ref.clone(),
            source_keys: StoreConfig::keys_from_env(&|k| std::env::var(k).ok()),
            dest_dir: self.dest_dir.clone(),
            dest_s3: None,
        }
    }
}

/// `storage plan|copy|verify`.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Objects copied at once (1–256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub jobs: u16,
    /// Part size for streaming and multipart uploads, in MiB (5–5120: S3's
    /// limits for a part).
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u16).range(5..=5120))]
    pub part_size_mib: u16,
    /// Objects listed in storage.objects but missing from the Storage source
    /// are reported instead of stopping the copy.
    #[arg(long)]
    pub allow_missing_objects: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl StorageArgs {
    /// How objects move.
    pub fn transfer(&self) -> TransferOptions {
        TransferOptions {
            part_size: usize::from(self.part_size_mib) * 1024 * 1024,
            jobs: usize::from(self.jobs),
            allow_missing_objects: self.allow_missing_objects,
        }
    }
}

/// How `run` runs.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Backups.
    #[arg(long, value_name = "DIR", default_value = "backups")]
    pub backup_dir: PathBuf,
    /// The HTML and JSON report.
    #[arg(long, value_name = "DIR", default_value = "supamigrate-report")]
    pub report_dir: PathBuf,
    /// Database workers for the copy, post-data and verify, each with a
    /// session on both sides (1–256) [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub jobs: Option<u16>,
    /// Database workers for the copy and post-data only [default: --jobs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub copy_jobs: Option<u16>,
    /// Storage objects copied at once (1–256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub storage_jobs: u16,
    /// Part size for Storage uploads, in MiB (5–5120: S3's limits for a part).
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u16).range(5..=5120))]
    pub part_size_mib: u16,
    /// Copy this table again, whole, in the copy step (schema.table;
    /// repeatable). Tables whose source changed since an interrupted copy
    /// are copied again without asking.
    #[arg(long, value_name = "TABLE")]
    pub recopy: Vec<String>,
    /// Objects listed in storage.objects but missing from the Storage source
    /// are reported instead of stopping the run.
    #[arg(long)]
    pub allow_missing_objects: bool,
    /// Near-zero downtime: copy under a replication slot's snapshot (see
    /// `copy --follow`), then follow the source's changes until
    /// `supamigrate cutover` (run in another terminal) has switched over;
    /// verify and the report come after.
    #[arg(long)]
    pub follow: bool,
    /// The application's own integrity queries for verify (see `verify --checks`).
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// Go ahead without asking (scripts): the plan is still printed.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Dump the application schemas (pre-data and post-data apart) to DIR.
    Export {
        #[command(flatten)]
        plan: PlanArgs,
        /// Output directory.
        #[arg(long, value_name = "DIR", default_value = "migration/schema")]
        out: PathBuf,
    },
    /// Convert to standard PostgreSQL: write reviewable SQL and print the report
    /// of every object kept, rewritten or dropped. Changes nothing anywhere.
    Convert {
        #[command(flatten)]
        plan: PlanArgs,
        /// Where the converted SQL goes.
        #[arg(long, value_name = "FILE", default_value = "03_converted_schema.sql")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply the plan's schema to the target (after `provision`). Pre-data in
    /// one transaction, post-data in another; a re-run never applies twice.
    Apply {
        #[command(flatten)]
        plan: PlanArgs,
        /// Which part: pre-data (before the data), post-data (after), or all.
        #[arg(long, value_name = "SECTION", default_value = "all")]
        section: SectionArg,
    },
}

/// `--section`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SectionArg {
    /// Before the data.
    PreData,
    /// After it.
    PostData,
    /// Both, in order.
    All,
}

impl SectionArg {
    /// The sections, in order.
    pub fn sections(self) -> &'static [Section] {
        match self {
            SectionArg::PreData => &[Section::PreData],
            SectionArg::PostData => &[Section::PostData],
            SectionArg::All => &[Section::PreData, Section::PostData],
        }
    }
}

#[cfg(feature = "sandbox")]
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
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
        #[arg(long, default_value_t = supamigrate_sandbox::DEFAULT_SEED)]
        seed: u64,
        /// Load a small fixture application instead of the TMS fixture:
        /// notes, files, hooks, search, catalog or accounts.
        #[arg(long, value_name = "NAME")]
        app: Option<String>,
        /// The target's PostgreSQL major: 15 (the system's, the default), 16,
        /// 17 or 18 (installed by scripts/setup.sh into .tools/pg).
        #[arg(long, value_name = "N")]
        target_version: Option<u32>,
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

impl Cli {
    /// Where the databases are: flags, then environment, then the file.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = FileConfig::discover(self.config.as_deref())?;
        let flags = Flags {
            source_url: self.source_url.clone(),
            target_url: self.target_url.clone(),
            project_ref: self.project_ref.clone(),
        };
        let mut settings = config::resolve(&flags, &|k| std::env::var(k).ok(), file.as_ref())?;
        settings.plain_source = self.plain_source;
        Ok(settings)
    }
}

/// The most workers a `--jobs` option takes.
pub const MAX_JOBS: u16 = 256;

/// `--jobs`, or the number of cores.
pub fn default_jobs(jobs: Option<u16>) -> usize {
    jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// `supamigrate rds …`.
#[derive(Debug, Subcommand)]
pub enum RdsCommand {
    /// Show the instance `create` would make: every decision with why, and
    /// every AWS API call with its parameters, in order. Changes nothing.
    Plan {
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the instance as `plan` shows (after showing it and asking), wait
    /// until it is available, and write the target configuration (RDS_HOST,
    /// RDS_PORT, RDS_DATABASE, RDS_USER, sslmode=verify-full with the CA
    /// bundle) for `run`. An existing instance with this identifier is
    /// reused when it matches what is asked, refused with the differences
    /// when it does not.
    Create {
        #[command(flatten)]
        instance: InstanceArgs,
        #[command(flatten)]
        wait: WaitArgs,
        /// Where the target configuration is written (mode 0600) [default: <state dir>/rds/<instance id>.env].
        #[arg(long, value_name = "FILE")]
        env_out: Option<PathBuf>,
        /// Go ahead without asking.
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The instance's state, endpoint and what its parameter group holds.
    Status {
        /// The instance identifier.
        #[arg(long, value_name = "ID")]
        instance_id: String,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put the instance's parameter group in a phase: `load` (TLS forced,
    /// bulk-load settings for the copy) or `production` (TLS forced, the
    /// bulk-load settings back to the engine's defaults). Takes effect
    /// without a reboot.
    Settings {
        /// The instance identifier.
        #[arg(long, value_name = "ID")]
        instance_id: String,
        /// The phase.
        #[arg(long = "for", value_name = "PHASE")]
        phase: PhaseArg,
    },
    /// Delete the instance (after showing what and asking), with a final
    /// snapshot unless --skip-final-snapshot; deletion protection is turned
    /// off first; supamigrate's parameter group goes with it.
    Delete {
        /// The instance identifier.
        #[arg(long, value_name = "ID")]
        instance_id: String,
        /// Delete without a final snapshot: its data is gone for good.
        #[arg(long)]
        skip_final_snapshot: bool,
        #[command(flatten)]
        wait: WaitArgs,
        /// Go ahead without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// `rds settings --for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    /// For the copy.
    Load,
    /// For the application's traffic.
    Production,
}

/// How long `rds create|delete` waits.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Seconds between two looks at the instance.
    #[arg(long, value_name = "S", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub poll_seconds: u64,
    /// Minutes to wait at most.
    #[arg(long, value_name = "M", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub wait_minutes: u64,
}

impl WaitArgs {
    /// The first option given that differs from its default, as its flag.
    pub fn first_given(&self) -> Option<&'static str> {
        if self.poll_seconds != 15 {
            Some("--poll-seconds")
        } else if self.wait_minutes != 60 {
            Some("--wait-minutes")
        } else {
            None
        }
    }

    /// The library's form.
    pub fn wait(&self) -> supamigrate::rds::api::Wait {
        supamigrate::rds::api::Wait {
            every: std::time::Duration::from_secs(self.poll_seconds),
            at_most: std::time::Duration::from_secs(self.wait_minutes * 60),
        }
    }
}

/// The instance asked for: its identifier and options.
#[derive(Debug, Clone, Args)]
pub struct InstanceArgs {
    /// The instance identifier.
    #[arg(long, value_name = "ID")]
    pub instance_id: String,
    #[command(flatten)]
    pub opts: InstanceOptions,
}

/// `run --create-instance`: the instance to make first and migrate into.
#[derive(Debug, Clone, Args)]
pub struct RunInstanceArgs {
    /// Make (or reuse) the RDS instance ID first, as `rds create` does (its
    /// plan shown and confirmed, the target configuration written), then
    /// migrate into it, and put its parameter group in the production phase
    /// once the run is done. The target comes from the instance: leave
    /// RDS_URL and RDS_HOST unset. The instance options below apply only with it.
    #[arg(long, value_name = "ID")]
    pub create_instance: Option<String>,
    #[command(flatten)]
    pub opts: InstanceOptions,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--class`'s default (the runbook's r6g.xlarge is far more than a
/// migration's first size needs; storage and class grow later).
pub const DEFAULT_CLASS: &str = "db.t3.medium";

/// The instance's options (the runbook's values are the defaults where they
/// still hold).
#[derive(Debug, Clone, Args)]
pub struct InstanceOptions {
    /// Instance class.
    #[arg(long, value_name = "CLASS", default_value = DEFAULT_CLASS)]
    pub class: String,
    /// PostgreSQL major (17) or full version (17.6) [default: the newest major the region offers].
    #[arg(long, value_name = "VERSION")]
    pub engine_version: Option<String>,
    /// gp3 storage, GiB [default: twice the source database plus 4 GiB, at least 20; 100 without a source].
    #[arg(long, value_name = "GIB")]
    pub storage_gib: Option<u32>,
    /// Storage autoscaling's ceiling, GiB [default: no autoscaling].
    #[arg(long, value_name = "GIB")]
    pub max_storage_gib: Option<u32>,
    /// One availability zone, no standby [default: Multi-AZ].
    #[arg(long)]
    pub single_az: bool,
    /// Days of automated backups (0–35).
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=35))]
    pub backup_retention_days: u32,
    /// DB subnet group [default: the default VPC's].
    #[arg(long, value_name = "NAME")]
    pub subnet_group: Option<String>,
    /// VPC security group id (repeatable) [default: the VPC's default group].
    #[arg(long = "security-group", value_name = "SG")]
    pub security_groups: Vec<String>,
    /// Reachable from the internet [default: only from its VPC].
    #[arg(long)]
    pub publicly_accessible: bool,
    /// Let RDS enrol the instance in paid Extended Support when its major's
    /// standard support ends [default: disabled].
    #[arg(long)]
    pub extended_support: bool,
    /// Create it without deletion protection.
    #[arg(long)]
    pub no_deletion_protection: bool,
    /// Master user name.
    #[arg(long, value_name = "NAME", default_value = "postgres")]
    pub master_user: String,
    /// The database the migration goes into (RDS_DATABASE).
    #[arg(long, value_name = "NAME", default_value = "postgres")]
    pub database: String,
    /// Generate the master password into FILE (mode 0600) instead of having
    /// RDS manage it in AWS Secrets Manager.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Leave the bulk-load parameters out (TLS is forced either way).
    #[arg(long)]
    pub no_bulk_load_settings: bool,
    /// A tag KEY=VALUE (repeatable); ManagedBy=supamigrate is always added.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// The RDS CA bundle the target configuration points sslrootcert at
    /// (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)
    /// [default: <state dir>/rds/global-bundle.pem].
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

impl InstanceOptions {
    /// The first option given that differs from its default, as its flag
    /// (they do something only with an instance to make).
    pub fn first_given(&self) -> Option<&'static str> {
        let given = [
            (self.class != DEFAULT_CLASS, "--class"),
            (self.engine_version.is_some(), "--engine-version"),
            (self.storage_gib.is_some(), "--storage-gib"),
            (self.max_storage_gib.is_some(), "--max-storage-gib"),
            (self.single_az, "--single-az"),
            (self.backup_retention_days != 7, "--backup-retention-days"),
            (self.subnet_group.is_some(), "--subnet-group"),
            (!self.security_groups.is_empty(), "--security-group"),
            (self.publicly_accessible, "--publicly-accessible"),
            (self.extended_support, "--extended-support"),
            (self.no_deletion_protection, "--no-deletion-protection"),
            (self.master_user != "postgres", "--master-user"),
            (self.database != "postgres", "--database"),
            (self.password_file.is_some(), "--password-file"),
            (self.no_bulk_load_settings, "--no-bulk-load-settings"),
            (!self.tags.is_empty(), "--tag"),
            (self.ca_bundle.is_some(), "--ca-bundle"),
        ];
        given.into_iter().find(|(g, _)| *g).map(|(_, flag)| flag)
    }

    /// The library's request for instance `id`.
    pub fn request(&self, id: &str) -> anyhow::Result<supamigrate::rds::InstanceRequest> {
        use supamigrate::rds::{InstanceRequest, PasswordMode};
        let mut tags = Vec::new();
        for t in &self.tags {
            let Some((k, v)) = t.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(supamigrate::Error::invalid_input(format!(
                    "--tag {t:?} is not KEY=VALUE"
                ))
                .with_hint("give each tag as --tag KEY=VALUE")
                .into());
            };
            tags.push((k.to_string(), v.to_string()));
        }
        Ok(InstanceRequest {
            class: self.class.clone(),
            engine_version: self.engine_version.clone(),
            storage_gib: self.storage_gib,
            max_storage_gib: self.max_storage_gib,
            multi_az: !self.single_az,
            backup_retention_days: self.backup_retention_days,
            subnet_group: self.subnet_group.clone(),
            security_groups: self.security_groups.clone(),
            publicly_accessible: self.publicly_accessible,
            extended_support: self.extended_support,
            deletion_protection: !self.no_deletion_protection,
            master_user: self.master_user.clone(),
            database: self.database.clone(),
            password: match &self.password_file {
                Some(f) => PasswordMode::File(f.clone()),
                None => PasswordMode::Managed,
            },
            bulk_load: !self.no_bulk_load_settings,
            tags,
            ..InstanceRequest::new(id)
        })
    }
}
