//! What `rds create` leaves on disk: a generated master password (when RDS
//! does not manage it) and the target configuration `run` reads, both
//! owner-only and written atomically.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::connect::{random_hex, ConnInfo, Password, SslMode};
use crate::error::{Error, Result};
use crate::fsutil::write_atomically;

/// The generated password in `path`: read back when a run before made it
/// (an interrupted create uses the same one), else generated and written
/// (mode 0600) before the instance is asked for.
pub fn master_password(path: &Path) -> Result<Password> {
    if path.exists() {
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::invalid_input(format!(
                "{} is readable by other users (mode {:o}); a password file must be owner-only",
                path.display(),
                mode & 0o777
            ))
            .with_hint(format!("chmod 600 {}", path.display())));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let pw = text.trim();
        if pw.len() < 8 {
            return Err(Error::invalid_input(format!(
                "{} does not hold a password (RDS wants at least 8 characters)",
                path.display()
            ))
            .with_hint("remove the file to have a new password generated"));
        }
        return Ok(Password::new(pw));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::private_dir(dir)?;
    }
    // 32 hex digits: 128 bits, and none of the characters RDS refuses in a
    // master password (/, ", @, space).
    let pw = random_hex(16)?;
    write_atomically(path, format!("{pw}\n").as_bytes(), 0o600)?;
    Ok(Password::new(pw))
}

/// Where the instance is, for `run`: the runbook's `RDS_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEnv {
    /// Endpoint host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Master user.
    pub user: String,
    /// The CA bundle `sslmode=verify-full` checks the server against.
    pub ca_bundle: PathBuf,
    /// The generated password (managed passwords stay in Secrets Manager).
    pub password: Option<Password>,
    /// The Secrets Manager secret holding a managed password.
    pub secret_arn: Option<String>,
}

impl TargetEnv {
    /// The file's text: `KEY=value` lines a shell can source (`set -a; .
    /// FILE; set +a`) and `run` reads.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# The RDS target, written by `supamigrate rds create` (owner-only).\n# Load it with: set -a; . THIS_FILE; set +a\n",
        );
        let line = |k: &str, v: &str| format!("{k}={}\n", shell_quote(v));
        s += &line("RDS_HOST", &self.host);
        s += &line("RDS_PORT", &self.port.to_string());
        s += &line("RDS_DATABASE", &self.database);
        s += &line("RDS_USER", &self.user);
        s += &line("RDS_SSLMODE", "verify-full");
        s += &line("RDS_SSLROOTCERT", &self.ca_bundle.display().to_string());
        match (&self.password, &self.secret_arn) {
            (Some(pw), _) => s += &line("RDS_PASSWORD", pw.expose()),
            (None, Some(arn)) => {
                s += &format!(
                    "# The password is in AWS Secrets Manager, secret {arn}: put it in ~/.pgpass\n# (or RDS_PASSWORD) before `supamigrate run`.\n"
                )
            }
            (None, None) => {}
        }
        s
    }

    /// The connection `run` makes to it, with `password` (the generated one,
    /// or the managed one read from Secrets Manager): verify-full against
    /// the CA bundle, which must exist.
    pub fn conninfo(&self, password: Password) -> Result<ConnInfo> {
        if !self.ca_bundle.is_file() {
            return Err(Error::invalid_input(format!(
                "the RDS CA bundle {} does not exist: the connection to the instance checks its certificate (sslmode=verify-full) against it",
                self.ca_bundle.display()
            ))
            .with_hint("download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem there, or give --ca-bundle FILE"));
        }
        Ok(ConnInfo {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: Some(password),
            dbname: self.database.clone(),
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some(self.ca_bundle.clone()),
            connect_timeout: None,
            application_name: None,
            options: None,
        })
    }

    /// Writes it to `path`, mode 0600, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::private_dir(dir)?;
        }
        write_atomically(path, self.render().as_bytes(), 0o600)
    }
}

/// `'…'` with `'` escaped, unless the value needs no quoting.
fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_is_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/master-password");
        let a = master_password(&path).unwrap();
        assert_eq!(a.expose().len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(master_password(&path).unwrap().expose(), a.expose());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = master_password(&path).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("owner-only"),
            "{e}"
        );
    }

    #[test]
    fn env_file_sources_in_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.env");
        let env = TargetEnv {
            host: "db.abc.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            database: "app db".into(),
            user: "postgres".into(),
            ca_bundle: dir.path().join("global-bundle.pem"),
            password: Some(Password::new("it's")),
            secret_arn: None,
        };
        env.write(&path).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -a; . {}; set +a; printf '%s|%s|%s|%s' \"$RDS_HOST\" \"$RDS_DATABASE\" \"$RDS_PASSWORD\" \"$RDS_SSLMODE\"",
                path.display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "db.abc.eu-west-1.rds.amazonaws.com|app db|it's|verify-full"
        );
    }
}
