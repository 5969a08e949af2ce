//! A local PostgreSQL cluster made with the system's `initdb` and `pg_ctl`:
//! the throwaway server of `backup verify --sandbox`, and the clusters of the
//! `supamigrate-sandbox` crate.
//!
//! It listens on a free loopback port only (no Unix socket), authenticates with
//! SCRAM passwords, and, when we run as root, runs as the `postgres` OS user
//! (PostgreSQL refuses to run as root).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Uid};

use crate::connect::{find_pg_tool, random_hex, ConnInfo, Password, SslMode};
use crate::error::{Error, ErrorKind, Result};

/// What to create.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The cluster's own directory; created, must not exist or be empty.
    pub dir: PathBuf,
    /// The bootstrap superuser's name.
    pub superuser: String,
    /// Extra `postgresql.conf` settings.
    pub settings: Vec<(String, String)>,
    /// Serve TLS with this certificate and key (PEM).
    pub tls: Option<ServerTls>,
    /// The directory of the server programs (`initdb`, `pg_ctl`, `postgres`)
    /// of another major than the system's; `None`: found as any
    /// PostgreSQL program is ([`find_pg_tool`]). Kept with the cluster.
    pub bin_dir: Option<PathBuf>,
}

/// A server certificate and key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Certificate chain.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
}

/// A cluster on disk, running or not.
#[derive(Debug, Clone)]
pub struct Cluster {
    dir: PathBuf,
    superuser: String,
    password: Password,
    port: u16,
    bin_dir: Option<PathBuf>,
}

/// The file in a cluster's directory naming its server programs' directory.
const BIN_DIR_FILE: &str = "server-bin";

/// The OS user to run the server as: `postgres` when we are root, else ourselves.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

fn run_as() -> Result<Option<RunAs>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(|e| Error::new(ErrorKind::Sandbox, "looking up the postgres OS user").with_source(e))?
        .ok_or_else(|| {
            Error::new(ErrorKind::Sandbox, "running as root, but there is no `postgres` OS user to run the server as")
                .with_hint("run scripts/setup.sh (installing the postgresql package creates the user), or run as a non-root user")
        })?;
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

/// Makes `path` owned by the server's OS user (a no-op unless we are root).
pub fn give_to_server_user(path: &Path) -> Result<()> {
    if let Some(r) = run_as()? {
        nix::unistd::chown(path, Some(r.uid), Some(r.gid)).map_err(|e| {
            Error::new(ErrorKind::Io, format!("chown {}", path.display())).with_source(e)
        })?;
    }
    Ok(())
}

/// Checks that the server's OS user can reach `dir` (every ancestor searchable).
pub fn check_reachable_by_server_user(dir: &Path) -> Result<()> {
    let Some(r) = run_as()? else {
        return Ok(());
    };
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let searchable = mode & 0o001 != 0
            || (meta.uid() == r.uid.as_raw() && mode & 0o100 != 0)
            || (meta.gid() == r.gid.as_raw() && mode & 0o010 != 0);
        if !searchable {
            return Err(Error::invalid_input(format!(
                "the postgres OS user cannot reach {} ({} is mode {:o})",
                dir.display(),
                ancestor.display(),
                mode & 0o7777
            ))
            .with_hint("choose a --dir under /tmp or another directory every user can traverse"));
        }
    }
    Ok(())
}

fn write_owned(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    give_to_server_user(path)
}

impl Cluster {
    /// Creates the cluster (initdb) and configures it; it is not started.
    pub fn init(spec: &ClusterSpec) -> Result<Cluster> {
        let dir = &spec.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
        give_to_server_user(dir)?;
        let password = Password::new(random_hex(16)?);
        let pwfile = dir.join("initdb.pw");
        write_owned(&pwfile, password.expose(), 0o600)?;
        if let Some(bin) = &spec.bin_dir {
            std::fs::write(dir.join(BIN_DIR_FILE), bin.as_os_str().as_encoded_bytes())
                .map_err(|e| Error::io(format!("writing {}/{BIN_DIR_FILE}", dir.display()), e))?;
        }
        let initdb = server_tool(spec.bin_dir.as_deref(), "initdb")?;
        let mut cmd = server_command(&initdb, dir)?;
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-U")
            .arg(&spec.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ]);
        let result = run_tool(cmd, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        result?;

        let data = dir.join("data");
        let mut conf = String::from("\n# supamigrate sandbox\n");
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "'127.0.0.1'".into()),
            ("unix_socket_directories".into(), "''".into()),
            // A sandbox holds throw-away data: trade durability for speed.
            ("fsync".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("max_connections".into(), "100".into()),
            ("shared_buffers".into(), "128MB".into()),
            ("log_line_prefix".into(), "'%m [%p] %q%u@%d '".into()),
        ];
        if let Some(tls) = &spec.tls {
            write_owned(&data.join("server.crt"), &tls.cert_pem, 0o600)?;
            write_owned(&data.join("server.key"), &tls.key_pem, 0o600)?;
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), "'server.crt'".into()));
            settings.push(("ssl_key_file".into(), "'server.key'".into()));
        }
        settings.extend(spec.settings.iter().cloned());
        for (k, v) in settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        conf.push_str("include_if_exists = 'supamigrate_port.conf'\n");
        let conf_path = data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| Error::io(format!("writing {}", conf_path.display()), e))?;
        write_owned(
            &data.join("pg_hba.conf"),
            "# supamigrate sandbox: loopback TCP only, passwords\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
            0o600,
        )?;
        Ok(Cluster {
            dir: dir.clone(),
            superuser: spec.superuser.clone(),
            password,
            port: 0,
            bin_dir: spec.bin_dir.clone(),
        })
    }

    /// A cluster created earlier.
    pub fn open(dir: PathBuf, superuser: String, password: Password, port: u16) -> Cluster {
        let bin_dir = std::fs::read(dir.join(BIN_DIR_FILE))
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));
        Cluster {
            dir,
            superuser,
            password,
            port,
            bin_dir,
        }
    }

    /// The server program `name` of this cluster's major.
    fn tool(&self, name: &str) -> Result<PathBuf> {
        server_tool(self.bin_dir.as_deref(), name)
    }

    /// The major version of the cluster's data directory (`PG_VERSION`).
    pub fn major(&self) -> Result<u32> {
        let path = self.dir.join("data").join("PG_VERSION");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        text.trim().parse().map_err(|_| {
            Error::new(
                ErrorKind::Sandbox,
                format!("{} holds no major version", path.display()),
            )
        })
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port it listens on (last started).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bootstrap superuser's name.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// The bootstrap superuser's password.
    pub fn superuser_password(&self) -> &Password {
        &self.password
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Connection parameters for `user`/`password` to database `dbname`.
    pub fn conninfo(&self, user: &str, password: &Password, dbname: &str) -> ConnInfo {
        ConnInfo {
            host: "127.0.0.1".into(),
            port: self.port,
            user: user.into(),
            password: Some(password.clone()),
            dbname: dbname.into(),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_timeout: Some(10),
            application_name: None,
            options: None,
        }
    }

    /// The bootstrap superuser's connection to `dbname`.
    pub fn superuser_conninfo(&self, dbname: &str) -> ConnInfo {
        self.conninfo(&self.superuser, &self.password, dbname)
    }

    /// Turns TLS on with `tls` (ssl = on, this certificate and key) and
    /// restarts the server, as an RDS instance always has it; with `force`,
    /// connections without TLS are refused (RDS's `rds.force_ssl = 1`).
    pub fn enable_tls(&self, tls: &ServerTls, force: bool) -> Result<()> {
        let data = self.dir.join("data");
        if force {
            let hba = data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba)
                .map_err(|e| Error::io(format!("reading {}", hba.display()), e))?;
            write_owned(
                &hba,
                &format!(
                    "hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n{rules}"
                ),
                0o600,
            )?;
        }
        write_owned(&data.join("server.crt"), &tls.cert_pem, 0o600)?;
        write_owned(&data.join("server.key"), &tls.key_pem, 0o600)?;
        let conf_path = data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .and_then(|mut f| {
                f.write_all(
                    b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                )
            })
            .map_err(|e| Error::io(format!("writing {}", conf_path.display()), e))?;
        self.restart()
    }

    /// Restarts the running server on its port (`pg_ctl restart -m fast`):
    /// every session is terminated, as in a failover or a reboot.
    pub fn restart(&self) -> Result<()> {
        let pg_ctl = self.tool("pg_ctl")?;
        let mut cmd = server_command(&pg_ctl, &self.dir)?;
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-m", "fast", "restart"]);
        run_tool(cmd, "pg_ctl restart")
    }

    /// Starts the server on a free loopback port (keeping the last port if free).
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let pg_ctl = self.tool("pg_ctl")?;
        let mut last_err = None;
        for attempt in 0..4 {
            let port = if attempt == 0 && self.port != 0 && port_is_free(self.port) {
                self.port
            } else {
                free_port()?
            };
            write_owned(
                &self.dir.join("data").join("supamigrate_port.conf"),
                &format!("port = {port}\n"),
                0o600,
            )?;
            let mut cmd = server_command(&pg_ctl, &self.dir)?;
            cmd.arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "60", "start"]);
            match run_tool(cmd, "pg_ctl start") {
                Ok(()) => {
                    self.port = port;
                    tracing::debug!(dir = %self.dir.display(), port, "cluster started");
                    return Ok(());
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    if log.contains("could not bind") || log.contains("Address already in use") {
                        last_err = Some(e);
                        continue;
                    }
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(Error::new(
                        ErrorKind::Sandbox,
                        format!(
                            "starting the cluster in {} failed: {}\nserver log:\n{}",
                            self.dir.display(),
                            e.message(),
                            tail.join("\n")
                        ),
                    ));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::new(ErrorKind::Sandbox, "no free port found")))
    }

    /// Stops the server (fast shutdown) and waits until it has exited.
    pub fn stop(&self) -> Result<()> {
        if !self.dir.join("data").join("postmaster.pid").exists() {
            return Ok(());
        }
        let pg_ctl = self.tool("pg_ctl")?;
        let mut cmd = server_command(&pg_ctl, &self.dir)?;
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        let result = run_tool(cmd, "pg_ctl stop");
        if result.is_err() && !self.is_running() {
            return Ok(());
        }
        result
    }

    /// The postmaster's pid, if its pid file says it runs and the process exists.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        process_alive(pid).then_some(pid)
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }
}

/// `name` in `bin_dir`, else wherever [`find_pg_tool`] finds it.
fn server_tool(bin_dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    let Some(bin) = bin_dir else {
        return find_pg_tool(name);
    };
    let path = bin.join(name);
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::new(
        ErrorKind::Tool,
        format!("PostgreSQL program {} not found", path.display()),
    )
    .with_hint("run scripts/setup.sh (it installs the servers of other majors)"))
}

/// Whether process `pid` exists and is not a zombie (an exited process its
/// parent has not reaped yet still answers `kill(pid, 0)`).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && !std::path::Path::new("/proc/self").exists()
        }
    }
}

/// A command for a server program, as the server's OS user, in `dir`.
fn server_command(program: &Path, dir: &Path) -> Result<Command> {
    // A cleared environment: the server must not inherit our connection
    // strings and passwords.
    let mut cmd = crate::connect::child(program);
    cmd.current_dir(dir).env("LC_ALL", "C.UTF-8");
    if let Some(r) = run_as()? {
        cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
        cmd.env("HOME", dir);
    }
    Ok(cmd)
}

fn run_tool(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| Error::new(ErrorKind::Tool, format!("starting {what}")).with_source(e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Tool,
        format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    ))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("finding a free loopback port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free loopback port", e))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
