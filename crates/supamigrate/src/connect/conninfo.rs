//! libpq-style connection strings: `postgresql://` URLs and `key=value` strings.
//!
//! We parse them ourselves because tokio-postgres refuses `sslmode=verify-ca` and
//! `verify-full`, and because we must know every field to hand child processes
//! (pg_dump, psql) the same connection without putting the password in their argv.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Plain first, TLS if the server insists. We treat it like `prefer`.
    Allow,
    /// TLS when the server offers it, certificate not checked (libpq's default).
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// TLS required, certificate chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS required, chain and host name checked. What RDS should get.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling.
    pub fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(
                    Error::invalid_input(format!("unknown sslmode {other:?}")).with_hint(
                        "use one of disable, allow, prefer, require, verify-ca, verify-full",
                    ),
                )
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server certificate's chain is checked.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// A password. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }
    /// The clear text, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SCRAM-SHA-256 verifier PostgreSQL stores for this password (what
    /// libpq's `PQencryptPasswordConn` computes). `CREATE/ALTER ROLE … PASSWORD`
    /// takes it in place of the clear text, so the password itself never
    /// reaches the server's or the driver's logs.
    pub fn scram_verifier(&self) -> String {
        postgres_protocol::password::scram_sha_256(self.0.as_bytes())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// One PostgreSQL connection's parameters.
///
/// `Display` shows a URL without the password; [`ConnInfo::to_url_with_password`]
/// is the only way to get it back into a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host name, IP address, or a Unix socket directory (starts with `/`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, if any.
    pub password: Option<Password>,
    /// Database name.
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for `verify-ca`/`verify-full`.
    pub sslrootcert: Option<PathBuf>,
    /// Seconds to wait for the connection.
    pub connect_timeout: Option<u64>,
    /// `application_name` to report.
    pub application_name: Option<String>,
    /// Server `options` (e.g. `-c statement_timeout=0`).
    pub options: Option<String>,
}

/// Parameters libpq knows that do not change what we connect to; accepted and ignored.
const IGNORED_PARAMS: &[&str] = &[
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "gssencmode",
    "target_session_attrs",
    "client_encoding",
    "fallback_application_name",
    "channel_binding",
    "sslcompression",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

impl ConnInfo {
    /// Parses a `postgres://`/`postgresql://` URL or a libpq `key=value` string.
    ///
    /// ```
    /// use supamigrate::connect::{ConnInfo, SslMode};
    ///
    /// let rds = ConnInfo::parse(
    ///     "postgresql://postgres:s%40cret@db.example.rds.amazonaws.com/app_production\
    ///      ?sslmode=verify-full&sslrootcert=/etc/rds/global-bundle.pem",
    /// )?;
    /// assert_eq!(rds.sslmode, SslMode::VerifyFull);
    /// assert_eq!(rds.password.as_ref().map(|p| p.expose()), Some("s@cret"));
    /// // Shown without its password, wherever it is printed.
    /// assert!(!rds.to_string().contains("cret"));
    ///
    /// let kv = ConnInfo::parse("host=localhost port=5433 user=postgres dbname='my db'")?;
    /// assert_eq!((kv.port, kv.dbname.as_str()), (5433, "my db"));
    /// # Ok::<(), supamigrate::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<ConnInfo> {
        Self::parse_with_defaults(s, &|_| None)
    }

    /// Parses `s`, taking every parameter it does not give from libpq's
    /// environment variables ([`LIBPQ_ENV`], read through `env`), as libpq
    /// does. The password is not among them: see [`crate::config`].
    pub fn parse_with_defaults(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnInfo> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::invalid_input("empty connection string")
                .with_hint("give a URL like postgresql://user:password@host:5432/dbname"));
        }
        let url = s.starts_with("postgresql://") || s.starts_with("postgres://");
        let pairs = if url {
            parse_url(s)?
        } else if s.contains('=') {
            parse_keyvalue(s)?
        } else {
            return Err(Error::invalid_input(
                "connection string is neither a postgresql:// URL nor key=value pairs",
            )
            .with_hint("give a URL like postgresql://user:password@host:5432/dbname"));
        };
        let pairs = with_env_defaults(pairs, env);
        if url && !pairs.iter().any(|(k, v)| k == "host" && !v.is_empty()) {
            return Err(Error::invalid_input("the connection URL has no host (and PGHOST is not set)")
                .with_hint("write the server's host name after the '@', as in postgresql://user:password@db.example.com:5432/dbname (Unix sockets are not supported)"));
        }
        Self::from_pairs(pairs)
    }

    /// [`ConnInfo::from_pairs`] with libpq's environment as defaults.
    pub fn from_pairs_with_defaults(
        pairs: Vec<(String, String)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo> {
        Self::from_pairs(with_env_defaults(pairs, env))
    }

    /// Builds from (key, value) pairs with libpq's parameter names.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<ConnInfo> {
        let mut info = ConnInfo {
            host: "localhost".into(),
            port: 5432,
            user: String::new(),
            password: None,
            dbname: String::new(),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_timeout: None,
            application_name: None,
            options: None,
        };
        for (key, value) in pairs {
            info.set(&key, value)?;
        }
        if info.user.is_empty() {
            info.user = default_user();
        }
        if info.dbname.is_empty() {
            info.dbname = info.user.clone();
        }
        if info.sslmode.verifies_chain() && info.sslrootcert.is_none() {
            return Err(Error::invalid_input(format!(
                "sslmode={} needs sslrootcert",
                info.sslmode.as_str()
            ))
            .with_hint(
                "add sslrootcert=/path/to/ca.pem (for RDS: the global-bundle.pem AWS publishes)",
            ));
        }
        Ok(info)
    }

    /// Sets one libpq parameter.
    fn set(&mut self, key: &str, value: String) -> Result<()> {
        match key {
            "host" | "hostaddr" => {
                if value.contains(',') {
                    return Err(Error::invalid_input(format!(
                        "several hosts in one connection string ({value}) are not supported"
                    ))
                    .with_hint("name the one primary server to migrate from or to"));
                }
                if !value.is_empty() {
                    self.host = value;
                }
            }
            "port" => {
                self.port = value.parse().map_err(|_| {
                    Error::invalid_input(format!("invalid port {value:?} in connection string"))
                        .with_hint("the port is a number such as 5432; if the password holds a special character, percent-encode it: / as %2F, @ as %40, : as %3A, # as %23")
                })?;
            }
            "user" => self.user = value,
            "password" => self.password = Some(Password(value)),
            "dbname" => self.dbname = value,
            "sslmode" => self.sslmode = SslMode::parse(&value)?,
            "sslrootcert" => {
                if value == "system" {
                    return Err(Error::invalid_input(
                        "sslrootcert=system is not supported",
                    )
                    .with_hint("give the path of the CA bundle file (for RDS: the global-bundle.pem AWS publishes)"));
                }
                self.sslrootcert = Some(PathBuf::from(value));
            }
            "connect_timeout" => {
                self.connect_timeout = Some(value.parse().map_err(|_| {
                    Error::invalid_input(format!("invalid connect_timeout {value:?}"))
                        .with_hint("connect_timeout is a number of seconds")
                })?);
            }
            "application_name" => self.application_name = Some(value),
            "options" => self.options = Some(value),
            k if IGNORED_PARAMS.contains(&k) => {
                tracing::debug!(parameter = k, "ignoring connection parameter");
            }
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown connection parameter {other:?}"
                ))
                .with_hint("remove it; supported are host, port, user, password, dbname, sslmode, sslrootcert, connect_timeout, application_name, options"));
            }
        }
        Ok(())
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> ConnInfo {
        ConnInfo {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// A URL that includes the password: only for output the user asked for
    /// (the sandbox's `export` lines), never for logs.
    pub fn to_url_with_password(&self) -> String {
        self.url(true)
    }

    fn url(&self, with_password: bool) -> String {
        let mut s = String::from("postgresql://");
        s.push_str(&enc(&self.user));
        if let (true, Some(pw)) = (with_password, &self.password) {
            s.push(':');
            s.push_str(&enc(pw.expose()));
        }
        s.push('@');
        if self.host.contains(':') {
            s.push_str(&format!("[{}]", self.host));
        } else if self.host.starts_with('/') {
            s.push_str(&enc(&self.host));
        } else {
            s.push_str(&self.host);
        }
        s.push_str(&format!(":{}/{}", self.port, enc(&self.dbname)));
        let mut params = Vec::new();
        if self.sslmode != SslMode::Prefer {
            params.push(format!("sslmode={}", self.sslmode.as_str()));
        }
        if let Some(p) = &self.sslrootcert {
            params.push(format!("sslrootcert={}", enc(&p.to_string_lossy())));
        }
        if let Some(t) = self.connect_timeout {
            params.push(format!("connect_timeout={t}"));
        }
        if let Some(a) = &self.application_name {
            params.push(format!("application_name={}", enc(a)));
        }
        if let Some(o) = &self.options {
            params.push(format!("options={}", enc(o)));
        }
        if !params.is_empty() {
            s.push('?');
            s.push_str(&params.join("&"));
        }
        s
    }

    /// `connect_timeout`, or [`DEFAULT_CONNECT_TIMEOUT`] (libpq's default is
    /// to wait forever; a migration should not hang on a silent server).
    /// libpq, like us, treats 1 as 2 seconds.
    pub fn connect_timeout_or_default(&self) -> u64 {
        match self.connect_timeout {
            None | Some(0) => DEFAULT_CONNECT_TIMEOUT,
            Some(1) => 2,
            Some(t) => t,
        }
    }

    /// Environment variables that make a libpq tool (psql, pg_dump…) connect here,
    /// except for the password, which goes through a passfile
    /// (see [`crate::connect::PgCommand`]).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", self.sslmode.as_str().to_string()),
        ];
        if let Some(p) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT", p.to_string_lossy().into_owned()));
        }
        env.push((
            "PGCONNECT_TIMEOUT",
            self.connect_timeout_or_default().to_string(),
        ));
        if let Some(a) = &self.application_name {
            env.push(("PGAPPNAME", a.clone()));
        }
        if let Some(o) = &self.options {
            env.push(("PGOPTIONS", o.clone()));
        }
        env
    }
}

impl fmt::Display for ConnInfo {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url(false))
    }
}

/// libpq's environment variables that default a connection parameter the
/// connection string leaves out: (variable, parameter).
pub const LIBPQ_ENV: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
];

/// `pairs` with each parameter they lack taken from its libpq variable.
fn with_env_defaults(
    mut pairs: Vec<(String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    for (var, key) in LIBPQ_ENV {
        let given = pairs.iter().any(|(k, v)| k == key && !v.is_empty());
        if !given {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                pairs.insert(0, (key.to_string(), v));
            }
        }
    }
    pairs
}

/// Seconds to wait for a server when the connection string gives no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 15;

/// Characters escaped in URL components: controls, space, and the URL delimiters.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

fn dec(s: &str, what: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            Error::invalid_input(format!(
                "the {what} in the connection URL is not valid UTF-8 after percent-decoding"
            ))
            .with_hint("percent-encode special characters as UTF-8 (%40 for @, %3A for :)")
        })
}

fn parse_url(s: &str) -> Result<Vec<(String, String)>> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .unwrap_or(s);
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    if path.is_some_and(|p| p.contains('@')) {
        return Err(Error::invalid_input(
            "the connection URL has an '@' after its first '/': is there a '/' in the password?",
        )
        .with_hint("percent-encode the password's special characters: / as %2F, @ as %40, : as %3A, # as %23, ? as %3F"));
    }
    let mut pairs = Vec::new();
    // The user info ends at the last '@': passwords may contain unescaped '@'.
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    pairs.push(("user".into(), dec(u, "user name")?));
                    pairs.push(("password".into(), dec(p, "password")?));
                }
                None => pairs.push(("user".into(), dec(userinfo, "user name")?)),
            }
            hostport
        }
        None => authority,
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| {
            Error::invalid_input("unterminated [IPv6] host in connection URL")
                .with_hint("write IPv6 hosts as [::1]:5432")
        })?;
        pairs.push(("host".into(), host.to_string()));
        if let Some(port) = after.strip_prefix(':') {
            pairs.push(("port".into(), port.to_string()));
        }
    } else if let Some((host, port)) = hostport.rsplit_once(':') {
        pairs.push(("host".into(), dec(host, "host")?));
        pairs.push(("port".into(), port.to_string()));
    } else if !hostport.is_empty() {
        pairs.push(("host".into(), dec(hostport, "host")?));
    }
    if let Some(path) = path {
        if !path.is_empty() {
            pairs.push(("dbname".into(), dec(path, "database name")?));
        }
    }
    if let Some(query) = query {
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::invalid_input(format!("URL query parameter {kv:?} has no value"))
                    .with_hint("write query parameters as key=value, e.g. ?sslmode=verify-full")
            })?;
            pairs.push((dec(k, "query")?, dec(v, "query")?));
        }
    }
    Ok(pairs)
}

fn parse_keyvalue(s: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error::invalid_input(format!(
                "missing \"=\" after {key:?} in connection string"
            ))
            .with_hint("write key=value pairs separated by spaces, e.g. host=db port=5432"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(Error::invalid_input(format!(
                    "unterminated quoted value for {key:?} in connection string"
                ))
                .with_hint("close the value with a single quote; escape quotes inside as \\'"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn default_user() -> String {
    std::env::var("PGUSER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "postgres".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ConnInfo {
        ConnInfo::parse(s).unwrap_or_else(|e| panic!("{s}: {e} ({:?})", e.hint()))
    }

    #[test]
    fn parses_url_forms() {
        // (input, host, port, user, password, dbname, sslmode)
        // (input, host, port, user, password, dbname, sslmode)
        type Case<'a> = (
            &'a str,
            &'a str,
            u16,
            &'a str,
            Option<&'a str>,
            &'a str,
            SslMode,
        );
        let cases: &[Case] = &[
            (
                "postgresql://postgres.abc:s3cr%40t@aws-0-eu.pooler.supabase.com:6543/postgres",
                "aws-0-eu.pooler.supabase.com",
                6543,
                "postgres.abc",
                Some("s3cr@t"),
                "postgres",
                SslMode::Prefer,
            ),
            (
                "postgres://u@h/db?sslmode=require",
                "h",
                5432,
                "u",
                None,
                "db",
                SslMode::Require,
            ),
            (
                "postgresql://u:p@ss:w@[::1]:6000/d%20b",
                "::1",
                6000,
                "u",
                Some("p@ss:w"),
                "d b",
                SslMode::Prefer,
            ),
            (
                "postgresql://m:pw@db.x.rds.amazonaws.com:5432/app_production?sslmode=verify-full&sslrootcert=/etc/rds.pem",
                "db.x.rds.amazonaws.com",
                5432,
                "m",
                Some("pw"),
                "app_production",
                SslMode::VerifyFull,
            ),
            (
                "host=h port=5433 user=u password=pw dbname=d",
                "h",
                5433,
                "u",
                Some("pw"),
                "d",
                SslMode::Prefer,
            ),
            (
                "host = h user=u password='a b\\'c' dbname=d sslmode=disable",
                "h",
                5432,
                "u",
                Some("a b'c"),
                "d",
                SslMode::Disable,
            ),
        ];
        for (input, host, port, user, password, dbname, sslmode) in cases {
            let c = p(input);
            assert_eq!(&c.host, host, "{input}");
            assert_eq!(c.port, *port, "{input}");
            assert_eq!(&c.user, user, "{input}");
            assert_eq!(
                c.password.as_ref().map(|p| p.expose()),
                *password,
                "{input}"
            );
            assert_eq!(&c.dbname, dbname, "{input}");
            assert_eq!(c.sslmode, *sslmode, "{input}");
        }
    }

    #[test]
    fn bad_strings_are_refused_with_hints() {
        let cases = [
            ("", "empty"),
            ("nonsense", "neither"),
            ("postgresql://u@h:notaport/d", "invalid port"),
            (
                "postgresql://u@h/d?sslmode=verify-everything",
                "unknown sslmode",
            ),
            (
                "postgresql://u@h/d?sslmode=verify-full",
                "needs sslrootcert",
            ),
            (
                "postgresql://u@h/d?pgbouncer=true",
                "unknown connection parameter",
            ),
            ("postgresql://u@h1,h2/d", "several hosts"),
            ("host=h password='open", "unterminated"),
            ("host=h password='it''s'", "missing \"=\""),
            (
                "postgresql://u@h/d?sslrootcert=system&sslmode=verify-ca",
                "not supported",
            ),
        ];
        for (input, needle) in cases {
            let e = ConnInfo::parse(input).expect_err(input);
            assert!(e.is_bad_input(), "{input}");
            assert!(e.to_string().contains(needle), "{input}: {e}");
            assert!(e.hint().is_some(), "{input} has no hint");
        }
    }

    #[test]
    fn display_never_shows_the_password() {
        let c = p("postgresql://admin:Sup3r%2FSecret@h:5432/db?sslmode=require");
        let shown = format!("{c} {c:?} {}", c.with_dbname("postgres"));
        assert!(!shown.contains("Sup3r"), "{shown}");
        assert_eq!(
            c.to_string(),
            "postgresql://admin@h:5432/db?sslmode=require"
        );
        // The explicit form round-trips.
        let again = p(&c.to_url_with_password());
        assert_eq!(again, c);
    }

    #[test]
    fn libpq_env_has_no_password() {
        let c = p("postgresql://admin:topsecret@h:5432/db?sslmode=verify-ca&sslrootcert=/ca.pem");
        let env = c.libpq_env();
        assert!(env
            .iter()
            .all(|(k, v)| *k != "PGPASSWORD" && !v.contains("topsecret")));
        assert!(env.contains(&("PGSSLMODE", "verify-ca".to_string())));
        assert!(env.contains(&("PGSSLROOTCERT", "/ca.pem".to_string())));
    }
}
