//! supamigrate-sandbox: local clusters to try supamigrate on, the TMS
//! reference fixture, and the demo.
//!
//! The local sandbox: a Supabase-like source cluster and an RDS-like target
//! cluster on loopback, made from the system's PostgreSQL binaries.
//!
//! One harness serves the users (`supamigrate sandbox start|stop|status`) and the
//! tests ([`Sandbox::ephemeral`], stopped and removed on drop, kept on failure when
//! `SUPAMIGRATE_KEEP_SANDBOX=1`).
//!
//! - **Source** (`supabase_admin` bootstraps it): the roles, schemas, auth and
//!   storage tables, functions, publication and event triggers of a hosted
//!   Supabase project ([`supabase`]); `SUPABASE_DB_URL` logs in as the
//!   non-superuser `postgres` role, like a project's connection string.
//! - **Target** (`rdsadmin` bootstraps it): `RDS_URL` logs in as a master role that
//!   is not superuser, member of `rds_superuser` ([`rds`]); its database
//!   `tms_production` does not exist until provisioning creates it.

// Product code handles every failure as an error: no unwrap, expect or
// panic outside tests (docs/errors-and-logging.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod apps;
pub mod aws;
pub mod demo;
pub mod fixture;
pub mod migrations;
pub mod platform;
pub mod rds;
pub mod s3;
pub mod servers;
pub mod shared;
pub mod supabase;
pub mod tls;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use supamigrate::cluster::{self, Cluster, ClusterSpec, ServerTls};

use supamigrate::connect::{random_hex, ConnInfo, Password};
use supamigrate::error::{Error, ErrorKind, Result};

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// The target database name (the seed runbook's).
pub const TARGET_DATABASE: &str = "tms_production";
/// The sandbox's Supabase project ref, used in generated Storage URLs.
pub const PROJECT_REF: &str = "sbxtmsprojectref0001";

const STATE_FILE: &str = "sandbox.json";
const STATE_FORMAT: u32 = 2;

/// What the source cluster is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Supabase's own SQL, replayed by the platform kit ([`platform`]).
    Platform,
    /// The hand-written Supabase-like set-up ([`supabase`]): where the kit
    /// cannot run (not root, kit absent).
    Lite,
}

impl SourceKind {
    /// The platform when this machine can build it, else the hand-written
    /// source; `SUPAMIGRATE_SANDBOX_SOURCE=platform|lite` forces one.
    pub fn choose() -> Result<(SourceKind, Option<platform::Kit>)> {
        let forced = std::env::var("SUPAMIGRATE_SANDBOX_SOURCE").ok();
        match forced.as_deref() {
            Some("lite") => Ok((SourceKind::Lite, None)),
            Some("platform") => platform::Kit::locate()
                .map(|k| (SourceKind::Platform, Some(k)))
                .map_err(|why| {
                    Error::new(
                        ErrorKind::Sandbox,
                        format!("SUPAMIGRATE_SANDBOX_SOURCE=platform, but {why}"),
                    )
                }),
            Some(other) => Err(Error::invalid_input(format!(
                "SUPAMIGRATE_SANDBOX_SOURCE={other:?} is neither platform nor lite"
            ))),
            None => match platform::Kit::locate() {
                Ok(k) => Ok((SourceKind::Platform, Some(k))),
                Err(why) => {
                    tracing::warn!("using the hand-written Supabase-like source: {why}");
                    Ok((SourceKind::Lite, None))
                }
            },
        }
    }
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Directory holding both clusters, the storage directory and the state.
    pub dir: PathBuf,
    /// Fixture scale: 1 is a few MB, 100 a few GB. 0 loads the schema without data.
    pub scale: u32,
    /// Generator seed.
    pub seed: u64,
    /// Load this fixture application instead of the TMS fixture.
    pub app: Option<&'static apps::App>,
    /// The target's PostgreSQL major (`None`: the system's, 15).
    pub target_version: Option<u32>,
}

impl SandboxOptions {
    /// The default directory: `$TMPDIR/supamigrate-sandbox-<uid>`.
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join(format!("supamigrate-sandbox-{}", nix::unistd::getuid()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterState {
    port: u16,
    superuser: String,
    superuser_password: String,
    login_user: String,
    login_password: String,
    database: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: u32,
    source_kind: SourceKind,
    #[serde(default)]
    app: Option<String>,
    scale: u32,
    seed: u64,
    project_ref: String,
    source: ClusterState,
    target: ClusterState,
    /// Where the clusters live when the postgres OS user cannot reach the
    /// sandbox folder (`None`: inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clusters: Option<PathBuf>,
}

/// A running (or stopped) sandbox.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    state: State,
    source: Cluster,
    target: Cluster,
    ephemeral: bool,
}

/// What `sandbox status` reports for one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// "source" or "target".
    pub role: &'static str,
    /// Whether the server runs.
    pub running: bool,
    /// Its postmaster pid.
    pub pid: Option<i32>,
    /// Its port.
    pub port: u16,
    /// Where its files are.
    pub dir: PathBuf,
}

impl Sandbox {
    /// Starts the sandbox in `opts.dir`: restarts an existing one, or creates
    /// both clusters, installs the Supabase-like and RDS-like setups, loads the
    /// TMS fixture and generates data at `opts.scale`.
    pub async fn start(opts: &SandboxOptions) -> Result<Sandbox> {
        if opts.dir.join(STATE_FILE).exists() {
            let mut sb = Sandbox::open(&opts.dir)?;
            let app = opts.app.map(|a| a.name.to_string());
            if let Some(asked) = opts.target_version {
                let has = sb.target.major()?;
                if has != asked {
                    return Err(Error::invalid_input(format!(
                        "the sandbox in {} has a PostgreSQL {has} target, not {asked}",
                        opts.dir.display()
                    ))
                    .with_hint("run `supamigrate sandbox stop --remove` first, or pass the same --target-version"));
                }
            }
            if sb.state.scale != opts.scale || sb.state.seed != opts.seed || sb.state.app != app {
                let fixture = |a: &Option<String>| {
                    a.as_deref()
                        .map_or_else(|| "the TMS fixture".to_string(), |a| format!("app {a}"))
                };
                return Err(Error::invalid_input(format!(
                    "the sandbox in {} was created with {}, scale {} and seed {}, not {}, scale {} and seed {}",
                    opts.dir.display(),
                    fixture(&sb.state.app),
                    sb.state.scale,
                    sb.state.seed,
                    fixture(&app),
                    opts.scale,
                    opts.seed
                ))
                .with_hint("run `supamigrate sandbox stop --remove` first, or pass the same --app/--scale/--seed"));
            }
            sb.source.start()?;
            sb.target.start()?;
            sb.state.source.port = sb.source.port();
            sb.state.target.port = sb.target.port();
            sb.save()?;
            return Ok(sb);
        }
        if opts.dir.exists()
            && std::fs::read_dir(&opts.dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(Error::invalid_input(format!(
                "{} exists and is not a sandbox (no {STATE_FILE}); a start may have been interrupted",
                opts.dir.display()
            ))
            .with_hint("run `supamigrate sandbox stop --remove --dir <that dir>` to clear it, or choose another --dir"));
        }
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| Error::io(format!("creating {}", opts.dir.display()), e))?;
        let dir = std::fs::canonicalize(&opts.dir)
            .map_err(|e| Error::io(format!("resolving {}", opts.dir.display()), e))?;
        // The server's OS user must traverse it; the state file inside stays 0600.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
        let root = clusters_root(&dir)?;
        match Self::create(&dir, &root, opts).await {
            Ok(sb) => Ok(sb),
            Err(e) => {
                stop_clusters_under(&root);
                if keep_requested() {
                    tracing::warn!(dir = %dir.display(), "sandbox start failed; kept for inspection");
                } else {
                    let _ = std::fs::remove_dir_all(&dir);
                    let _ = std::fs::remove_dir_all(&root);
                }
                Err(e)
            }
        }
    }

    async fn create(dir: &Path, root: &Path, opts: &SandboxOptions) -> Result<Sandbox> {
        let (source_kind, kit) = SourceKind::choose()?;
        let login_password = Password::new(random_hex(16)?);
        let source = make_source(root, kit.as_ref(), &login_password).await?;
        let scripts = root.join("rds-extension-scripts");
        rds::write_extension_scripts(&scripts)?;
        let server = match opts.target_version {
            Some(major) => servers::Server::of_major(major)?,
            None => servers::Server::system()?,
        };
        let offered = rds::prepare_server(&server)?;
        let mut target = Cluster::init(&ClusterSpec {
            dir: root.join("target"),
            superuser: "rdsadmin".into(),
            settings: rds::server_settings(&scripts, &server, &offered),
            tls: None,
            bin_dir: server.bin_dir.clone(),
        })?;
        target.start()?;
        let state = State {
            format: STATE_FORMAT,
            source_kind,
            app: opts.app.map(|a| a.name.to_string()),
            scale: opts.scale,
            seed: opts.seed,
            project_ref: PROJECT_REF.into(),
            source: ClusterState {
                port: source.port(),
                superuser: source.superuser().into(),
                superuser_password: source.superuser_password().expose().into(),
                login_user: "postgres".into(),
                login_password: login_password.expose().into(),
                database: "postgres".into(),
            },
            target: ClusterState {
                port: target.port(),
                superuser: target.superuser().into(),
                superuser_password: target.superuser_password().expose().into(),
                login_user: "postgres".into(),
                login_password: random_hex(16)?,
                database: match opts.app {
                    Some(a) => format!("{}_app", a.name),
                    None => TARGET_DATABASE.into(),
                },
            },
            clusters: (root != dir).then(|| root.to_path_buf()),
        };
        let sb = Sandbox {
            dir: dir.to_path_buf(),
            state,
            source,
            target,
            ephemeral: false,
        };
        let storage = sb.storage_dir();
        std::fs::create_dir_all(&storage)
            .map_err(|e| Error::io(format!("creating {}", storage.display()), e))?;

        if source_kind == SourceKind::Lite {
            tracing::info!("installing the hand-written Supabase-like source");
            supabase::install_roles(&sb.source_superuser("postgres"), &login_password).await?;
            supabase::install_database(&sb.source_superuser("postgres")).await?;
        }
        tracing::info!("installing the RDS-like target");
        rds::install(
            &sb.target_superuser("postgres"),
            &Password::new(sb.state.target.login_password.clone()),
        )
        .await?;
        sb.load(opts, &storage).await?;
        sb.save()?;
        Ok(sb)
    }

    /// Loads the fixture: the application asked for, else the TMS fixture
    /// with data at the scale.
    async fn load(&self, opts: &SandboxOptions, storage: &Path) -> Result<()> {
        if let Some(app) = opts.app {
            tracing::info!(app = app.name, "loading the fixture application");
            return apps::install(
                app,
                &self.source_url(),
                &self.source_superuser("postgres"),
                storage,
                PROJECT_REF,
            )
            .await;
        }
        tracing::info!("loading the TMS fixture");
        fixture::install(&self.source_url(), &self.source_superuser("postgres")).await?;
        if opts.scale > 0 {
            tracing::info!(scale = opts.scale, seed = opts.seed, "generating data");
            fixture::generate(
                &self.source_superuser("postgres"),
                &fixture::GenerateOptions {
                    scale: opts.scale,
                    seed: opts.seed,
                    storage_dir: storage.to_path_buf(),
                    project_ref: PROJECT_REF.into(),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// A sandbox for one test: in a fresh temporary directory, stopped and
    /// removed when dropped (kept if the test panicked and
    /// `SUPAMIGRATE_KEEP_SANDBOX=1`).
    pub async fn ephemeral(scale: u32) -> Result<Sandbox> {
        Self::ephemeral_with(scale, DEFAULT_SEED, None, None).await
    }

    /// [`Sandbox::ephemeral`] with the generator's `seed`.
    pub async fn ephemeral_seeded(scale: u32, seed: u64) -> Result<Sandbox> {
        Self::ephemeral_with(scale, seed, None, None).await
    }

    /// A sandbox for one test with fixture application `app`.
    pub async fn ephemeral_app(app: &'static apps::App) -> Result<Sandbox> {
        Self::ephemeral_with(0, DEFAULT_SEED, Some(app), None).await
    }

    /// A sandbox for one test with fixture application `app` (`None`: the
    /// TMS fixture without data) and a PostgreSQL `target_version` target.
    pub async fn ephemeral_on(
        app: Option<&'static apps::App>,
        target_version: u32,
    ) -> Result<Sandbox> {
        Self::ephemeral_with(0, DEFAULT_SEED, app, Some(target_version)).await
    }

    async fn ephemeral_with(
        scale: u32,
        seed: u64,
        app: Option<&'static apps::App>,
        target_version: Option<u32>,
    ) -> Result<Sandbox> {
        let base = tempfile::Builder::new()
            .prefix("supamigrate-test-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?
            .keep();
        let opts = SandboxOptions {
            dir: base.join("sandbox"),
            scale,
            seed,
            app,
            target_version,
        };
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("chmod {}", base.display()), e))?;
        match Sandbox::start(&opts).await {
            Ok(mut sb) => {
                sb.ephemeral = true;
                Ok(sb)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&base);
                Err(e)
            }
        }
    }

    /// Opens the sandbox recorded in `dir` (running or not).
    pub fn open(dir: &Path) -> Result<Sandbox> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::new(
                ErrorKind::Sandbox,
                format!("no sandbox in {}", dir.display()),
            )
            .with_source(e)
            .with_hint(
                "start one with `supamigrate sandbox start`, or pass the --dir it was started with",
            )
        })?;
        let state: State = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Sandbox,
                format!("{} is not a sandbox state file", path.display()),
            )
            .with_source(e)
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::new(
                ErrorKind::Sandbox,
                format!(
                    "{} was written by another supamigrate version",
                    path.display()
                ),
            )
            .with_hint("remove it with `supamigrate sandbox stop --remove` and start again"));
        }
        let dir = dir.to_path_buf();
        let root = state.clusters.clone().unwrap_or_else(|| dir.clone());
        let source = Cluster::open(
            root.join("source"),
            state.source.superuser.clone(),
            Password::new(state.source.superuser_password.clone()),
            state.source.port,
        );
        let target = Cluster::open(
            root.join("target"),
            state.target.superuser.clone(),
            Password::new(state.target.superuser_password.clone()),
            state.target.port,
        );
        Ok(Sandbox {
            dir,
            state,
            source,
            target,
            ephemeral: false,
        })
    }

    fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.state)
            .map_err(|e| Error::internal(format!("serializing sandbox state: {e}")))?;
        supamigrate::fsutil::write_atomically(&self.dir.join(STATE_FILE), text.as_bytes(), 0o600)
    }

    /// Stops both clusters.
    pub fn stop(&self) -> Result<()> {
        let a = self.source.stop();
        let b = self.target.stop();
        a.and(b)
    }

    /// What runs.
    pub fn status(&self) -> Vec<ClusterStatus> {
        [("source", &self.source), ("target", &self.target)]
            .into_iter()
            .map(|(role, c)| ClusterStatus {
                role,
                running: c.is_running(),
                pid: c.pid(),
                port: c.port(),
                dir: c.dir().to_path_buf(),
            })
            .collect()
    }

    /// The fixture application it holds (`None`: the TMS fixture).
    pub fn app(&self) -> Option<&'static apps::App> {
        self.state.app.as_deref().and_then(apps::find)
    }

    /// What the source was built from.
    pub fn source_kind(&self) -> SourceKind {
        self.state.source_kind
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fixture scale it was loaded with.
    pub fn scale(&self) -> u32 {
        self.state.scale
    }

    /// The generator seed it was loaded with.
    pub fn seed(&self) -> u64 {
        self.state.seed
    }

    /// The Supabase project ref its Storage URLs use.
    pub fn project_ref(&self) -> &str {
        &self.state.project_ref
    }

    /// The directory standing in for the Storage backend: `<bucket>/<object name>`.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// `SUPABASE_DB_URL`: the source as `postgres` (not superuser).
    pub fn source_url(&self) -> ConnInfo {
        let s = &self.state.source;
        self.source.conninfo(
            &s.login_user,
            &Password::new(s.login_password.clone()),
            &s.database,
        )
    }

    /// `RDS_URL`: the target as the master role, database `tms_production`.
    pub fn target_url(&self) -> ConnInfo {
        let t = &self.state.target;
        self.target.conninfo(
            &t.login_user,
            &Password::new(t.login_password.clone()),
            &t.database,
        )
    }

    /// The source's bootstrap superuser (`supabase_admin`), for tests and set-up.
    pub fn source_superuser(&self, dbname: &str) -> ConnInfo {
        self.source.superuser_conninfo(dbname)
    }

    /// The target's bootstrap superuser (`rdsadmin`), for tests and set-up.
    pub fn target_superuser(&self, dbname: &str) -> ConnInfo {
        self.target.superuser_conninfo(dbname)
    }

    /// The source cluster.
    pub fn source_cluster(&self) -> &Cluster {
        &self.source
    }

    /// Turns TLS on for the target, as RDS has it, with a certificate for
    /// `localhost` and `127.0.0.1` from a CA made for it, and connections
    /// without TLS refused (`rds.force_ssl = 1`); returns the CA's PEM file
    /// (the sandbox's `global-bundle.pem`).
    pub fn target_tls(&self) -> Result<PathBuf> {
        let ca = tls::Authority::new("supamigrate sandbox CA")?;
        let server = ca.server(&["localhost", "127.0.0.1"])?;
        self.target_cluster().enable_tls(&server, true)?;
        let path = self.dir().join("target-ca.pem");
        std::fs::write(&path, ca.cert_pem())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    /// The target cluster.
    pub fn target_cluster(&self) -> &Cluster {
        &self.target
    }

    /// Restricts the extensions the target offers, as RDS's `rds.extensions`
    /// allow-list does (supamigrate reads that setting when it is present):
    /// the master role may then create those only.
    pub async fn set_target_allowed_extensions(&self, names: &[&str]) -> Result<()> {
        let list = quote_literal(&names.join(","));
        let admin = self.target_superuser("postgres");
        let what = "setting the target's rds.extensions";
        run_sql(
            &admin,
            &format!("alter database postgres set rds.extensions = {list}"),
            what,
        )
        .await?;
        if rds::offers_rds_extensions(&servers::Server::of_major(self.target.major()?)?) {
            // ALTER SYSTEM runs outside a transaction block: alone.
            let c = supamigrate::connect::connect(&admin).await?;
            for sql in [
                format!("alter system set supautils.privileged_extensions = {list}"),
                "select pg_reload_conf()".to_string(),
            ] {
                c.batch_execute(&sql)
                    .await
                    .map_err(|e| Error::postgres(what, e))?;
            }
        }
        Ok(())
    }

    /// Whether the target database (`tms_production`) exists yet.
    pub async fn target_database_exists(&self) -> Result<bool> {
        let client = supamigrate::connect::connect(&self.target_superuser("postgres")).await?;
        let row = client
            .query_one(
                "select exists (select 1 from pg_database where datname = $1)",
                &[&self.state.target.database],
            )
            .await
            .map_err(|e| Error::postgres("looking for the target database", e))?;
        Ok(row.get(0))
    }

    /// Shell `export` lines for `eval "$(supamigrate sandbox start)"`.
    pub fn exports(&self) -> String {
        let vars = [
            ("SUPABASE_DB_URL", self.source_url().to_url_with_password()),
            ("SUPABASE_PROJECT_REF", self.project_ref().to_string()),
            ("RDS_URL", self.target_url().to_url_with_password()),
            (
                "SUPAMIGRATE_STORAGE_DIR",
                self.storage_dir().to_string_lossy().into_owned(),
            ),
            (
                "SUPAMIGRATE_SANDBOX_DIR",
                self.dir.to_string_lossy().into_owned(),
            ),
        ];
        vars.iter()
            .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
            .collect()
    }

    /// Stops the clusters and deletes the sandbox directory.
    pub fn remove(mut self) -> Result<()> {
        self.ephemeral = false;
        self.stop()?;
        let dir = self.dir.clone();
        let clusters = self.state.clusters.clone();
        drop(self);
        if let Some(c) = clusters.filter(|c| c.exists()) {
            std::fs::remove_dir_all(&c)
                .map_err(|e| Error::io(format!("removing {}", c.display()), e))?;
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))
    }

    /// Where the clusters' files are (the sandbox folder, or a folder the
    /// postgres OS user can reach when it cannot reach that one).
    pub fn clusters_dir(&self) -> PathBuf {
        self.state
            .clusters
            .clone()
            .unwrap_or_else(|| self.dir.clone())
    }
}

/// Where a sandbox in `dir` keeps its clusters: `dir` itself when the
/// server's OS user can reach it, else a folder of ours under the system's
/// temporary folder (said once), so a sandbox starts from any folder (a
/// home of mode 700, a `mktemp -d` folder).
fn clusters_root(dir: &Path) -> Result<PathBuf> {
    let Err(why) = supamigrate::cluster::check_reachable_by_server_user(dir) else {
        return Ok(dir.to_path_buf());
    };
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(dir.to_string_lossy().as_bytes()));
    let home = std::path::Path::new("/tmp").join(format!(
        "supamigrate-clusters-{}",
        nix::unistd::Uid::effective().as_raw()
    ));
    let root = home.join(&digest[..16]);
    for d in [&home, &root] {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("chmod {}", d.display()), e))?;
    }
    supamigrate::cluster::check_reachable_by_server_user(&root)?;
    tracing::info!(
        clusters = %root.display(),
        "{}; the clusters go there, everything else stays in {}",
        why.message(),
        dir.display()
    );
    Ok(root)
}

/// The source cluster: a copy of the platform template, or a fresh cluster
/// for the hand-written set-up.
async fn make_source(dir: &Path, kit: Option<&platform::Kit>, login: &Password) -> Result<Cluster> {
    match kit {
        Some(kit) => {
            platform::Template::get(kit)?
                .copy_to(&dir.join("source"), login)
                .await
        }
        None => {
            let mut c = Cluster::init(&ClusterSpec {
                dir: dir.join("source"),
                superuser: "supabase_admin".into(),
                settings: supabase::server_settings(),
                tls: None,
                bin_dir: None,
            })?;
            c.start()?;
            Ok(c)
        }
    }
}

/// Stops whatever cluster runs under `dir` and removes `dir`, for a directory
/// whose start was interrupted before the state file was written.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match Sandbox::open(dir) {
        Ok(sb) => sb.remove(),
        Err(_) => {
            stop_clusters_under(dir);
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
            }
            Ok(())
        }
    }
}

fn stop_clusters_under(dir: &Path) {
    for side in ["source", "target"] {
        let c = Cluster::open(dir.join(side), String::new(), Password::new(""), 0);
        if let Err(e) = c.stop() {
            tracing::warn!(error = %e, cluster = side, "could not stop cluster");
        }
    }
}

fn keep_requested() -> bool {
    std::env::var("SUPAMIGRATE_KEEP_SANDBOX").is_ok_and(|v| v == "1")
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.ephemeral {
            return;
        }
        if std::thread::panicking() && keep_requested() {
            eprintln!(
                "SUPAMIGRATE_KEEP_SANDBOX=1: sandbox kept running in {}\n{}",
                self.dir.display(),
                self.exports()
            );
            return;
        }
        if let Err(e) = self.stop() {
            eprintln!("stopping sandbox {}: {e}", self.dir.display());
        }
        // The sandbox lives in <tempdir>/sandbox; remove the tempdir.
        let base = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let _ = std::fs::remove_dir_all(base);
        if let Some(c) = &self.state.clusters {
            let _ = std::fs::remove_dir_all(c);
        }
    }
}

/// Quotes `s` for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) use supamigrate::pg::quote_literal;

/// Runs `sql` as a batch on `info`, with `what` in the error.
pub(crate) async fn run_sql(info: &ConnInfo, sql: &str, what: &str) -> Result<()> {
    let client = supamigrate::connect::connect(info).await?;
    client
        .batch_execute(sql)
        .await
        .map_err(|e| Error::postgres(what.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(quote_literal("a'b"), "'a''b'");
    }
}
