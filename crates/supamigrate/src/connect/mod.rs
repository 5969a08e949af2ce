//! Connections: parsing libpq connection strings, connecting with the right TLS
//! mode, and starting libpq tools (psql, pg_dump…) without leaking passwords.

mod conninfo;
pub mod passfile;
pub mod raw;
mod tls;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use conninfo::{ConnInfo, Password, SslMode};
use tokio_postgres::Client;

use crate::error::{Error, ErrorKind, Result};

/// Connects to `info`, spawning the connection task on the current runtime.
///
/// TLS follows libpq's `sslmode` (see [`tls`](self)); certificate problems come
/// back as [`ErrorKind::Tls`] with a message naming the host or CA file.
pub async fn connect(info: &ConnInfo) -> Result<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&info.host)
        .port(info.port)
        .user(&info.user)
        .dbname(&info.dbname)
        .application_name(info.application_name.as_deref().unwrap_or("supamigrate"));
    if let Some(pw) = &info.password {
        config.password(pw.expose());
    }
    let timeout = std::time::Duration::from_secs(info.connect_timeout_or_default());
    config.connect_timeout(timeout);
    // Keepalives find a dead peer on an idle connection (a worker waiting on a
    // lock, a snapshot session holding its snapshot) within about a minute.
    config
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(30))
        .keepalives_interval(std::time::Duration::from_secs(10))
        .keepalives_retries(3);
    if let Some(o) = &info.options {
        config.options(o);
    }
    warn_pooler(info);
    // connect_timeout in the driver covers the TCP connect only; a server that
    // accepts and never answers must time out too, as with libpq.
    match tokio::time::timeout(timeout, connect_with(&config, info)).await {
        Ok(r) => r,
        Err(_) => Err(no_answer(info, timeout)),
    }
}

/// The server did not finish the handshake within `connect_timeout`.
pub(crate) fn no_answer(info: &ConnInfo, timeout: std::time::Duration) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!(
            "connecting to {info}: no answer from the server within {} s",
            timeout.as_secs()
        ),
    )
    .with_hint("check the host and port (something there accepts connections but does not speak PostgreSQL), or raise connect_timeout in the URL")
}

async fn connect_with(config: &tokio_postgres::Config, info: &ConnInfo) -> Result<Client> {
    let mut config = config.clone();
    let result = match tls::client_config(info)? {
        None => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(c, conn)| (c, tokio::spawn(drive(conn))))
        }
        Some(tls_config) => {
            config.ssl_mode(match info.sslmode {
                SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
            config
                .connect(tls)
                .await
                .map(|(c, conn)| (c, tokio::spawn(drive(conn))))
        }
    };
    match result {
        Ok((client, _task)) => Ok(client),
        Err(e) => Err(connect_error(e, info)),
    }
}

/// Supabase's transaction pooler (Supavisor) listens on 6543: session state,
/// snapshots and COPY do not work through it. Said once per process and URL.
fn warn_pooler(info: &ConnInfo) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if info.port != 6543 {
        return;
    }
    let key = info.to_string();
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&key) {
        tracing::warn!(
            "{info} uses port 6543, Supabase's transaction pooler: exported snapshots, COPY and pg_dump need a session connection; use port 5432 (the direct connection or the session pooler)"
        );
        warned.push(key);
    }
}

/// What [`probe`] found about a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    /// `server_version`.
    pub server_version: String,
    /// The role we logged in as.
    pub user: String,
    /// Whether that role is superuser.
    pub superuser: bool,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// Whether `info.dbname` exists (when not, the probe used `postgres`).
    pub database_exists: bool,
}

/// Connects and reports the server version, login role and TLS state. When the
/// database does not exist yet, probes the server through `postgres` instead.
pub async fn probe(info: &ConnInfo) -> Result<Probe> {
    let (client, database_exists) = match connect(info).await {
        Ok(c) => (c, true),
        Err(e) if e.kind() == ErrorKind::InvalidInput && info.dbname != "postgres" => {
            (connect(&info.with_dbname("postgres")).await?, false)
        }
        Err(e) => return Err(e),
    };
    let row = client
        .query_one(
            "select current_setting('server_version'), current_user::text, \
                    (select rolsuper from pg_roles where rolname = current_user), \
                    coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .map_err(|e| Error::postgres(format!("probing {info}"), e))?;
    Ok(Probe {
        server_version: row.get(0),
        user: row.get(1),
        superuser: row.get(2),
        tls: row.get(3),
        database_exists,
    })
}

async fn drive<F>(conn: F)
where
    F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

fn connect_error(e: tokio_postgres::Error, info: &ConnInfo) -> Error {
    if let Some((message, hint)) = tls::explain_tls_failure(&e, info) {
        return Error::new(ErrorKind::Tls, format!("connecting to {info}: {message}"))
            .with_hint(hint)
            .with_source(e);
    }
    let detail = error_chain(&e);
    if info.password.is_none()
        && (detail.contains("password missing")
            || e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD))
    {
        return Error::new(
            ErrorKind::Auth,
            format!("connecting to {info}: the server asks for a password and none was given"),
        )
        .with_hint("give it in the connection URL (percent-encoded), or set RDS_PASSWORD (the target) or PGPASSWORD, or add a line for this server to ~/.pgpass (or the file PGPASSFILE names, mode 0600), or set [target] password in supamigrate.toml");
    }
    if e.as_db_error().is_some() {
        return Error::postgres(format!("connecting to {info}"), e);
    }
    if detail.contains("server does not support TLS") {
        // Not transient: the server answered, and said no. Said once (the
        // cause is in the message, not attached again).
        return Error::new(
            ErrorKind::Tls,
            format!(
                "connecting to {info}: the server has TLS turned off, and sslmode={} requires it",
                info.sslmode.as_str()
            ),
        )
        .with_hint("the server does not offer TLS: use sslmode=prefer or disable for this server, or turn ssl on at the server");
    }
    Error::new(
        ErrorKind::Connection,
        format!("connecting to {info}: {detail}"),
    )
    .with_hint("check that the host and port are right and the server is running and reachable")
    .with_source(e)
}

/// `e` and its causes, joined with ": ", without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A libpq tool (psql, pg_dump, pg_restore…) set up to connect to one server.
///
/// The child starts from a cleared environment (see [`child`]); the connection
/// goes through `PG*` variables; the password through a passfile that has no
/// name in any folder: an anonymous file only this user can read, passed as an
/// inherited descriptor (`PGPASSFILE=/proc/self/fd/N`). When this process ends,
/// however it ends (SIGKILL included), the file is gone with it, and the child
/// is killed with it. Nothing secret is in the child's argv or environment.
pub struct PgCommand {
    command: Command,
    _passfile: Option<std::fs::File>,
}

impl PgCommand {
    /// `program` (a path or a name found by [`find_pg_tool`]) set up for `info`.
    pub fn new(program: impl AsRef<Path>, info: &ConnInfo) -> Result<PgCommand> {
        let mut command = child(program.as_ref());
        for (k, v) in info.libpq_env() {
            command.env(k, v);
        }
        let passfile = match &info.password {
            Some(pw) => {
                let f = anonymous_passfile(pw.expose())?;
                inherit_fd(&mut command, &f);
                command.env("PGPASSFILE", format!("/proc/self/fd/{}", f.as_raw_fd()));
                Some(f)
            }
            None => None,
        };
        Ok(PgCommand {
            command,
            _passfile: passfile,
        })
    }

    /// The command, to add arguments and run. Keep the `PgCommand` alive until
    /// the child has exited: it owns the passfile's descriptor.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs to completion and returns stdout; a non-zero exit is a [`ErrorKind::Tool`] error with stderr.
    pub fn output(mut self) -> Result<String> {
        let program = self.command.get_program().to_string_lossy().into_owned();
        let out = self.command.output().map_err(|e| {
            Error::new(ErrorKind::Tool, format!("starting {program}")).with_source(e)
        })?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Tool,
                format!(
                    "{program} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Variables a child may see: where programs and locales are, the user and
/// home (libpq reads `~/.postgresql/` for certificates), time zone and temp
/// folder. Everything else (our `SUPABASE_DB_URL`, `RDS_URL`,
/// `APP_DB_PASSWORD`, AWS keys, `PGPASSWORD`…) is not passed on.
const CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_COLLATE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_MONETARY",
    "TZ",
    "TMPDIR",
    "TERM",
];

/// A child process of ours: a cleared environment with [`CHILD_ENV`] only,
/// and killed when this process dies (`PR_SET_PDEATHSIG`), so a kill of
/// supamigrate never leaves a pg_dump running. Run it to completion on the
/// thread that started it (the signal follows the thread).
#[allow(unsafe_code)]
pub fn child(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for var in CHILD_ENV {
        if let Some(v) = std::env::var_os(var) {
            command.env(var, v);
        }
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // The parent may have died between fork and prctl.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::other("the parent process is gone"));
            }
            Ok(())
        });
    }
    command
}

/// A file with the passfile line and no name: removed by the kernel when the
/// last descriptor closes, so no exit path leaves it behind.
fn anonymous_passfile(password: &str) -> Result<std::fs::File> {
    use std::io::Seek;
    use std::os::unix::fs::PermissionsExt;
    // tempfile() opens with O_TMPFILE (or creates and unlinks at once); its
    // mode follows the umask, and libpq ignores a passfile others can read.
    let mut f = tempfile::tempfile().map_err(|e| Error::io("creating a passfile", e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("making the passfile owner-only", e))?;
    writeln!(f, "*:*:*:*:{}", escape_passfile(password))
        .and_then(|_| f.flush())
        .and_then(|_| f.rewind())
        .map_err(|e| Error::io("writing a passfile", e))?;
    Ok(f)
}

/// Lets the child inherit `f` under the same descriptor number.
#[allow(unsafe_code)]
fn inherit_fd(command: &mut Command, f: &std::fs::File) {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl is async-signal-safe; it only clears FD_CLOEXEC in the child.
    unsafe {
        command.pre_exec(move || {
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
                .map_err(std::io::Error::from)?;
            let mut flags = nix::fcntl::FdFlag::from_bits_truncate(flags);
            flags.remove(nix::fcntl::FdFlag::FD_CLOEXEC);
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags))
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// `n` random bytes from the OS, hex-encoded (generated passwords, scratch
/// database names).
pub fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(hex::encode(buf))
}

fn escape_passfile(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// Directories holding PostgreSQL server binaries, newest major version first:
/// `$SUPAMIGRATE_PG_BIN` if set, then `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SUPAMIGRATE_PG_BIN") {
        dirs.push(PathBuf::from(d));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, p)| p));
    dirs
}

/// Finds a PostgreSQL program (`initdb`, `pg_dump`…): in [`pg_bin_dirs`], then on `PATH`.
pub fn find_pg_tool(name: &str) -> Result<PathBuf> {
    let from_dirs = pg_bin_dirs().into_iter().map(|d| d.join(name));
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_dirs
        .chain(from_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::new(ErrorKind::Tool, format!("PostgreSQL program {name} not found"))
                .with_hint("run scripts/setup.sh, or install the PostgreSQL server package (Debian: postgresql), or set SUPAMIGRATE_PG_BIN to its bin directory")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passfile_escapes_colons_and_backslashes() {
        assert_eq!(escape_passfile(r"a:b\c"), r"a\:b\\c");
    }

    #[test]
    fn pg_command_keeps_the_password_out_of_argv_env_and_folders() {
        std::env::set_var("SUPAMIGRATE_TEST_SECRET_VAR", "hunter2");
        let info = ConnInfo::parse("postgresql://u:hunter2:x@127.0.0.1:1/db").unwrap();
        let mut pc = PgCommand::new("/bin/sh", &info).unwrap();
        pc.command()
            .arg("-c")
            .arg("cat \"$PGPASSFILE\"; echo; env; readlink \"$PGPASSFILE\"; stat -L -c mode=%a \"$PGPASSFILE\"");
        let args: Vec<_> = pc
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.iter().all(|a| !a.contains("hunter2")));
        let out = pc.output().unwrap();
        let (passfile, rest) = out.split_once('\n').unwrap();
        assert_eq!(passfile, "*:*:*:*:hunter2\\:x");
        assert!(!rest.contains("hunter2"), "the child's environment: {rest}");
        assert!(
            rest.contains("(deleted)"),
            "the passfile has no name: {rest}"
        );
        assert!(rest.contains("mode=600"), "owner-only: {rest}");
    }
}
