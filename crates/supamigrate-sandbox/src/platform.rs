//! The platform-faithful source: a cluster built by the Supabase platform kit
//! (`../shared/supabase-platform/`), which replays Supabase's own migrations
//! (platform, auth, storage, realtime, webhooks) with every platform
//! extension.
//!
//! Bootstrapping takes 5–15 s, so it runs once per kit version: the result
//! is kept, stopped, in a cache folder (`$TMPDIR/supamigrate-platform-<uid>/
//! <kit digest>/`), and every sandbox source is a copy of its data folder,
//! started on its own port with its own passwords. A lock file serializes
//! the bootstrap between processes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use supamigrate::cluster::Cluster;
use supamigrate::connect::{connect, random_hex, Password};
use supamigrate::error::{Error, ErrorKind, Result};

/// The PostgreSQL the kit builds on (Debian's 15).
pub const PG15_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The kit's login roles: each gets its own random password in a copy.
const LOGIN_ROLES: &[&str] = &[
    "authenticator",
    "pgbouncer",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "supabase_replication_admin",
    "supabase_read_only_user",
    "supabase_functions_admin",
];

/// The platform kit on this machine.
#[derive(Debug, Clone)]
pub struct Kit {
    dir: PathBuf,
}

/// Whether the platform-faithful source can run here; when not, records
/// that `test` is skipped (see [`crate::shared::skip`]) and returns `false`.
pub fn require(test: &str) -> bool {
    match Kit::locate() {
        Ok(_) => true,
        Err(why) => {
            crate::shared::skip(test, &format!("needs the Supabase platform kit: {why}"));
            false
        }
    }
}

impl Kit {
    /// The kit, if this machine can use it: found (`SUPAMIGRATE_PLATFORM_KIT`,
    /// else `../shared/supabase-platform` beside the project), installed
    /// (`install.sh` ran: scripts/setup.sh does it), and we are root (the
    /// kit runs the server as the `postgres` OS user). Else why not.
    pub fn locate() -> std::result::Result<Kit, String> {
        let dir = match std::env::var_os("SUPAMIGRATE_PLATFORM_KIT") {
            Some(d) => PathBuf::from(d),
            None => crate::shared::path("supabase-platform"),
        };
        if !dir.join("bootstrap.sh").is_file() {
            return Err(format!(
                "the Supabase platform kit is not at {} (set SUPAMIGRATE_PLATFORM_KIT)",
                dir.display()
            ));
        }
        if !nix::unistd::Uid::effective().is_root() {
            return Err(
                "the platform kit needs root (it runs the server as the postgres OS user)".into(),
            );
        }
        let lib = Path::new("/usr/lib/postgresql/15/lib/supautils_lite.so");
        let ext = Path::new("/usr/share/postgresql/15/extension/pg_graphql.control");
        if !lib.is_file() || !ext.is_file() {
            return Err(format!(
                "the platform kit is not installed on this machine (run scripts/setup.sh, or bash {}/install.sh as root)",
                dir.display()
            ));
        }
        let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Kit { dir })
    }

    /// The kit's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A digest of what the kit builds from: a template made by another
    /// version of the kit is not reused.
    pub fn digest(&self) -> Result<String> {
        let mut files = Vec::new();
        collect_files(&self.dir, &mut files)?;
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            let rel = f.strip_prefix(&self.dir).unwrap_or(&f);
            h.update(rel.to_string_lossy().as_bytes());
            h.update(b"\0");
            let bytes =
                std::fs::read(&f).map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
            h.update(&bytes);
        }
        Ok(hex::encode(&h.finalize()[..8]))
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// A bootstrapped cluster, stopped, that sources are copied from.
#[derive(Debug, Clone)]
pub struct Template {
    dir: PathBuf,
    password: Password,
}

impl Template {
    /// The template for `kit`, bootstrapping it first if needed (once per kit
    /// version and machine; other processes wait on the lock meanwhile).
    pub fn get(kit: &Kit) -> Result<Template> {
        let root =
            std::env::temp_dir().join(format!("supamigrate-platform-{}", nix::unistd::getuid()));
        let dir = root.join(kit.digest()?);
        mkdir_traversable(&root)?;
        mkdir_traversable(&dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| Error::io(format!("opening {}/lock", dir.display()), e))?;
        let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, e)| {
                Error::new(ErrorKind::Sandbox, format!("locking {}", dir.display())).with_source(e)
            },
        )?;
        let pw_path = dir.join("password");
        if !dir.join("ready").exists() {
            bootstrap(kit, &dir, &pw_path)?;
        }
        let password = std::fs::read_to_string(&pw_path)
            .map_err(|e| Error::io(format!("reading {}", pw_path.display()), e))?;
        Ok(Template {
            dir,
            password: Password::new(password.trim().to_string()),
        })
    }

    /// Copies the template into `<cluster_dir>/data` and starts it on a free
    /// port; every login role gets a new random password. Returns the
    /// cluster (superuser `supabase_admin`) and the `postgres` role's password.
    pub async fn copy_to(
        &self,
        cluster_dir: &Path,
        postgres_password: &Password,
    ) -> Result<Cluster> {
        std::fs::create_dir_all(cluster_dir)
            .map_err(|e| Error::io(format!("creating {}", cluster_dir.display()), e))?;
        std::fs::set_permissions(cluster_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod {}", cluster_dir.display()), e))?;
        supamigrate::cluster::give_to_server_user(cluster_dir)?;
        let data = cluster_dir.join("data");
        let out = Command::new("cp")
            .arg("-a")
            .arg(self.dir.join("data"))
            .arg(&data)
            .output()
            .map_err(|e| Error::new(ErrorKind::Sandbox, "starting cp").with_source(e))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Sandbox,
                format!(
                    "copying the platform template: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        configure_copy(&data)?;
        let mut cluster = Cluster::open(
            cluster_dir.to_path_buf(),
            "supabase_admin".into(),
            self.password.clone(),
            0,
        );
        cluster.start()?;
        let superuser = Password::new(random_hex(16)?);
        rotate_passwords(&cluster, &superuser, postgres_password).await?;
        Ok(Cluster::open(
            cluster_dir.to_path_buf(),
            "supabase_admin".into(),
            superuser,
            cluster.port(),
        ))
    }
}

/// A copied data folder made a sandbox cluster's: loopback TCP only, no
/// socket, no fsync, our port file.
fn configure_copy(data: &Path) -> Result<()> {
    for stale in ["postmaster.pid", "postmaster.opts", "server.log"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    append(
        &data.join("postgresql.conf"),
        "\n# supamigrate sandbox (a copy of the platform template)\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = ''\n\
         fsync = off\n\
         full_page_writes = off\n\
         synchronous_commit = off\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n\
         include_if_exists = 'supamigrate_port.conf'\n",
    )?;
    std::fs::write(
        data.join("pg_hba.conf"),
        "# supamigrate sandbox: loopback TCP only, passwords\n\
         host all all 127.0.0.1/32 scram-sha-256\n\
         host all all ::1/128 scram-sha-256\n\
         host replication all 127.0.0.1/32 scram-sha-256\n",
    )
    .map_err(|e| Error::io(format!("writing {}/pg_hba.conf", data.display()), e))?;
    supamigrate::cluster::give_to_server_user(&data.join("pg_hba.conf"))
}

/// Every login role of a fresh copy gets its own random password.
async fn rotate_passwords(
    cluster: &Cluster,
    superuser: &Password,
    postgres: &Password,
) -> Result<()> {
    let mut sql = format!(
        "alter role supabase_admin password {};\nalter role postgres password {};\n",
        crate::quote_literal(&superuser.scram_verifier()),
        crate::quote_literal(&postgres.scram_verifier()),
    );
    for r in LOGIN_ROLES {
        let pw = Password::new(random_hex(16)?);
        sql.push_str(&format!(
            "alter role {r} password {};\n",
            crate::quote_literal(&pw.scram_verifier())
        ));
    }
    let client = connect(&cluster.superuser_conninfo("postgres")).await?;
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| Error::postgres("setting the copy's passwords", e))
}

fn mkdir_traversable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))
}

fn append(path: &Path, text: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Runs the kit's `bootstrap.sh` into `dir/data`, stops the server, and
/// marks the template ready.
fn bootstrap(kit: &Kit, dir: &Path, pw_path: &Path) -> Result<()> {
    for stale in ["data", "data.upstream", "root", "ready"] {
        let p = dir.join(stale);
        if p.is_dir() {
            stop_server(&p);
            std::fs::remove_dir_all(&p)
                .map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
        } else if p.exists() {
            let _ = std::fs::remove_file(&p);
        }
    }
    let password = random_hex(16)?;
    supamigrate::fsutil::write_atomically(pw_path, password.as_bytes(), 0o600)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::io("finding a free loopback port", e))?
        .port();
    let log_path = dir.join("bootstrap.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
    let root = dir.join("root");
    mkdir_traversable(&root)?;
    tracing::info!(kit = %kit.dir.display(), "bootstrapping the Supabase platform template (once per kit version)");
    let status = Command::new("bash")
        .arg(kit.dir.join("bootstrap.sh"))
        .arg(dir.join("data"))
        .arg(port.to_string())
        .env("DB_PASSWORD", &password)
        .env("PLATFORM_ROOT", &root)
        .env("PGBIN", PG15_BIN)
        .stdout(
            log.try_clone()
                .map_err(|e| Error::io("duplicating the log file", e))?,
        )
        .stderr(log)
        .status()
        .map_err(|e| {
            Error::new(
                ErrorKind::Sandbox,
                "starting the platform kit's bootstrap.sh",
            )
            .with_source(e)
        })?;
    stop_server(&dir.join("data"));
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(Error::new(
            ErrorKind::Sandbox,
            format!(
                "the platform kit's bootstrap.sh failed ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        )
        .with_hint("run scripts/setup.sh (it installs the kit's extensions), then try again"));
    }
    std::fs::write(dir.join("ready"), b"")
        .map_err(|e| Error::io(format!("writing {}/ready", dir.display()), e))
}

fn stop_server(data: &Path) {
    if !data.join("postmaster.pid").exists() {
        return;
    }
    let _ = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(PG15_BIN).join("pg_ctl"))
        .arg("-D")
        .arg(data)
        .args(["-m", "fast", "-w", "stop"])
        .output();
}
