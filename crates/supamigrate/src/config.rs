//! Settings: where the source and target are, from flags, environment and file.
//!
//! Precedence, for every setting: **command-line flag > environment variable >
//! `supamigrate.toml`**. The environment variables are the seed runbook's:
//!
//! | setting | flag | environment | file |
//! |---|---|---|---|
//! | source | `--source-url` | `SUPABASE_DB_URL` | `[source] url` |
//! | target | `--target-url` | `RDS_URL`, else `RDS_HOST` `RDS_PORT` `RDS_DATABASE` `RDS_USER` `RDS_PASSWORD` | `[target] url`, else `host` `port` `database` `user` `password` |
//! | project ref | `--project-ref` | `SUPABASE_PROJECT_REF` | `project_ref` |
//!
//! Under these, libpq's conventions: parameters a connection string leaves
//! out come from `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`. A connection without a
//! password takes one from `RDS_PASSWORD` or the file's `[target] password`
//! (the target only), then `PGPASSWORD`, then the password file
//! (`PGPASSFILE`, else `~/.pgpass`). [`resolve`] is pure: it takes the
//! environment as a function, so the rules are tested without touching the
//! process environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::connect::{ConnInfo, Password};
use crate::error::{Error, Result};

/// The name of the configuration file read from the current directory when
/// `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "supamigrate.toml";

/// `supamigrate.toml`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Supabase project ref (used to recognize Storage URLs).
    pub project_ref: Option<String>,
    /// The Supabase database.
    #[serde(default)]
    pub source: SourceSection,
    /// The RDS database.
    #[serde(default)]
    pub target: TargetSection,
}

/// `[source]` in `supamigrate.toml`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Connection string.
    pub url: Option<String>,
}

/// `[target]` in `supamigrate.toml`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// Connection string; when set, the parts below are only used for a missing password.
    pub url: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Database name.
    pub database: Option<String>,
    /// Master user.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// `sslmode` when built from parts.
    pub sslmode: Option<String>,
    /// `sslrootcert` when built from parts.
    pub sslrootcert: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_input(format!("cannot read configuration file {}", path.display()))
                .with_source(e)
                .with_hint("check the path given to --config")
        })?;
        Self::parse(&text).map_err(|e| {
            Error::invalid_input(format!(
                "configuration file {} is not valid: {}",
                path.display(),
                e.message()
            ))
            .with_hint(
                e.hint()
                    .unwrap_or("see the README for the keys supamigrate.toml accepts")
                    .to_string(),
            )
        })
    }

    /// Parses the text of a configuration file. Errors name the line and
    /// key, never the value of a secret (`password`).
    pub fn parse(text: &str) -> Result<FileConfig> {
        let line_of = |span: Option<std::ops::Range<usize>>| {
            span.map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1)
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = line_of(e.span())
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            Error::invalid_input(format!("{at}not TOML ({})", e.message().trim()))
        })?;
        check_secrets(&table, "")?;
        toml::from_str(text).map_err(|e| {
            let line = line_of(e.span());
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string());
            let mut at = String::new();
            if let Some(l) = line {
                at.push_str(&format!("line {l}"));
            }
            if let Some(k) = key {
                at.push_str(&format!(" (key {k})"));
            }
            Error::invalid_input(format!("{at}: {}", e.message().trim()))
        })
    }
}

/// Secret keys must hold strings; a wrong one is refused without its value.
fn check_secrets(table: &toml::Table, prefix: &str) -> Result<()> {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => check_secrets(t, &format!("{key}."))?,
            toml::Value::String(_) => {}
            _ if k.contains("password") || k.contains("secret") => {
                return Err(Error::invalid_input(format!(
                    "key {key} must be a string (its value is not shown)"
                ))
                .with_hint(format!("quote it: {k} = \"...\"")));
            }
            _ => {}
        }
    }
    Ok(())
}

impl FileConfig {
    /// `--config FILE` if given (it must exist), else `./supamigrate.toml` if present.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<FileConfig>> {
        match explicit {
            Some(p) => Self::load(p).map(Some),
            None => {
                let p = Path::new(DEFAULT_CONFIG_FILE);
                if p.is_file() {
                    Self::load(p).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// Values given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--source-url`.
    pub source_url: Option<String>,
    /// `--target-url`.
    pub target_url: Option<String>,
    /// `--project-ref`.
    pub project_ref: Option<String>,
}

/// Resolved settings. Either side may be absent; commands that need it call
/// [`Settings::source`] / [`Settings::target`], which explain what to set.
#[derive(Debug, Clone)]
pub struct Settings {
    source: Option<ConnInfo>,
    target: Option<ConnInfo>,
    /// Supabase project ref.
    pub project_ref: Option<String>,
    /// The source is plain PostgreSQL, not a Supabase project: allowed
    /// only when asked for (`--plain-source`).
    pub plain_source: bool,
}

impl Settings {
    /// Whether a target is configured.
    pub fn has_target(&self) -> bool {
        self.target.is_some()
    }

    /// These settings with `target` as the target (an instance just made).
    pub fn with_target(mut self, target: ConnInfo) -> Settings {
        self.target = Some(target);
        self
    }

    /// Settings with both connections known (the demo's sandbox).
    pub fn new(source: ConnInfo, target: ConnInfo, project_ref: Option<String>) -> Settings {
        Settings {
            source: Some(source),
            target: Some(target),
            project_ref,
            plain_source: false,
        }
    }

    /// The source connection, or an error saying how to give one.
    pub fn source(&self) -> Result<&ConnInfo> {
        self.source.as_ref().ok_or_else(|| {
            Error::invalid_input("no source database given").with_hint(
                "set SUPABASE_DB_URL, pass --source-url, or set [source] url in supamigrate.toml",
            )
        })
    }

    /// The target connection, or an error saying how to give one.
    pub fn target(&self) -> Result<&ConnInfo> {
        self.target.as_ref().ok_or_else(|| {
            Error::invalid_input("no target database given")
                .with_hint("set RDS_URL (or RDS_HOST, RDS_PORT, RDS_DATABASE, RDS_USER, RDS_PASSWORD), pass --target-url, or set [target] in supamigrate.toml")
        })
    }
}

/// Applies the precedence rules. `env` looks up an environment variable.
///
/// ```
/// use supamigrate::config::{resolve, Flags};
///
/// let env = |k: &str| match k {
///     "SUPABASE_DB_URL" => Some("postgresql://postgres@db.abc.supabase.co/postgres".to_string()),
///     "RDS_HOST" => Some("app.rds.amazonaws.com".to_string()),
///     "RDS_DATABASE" => Some("app_production".to_string()),
///     "RDS_PASSWORD" => Some("pw".to_string()),
///     _ => None,
/// };
/// let flags = Flags { target_url: None, ..Flags::default() };
/// let settings = resolve(&flags, &env, None)?;
/// assert_eq!(settings.target()?.host, "app.rds.amazonaws.com");
/// assert_eq!(settings.source()?.dbname, "postgres");
/// # Ok::<(), supamigrate::Error>(())
/// ```
pub fn resolve(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&FileConfig>,
) -> Result<Settings> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let default_file = FileConfig::default();
    let file = file.unwrap_or(&default_file);
    Ok(Settings {
        source: resolve_source(flags, &env, file)?,
        target: resolve_target(flags, &env, file)?,
        project_ref: resolve_project_ref(flags, &env, file)?,
        plain_source: false,
    })
}

fn resolve_source(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<Option<ConnInfo>> {
    match flags
        .source_url
        .clone()
        .map(|u| (u, "--source-url"))
        .or_else(|| env("SUPABASE_DB_URL").map(|u| (u, "SUPABASE_DB_URL")))
        .or_else(|| file.source.url.clone().map(|u| (u, "[source] url")))
    {
        Some((url, from)) => {
            let mut info = parse_from(&url, from, env)?;
            fill_password(&mut info, None, env);
            Ok(Some(info))
        }
        None => Ok(None),
    }
}

/// A connection without a password in its string takes one from, in order:
/// `ours` (`RDS_PASSWORD`, `[target] password`), `PGPASSWORD`, then the
/// password file (`PGPASSFILE`, else `~/.pgpass`), as libpq does.
fn fill_password(info: &mut ConnInfo, ours: Option<String>, env: &dyn Fn(&str) -> Option<String>) {
    if info.password.is_some() {
        return;
    }
    let file = || {
        let path = env("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
        crate::connect::passfile::lookup(&path, &info.host, info.port, &info.dbname, &info.user)
    };
    info.password = ours
        .or_else(|| env("PGPASSWORD"))
        .or_else(file)
        .map(Password::new);
}

fn resolve_target(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<Option<ConnInfo>> {
    let password_fallback = env("RDS_PASSWORD").or_else(|| file.target.password.clone());
    let target = if let Some(url) = flags.target_url.clone() {
        Some(parse_from(&url, "--target-url", env)?)
    } else if let Some(url) = env("RDS_URL") {
        Some(parse_from(&url, "RDS_URL", env)?)
    } else if let Some(host) = env("RDS_HOST") {
        Some(from_parts(
            host,
            [
                env("RDS_PORT"),
                env("RDS_DATABASE"),
                env("RDS_USER"),
                env("RDS_SSLMODE"),
                env("RDS_SSLROOTCERT"),
            ],
            "RDS_* variables",
            env,
        )?)
    } else if let Some(url) = file.target.url.clone() {
        Some(parse_from(&url, "[target] url", env)?)
    } else if let Some(host) = file.target.host.clone() {
        Some(from_parts(
            host,
            [
                file.target.port.map(|p| p.to_string()),
                file.target.database.clone(),
                file.target.user.clone(),
                file.target.sslmode.clone(),
                file.target
                    .sslrootcert
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            ],
            "[target] in the configuration file",
            env,
        )?)
    } else {
        None
    };
    Ok(target.map(|mut t| {
        fill_password(&mut t, password_fallback, env);
        t
    }))
}

fn resolve_project_ref(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<Option<String>> {
    let project_ref = flags
        .project_ref
        .clone()
        .or_else(|| env("SUPABASE_PROJECT_REF"))
        .or_else(|| file.project_ref.clone());
    if let Some(r) = &project_ref {
        if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid_input(format!("invalid Supabase project ref {r:?}"))
                .with_hint("the project ref is the id in https://<ref>.supabase.co, letters and digits only"));
        }
    }
    Ok(project_ref)
}

fn parse_from(url: &str, from: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnInfo> {
    ConnInfo::parse_with_defaults(url, env).map_err(|e| {
        let hint = e.hint().unwrap_or_default().to_string();
        Error::invalid_input(format!("{from}: {}", e.message())).with_hint(hint)
    })
}

/// A connection from its parts: `[port, database, user, sslmode, sslrootcert]`.
fn from_parts(
    host: String,
    [port, database, user, sslmode, sslrootcert]: [Option<String>; 5],
    from: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnInfo> {
    let mut pairs = vec![("host".to_string(), host)];
    let named = [
        ("port", port),
        ("dbname", database),
        ("user", user),
        ("sslmode", sslmode),
        ("sslrootcert", sslrootcert),
    ];
    for (k, v) in named {
        if let Some(v) = v {
            pairs.push((k.to_string(), v));
        }
    }
    ConnInfo::from_pairs_with_defaults(pairs, env).map_err(|e| {
        let hint = e.hint().unwrap_or_default().to_string();
        Error::invalid_input(format!("{from}: {}", e.message())).with_hint(hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(flags: Flags, env: &[(&str, &str)], file: Option<&str>) -> Result<Settings> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let file: Option<FileConfig> = file.map(|t| toml::from_str(t).unwrap());
        resolve(&flags, &|k| env.get(k).cloned(), file.as_ref())
    }

    #[test]
    fn precedence_is_flag_then_env_then_file() {
        let file = r#"
            project_ref = "fromfile"
            [source]
            url = "postgresql://f@file-src/postgres"
            [target]
            url = "postgresql://f@file-tgt/app_production"
        "#;
        let env = [
            ("SUPABASE_DB_URL", "postgresql://e@env-src/postgres"),
            ("RDS_URL", "postgresql://e@env-tgt/app_production"),
            ("SUPABASE_PROJECT_REF", "fromenv"),
        ];
        let flags = Flags {
            source_url: Some("postgresql://x@flag-src/postgres".into()),
            target_url: Some("postgresql://x@flag-tgt/app_production".into()),
            project_ref: Some("fromflag".into()),
        };
        // (flags, env, file, source host, target host, ref)
        let cases = [
            (
                flags.clone(),
                &env[..],
                Some(file),
                "flag-src",
                "flag-tgt",
                "fromflag",
            ),
            (
                Flags::default(),
                &env[..],
                Some(file),
                "env-src",
                "env-tgt",
                "fromenv",
            ),
            (
                Flags::default(),
                &[][..],
                Some(file),
                "file-src",
                "file-tgt",
                "fromfile",
            ),
        ];
        for (flags, env, file, src, tgt, r) in cases {
            let s = run(flags, env, file).unwrap();
            assert_eq!(s.source().unwrap().host, src);
            assert_eq!(s.target().unwrap().host, tgt);
            assert_eq!(s.project_ref.as_deref(), Some(r));
        }
    }

    #[test]
    fn target_from_seed_variables() {
        let env = [
            ("RDS_HOST", "db.abc.eu-west-1.rds.amazonaws.com"),
            ("RDS_PORT", "5433"),
            ("RDS_DATABASE", "app_production"),
            ("RDS_USER", "postgres"),
            ("RDS_PASSWORD", "pw:with@chars"),
        ];
        let s = run(Flags::default(), &env, None).unwrap();
        let t = s.target().unwrap();
        assert_eq!(t.host, "db.abc.eu-west-1.rds.amazonaws.com");
        assert_eq!(t.port, 5433);
        assert_eq!(t.dbname, "app_production");
        assert_eq!(t.user, "postgres");
        assert_eq!(t.password.as_ref().unwrap().expose(), "pw:with@chars");
    }

    #[test]
    fn rds_url_wins_over_parts_and_borrows_the_password() {
        let env = [
            (
                "RDS_URL",
                "postgresql://postgres@url-host:5432/app_production",
            ),
            ("RDS_HOST", "parts-host"),
            ("RDS_PASSWORD", "pw"),
        ];
        let s = run(Flags::default(), &env, None).unwrap();
        let t = s.target().unwrap();
        assert_eq!(t.host, "url-host");
        assert_eq!(t.password.as_ref().unwrap().expose(), "pw");
    }

    #[test]
    fn missing_and_malformed_settings_explain_themselves() {
        let s = run(Flags::default(), &[], None).unwrap();
        let e = s.source().unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.hint().unwrap().contains("SUPABASE_DB_URL"));
        let e = s.target().unwrap_err();
        assert!(e.hint().unwrap().contains("RDS_URL"));

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SUPABASE_DB_URL", "mysql://x")], "SUPABASE_DB_URL"),
            (
                &[("RDS_URL", "postgresql://u@h:99999/d")],
                "RDS_URL: invalid port",
            ),
            (
                &[("RDS_HOST", "h"), ("RDS_PORT", "abc")],
                "RDS_* variables: invalid port",
            ),
            (&[("SUPABASE_PROJECT_REF", "bad/ref")], "project ref"),
        ];
        for (env, needle) in cases {
            let e = run(Flags::default(), env, None).unwrap_err();
            assert!(e.is_bad_input());
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let e: std::result::Result<FileConfig, _> = toml::from_str("[target]\nhots = \"x\"\n");
        assert!(e.is_err());
    }

    #[test]
    fn libpq_environment_and_password_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pgpass = dir.path().join("pgpass");
        std::fs::write(
            &pgpass,
            "rds.example.com:5432:app:admin:from-pgpass\n*:*:*:*:pgpass-any\n",
        )
        .unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pgpass = pgpass.to_string_lossy().into_owned();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::copy(&pgpass, home.join(".pgpass")).unwrap();
        let home = home.to_string_lossy().into_owned();
        let url = "postgresql://admin@rds.example.com:5432/app";
        // (env, expected target: host, port, user, db, password, sslmode, connect_timeout)
        type Want<'a> = (
            &'a str,
            u16,
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<u64>,
        );
        let cases: Vec<(Vec<(&str, &str)>, Want)> = vec![
            // The URL's own values win over PG*.
            (
                vec![
                    ("RDS_URL", "postgresql://u:urlpw@h:1/d?sslmode=require"),
                    ("PGHOST", "x"),
                    ("PGPORT", "9"),
                    ("PGUSER", "y"),
                    ("PGDATABASE", "z"),
                    ("PGPASSWORD", "envpw"),
                    ("PGSSLMODE", "disable"),
                ],
                ("h", 1, "u", "d", Some("urlpw"), "require", None),
            ),
            // What the URL leaves out comes from PG*.
            (
                vec![
                    ("RDS_URL", "postgresql:///app"),
                    ("PGHOST", "pghost"),
                    ("PGPORT", "6000"),
                    ("PGUSER", "pguser"),
                    ("PGSSLMODE", "require"),
                    ("PGCONNECT_TIMEOUT", "7"),
                ],
                ("pghost", 6000, "pguser", "app", None, "require", Some(7)),
            ),
            // RDS_PASSWORD before PGPASSWORD before the password file.
            (
                vec![
                    ("RDS_URL", url),
                    ("RDS_PASSWORD", "rdspw"),
                    ("PGPASSWORD", "envpw"),
                    ("PGPASSFILE", &pgpass),
                ],
                (
                    "rds.example.com",
                    5432,
                    "admin",
                    "app",
                    Some("rdspw"),
                    "prefer",
                    None,
                ),
            ),
            (
                vec![
                    ("RDS_URL", url),
                    ("PGPASSWORD", "envpw"),
                    ("PGPASSFILE", &pgpass),
                ],
                (
                    "rds.example.com",
                    5432,
                    "admin",
                    "app",
                    Some("envpw"),
                    "prefer",
                    None,
                ),
            ),
            (
                vec![("RDS_URL", url), ("PGPASSFILE", &pgpass)],
                (
                    "rds.example.com",
                    5432,
                    "admin",
                    "app",
                    Some("from-pgpass"),
                    "prefer",
                    None,
                ),
            ),
            // ~/.pgpass when PGPASSFILE is not set; its catch-all line for another database.
            (
                vec![
                    ("RDS_URL", "postgresql://admin@rds.example.com:5432/other"),
                    ("HOME", &home),
                ],
                (
                    "rds.example.com",
                    5432,
                    "admin",
                    "other",
                    Some("pgpass-any"),
                    "prefer",
                    None,
                ),
            ),
            // RDS_* parts take PG* defaults too.
            (
                vec![
                    ("RDS_HOST", "parts"),
                    ("RDS_USER", "admin"),
                    ("RDS_DATABASE", "app"),
                    ("PGPORT", "6432"),
                ],
                ("parts", 6432, "admin", "app", None, "prefer", None),
            ),
        ];
        for (env, (host, port, user, db, pw, ssl, timeout)) in cases {
            let t = run(Flags::default(), &env, None)
                .unwrap()
                .target()
                .unwrap()
                .clone();
            let got = (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.dbname.as_str(),
                t.password.as_ref().map(|p| p.expose()),
                t.sslmode.as_str(),
                t.connect_timeout,
            );
            assert_eq!(got, (host, port, user, db, pw, ssl, timeout), "{env:?}");
        }
        // The source reads PGPASSWORD and the password file the same way.
        let s = run(
            Flags::default(),
            &[
                (
                    "SUPABASE_DB_URL",
                    "postgresql://postgres@db.x.supabase.co:5432/postgres",
                ),
                ("PGPASSWORD", "srcpw"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            s.source().unwrap().password.as_ref().map(|p| p.expose()),
            Some("srcpw")
        );
    }
}
