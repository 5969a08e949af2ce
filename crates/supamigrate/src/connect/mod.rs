//! Connections: parsing libpq connection strings, connecting with the right TLS
//! mode, and starting libpq tools (psql, pg_dump…) without leaking passwords.

mod conninfo;
mod tls;

use std::io::Write;
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
    if let Some(t) = info.connect_timeout {
        config.connect_timeout(std::time::Duration::from_secs(t));
    }
    if let Some(o) = &info.options {
        config.options(o);
    }
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
    if e.as_db_error().is_some() {
        return Error::postgres(format!("connecting to {info}"), e);
    }
    let detail = error_chain(&e);
    let hint = if detail.contains("server does not support TLS") {
        "the server does not offer TLS: use sslmode=prefer or disable, or turn ssl on at the server"
    } else {
        "check that the host and port are right and the server is running and reachable"
    };
    Error::new(
        ErrorKind::Connection,
        format!("connecting to {info}: {detail}"),
    )
    .with_hint(hint)
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
/// The connection goes through `PG*` environment variables; the password through
/// a passfile only this process can read, deleted when the `PgCommand` is dropped.
/// Nothing secret is in the child's argv or environment.
pub struct PgCommand {
    command: Command,
    _passfile: Option<tempfile::NamedTempFile>,
}

impl PgCommand {
    /// `program` (a path or a name found by [`find_pg_tool`]) set up for `info`.
    pub fn new(program: impl AsRef<Path>, info: &ConnInfo) -> Result<PgCommand> {
        let mut command = Command::new(program.as_ref());
        for var in INHERITED_PG_VARS {
            command.env_remove(var);
        }
        for (k, v) in info.libpq_env() {
            command.env(k, v);
        }
        let passfile = match &info.password {
            Some(pw) => {
                let mut f = tempfile::Builder::new()
                    .prefix("supamigrate-pgpass-")
                    .tempfile()
                    .map_err(|e| Error::io("creating a passfile", e))?;
                // tempfile creates files with mode 0600.
                writeln!(f, "*:*:*:*:{}", escape_passfile(pw.expose()))
                    .and_then(|_| f.flush())
                    .map_err(|e| Error::io("writing a passfile", e))?;
                command.env("PGPASSFILE", f.path());
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
    /// the child has exited: dropping it deletes the passfile.
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

/// libpq variables a parent may have set that must not leak into our children.
const INHERITED_PG_VARS: &[&str] = &[
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGHOSTADDR",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGREQUIRESSL",
];

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
    fn pg_command_keeps_the_password_out_of_argv_and_env() {
        let info = ConnInfo::parse("postgresql://u:hunter2:x@127.0.0.1:1/db").unwrap();
        let mut pc = PgCommand::new("psql", &info).unwrap();
        pc.command().arg("-c").arg("select 1");
        let cmd = pc.command();
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.iter().all(|a| !a.contains("hunter2")));
        let mut passfile = None;
        for (k, v) in cmd.get_envs() {
            let v = v
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(!v.contains("hunter2"), "{k:?}");
            if k == "PGPASSFILE" {
                passfile = Some(v);
            }
        }
        let passfile = passfile.expect("PGPASSFILE set");
        let content = std::fs::read_to_string(&passfile).unwrap();
        assert_eq!(content, "*:*:*:*:hunter2\\:x\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&passfile).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "passfile readable by others: {mode:o}");
        drop(pc);
        assert!(!Path::new(&passfile).exists(), "passfile removed on drop");
    }
}
