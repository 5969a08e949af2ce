//! The project's secrets found in its definitions: JWTs (Supabase's anon and
//! service_role keys in webhook triggers and cron jobs), API keys, bearer
//! tokens, `password`/`api_key` values.
//!
//! The inventory replaces each one with a placeholder (`[secret-N]`) as soon
//! as it reads a definition, so the plan, its reports, logs and errors only
//! ever hold the placeholder; the values stay in a [`Vault`], which is kept
//! in the state folder, owner-only, and put back into the SQL at the last
//! moment, when a statement that needs them runs on the target.

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const OPEN: &str = "[secret-";

/// Secrets found, by placeholder number (1-based). Its `Debug` shows how
/// many, never a value; it is written only by [`Vault::save`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Vault {
    values: Vec<String>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({} secrets, redacted)", self.values.len())
    }
}

/// The vault's file form (`secrets.json`).
#[derive(Serialize, Deserialize)]
struct Stored {
    values: Vec<String>,
}

impl Vault {
    /// How many distinct secrets.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by its placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        let found = find(text);
        if found.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for r in found {
            out.push_str(&text[last..r.start]);
            let value = &text[r.clone()];
            let n = match self.values.iter().position(|v| v == value) {
                Some(i) => i + 1,
                None => {
                    self.values.push(value.to_string());
                    self.values.len()
                }
            };
            out.push_str(&format!("{OPEN}{n}]"));
            last = r.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// `text` with its placeholders replaced by the values.
    pub fn restore(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            let after = &rest[i + OPEN.len()..];
            let end = after.find(']').unwrap_or(0);
            match after[..end]
                .parse::<usize>()
                .ok()
                .and_then(|n| self.values.get(n.wrapping_sub(1)))
            {
                Some(v) if end > 0 => {
                    out.push_str(v);
                    rest = &after[end + 1..];
                }
                _ => {
                    return Err(Error::invalid_input(format!(
                        "the plan's SQL holds a secret placeholder {OPEN}{}] whose value is not in the state folder",
                        &after[..end]
                    ))
                    .with_hint("secrets found in definitions are kept only in the state folder (secrets.json): run `supamigrate plan` again from the same --state-dir"));
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Whether `text` holds a placeholder.
    pub fn holds_placeholder(text: &str) -> bool {
        text.contains(OPEN)
    }

    /// Writes the vault to `path`, owner-only.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(&Stored {
            values: self.values.clone(),
        })
        .map_err(|e| Error::internal(format!("serializing secrets: {e}")))?;
        crate::fsutil::write_atomically(path, &json, 0o600)
    }

    /// Reads the vault at `path` (empty when there is none).
    pub fn load(path: &Path) -> Result<Vault> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Stored>(&bytes)
                .map(|s| Vault { values: s.values })
                .map_err(|e| {
                    Error::invalid_input(format!("{} is not a secrets file: {e}", path.display()))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vault::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }
}

/// A planned statement ready to run: as shown (placeholders: for messages,
/// logs and the records of what ran) and as run (the values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sql {
    /// With placeholders.
    pub shown: String,
    /// With the values.
    pub run: String,
    secrets: Vec<String>,
}

impl Sql {
    /// A statement without secrets.
    pub fn plain(sql: &str) -> Sql {
        Sql {
            shown: sql.to_string(),
            run: sql.to_string(),
            secrets: Vec::new(),
        }
    }

    /// `text` (a server's message about this statement) with the values
    /// replaced by their placeholders again.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (i, v) in self.secrets.iter().enumerate() {
            if !v.is_empty() {
                out = out.replace(v.as_str(), &format!("{OPEN}{}]", i + 1));
            }
        }
        out
    }

    /// `e` with this statement's secrets masked in its message.
    pub fn mask_error(&self, e: Error) -> Error {
        if self.secrets.is_empty() {
            return e;
        }
        e.masked(&|t| self.mask(t))
    }
}

impl Vault {
    /// `shown` (a planned statement) ready to run.
    pub fn prepare(&self, shown: &str) -> Result<Sql> {
        if !Vault::holds_placeholder(shown) {
            return Ok(Sql::plain(shown));
        }
        Ok(Sql {
            shown: shown.to_string(),
            run: self.restore(shown)?,
            secrets: self.values.clone(),
        })
    }
}

/// Where secrets are in `text`, in order, not overlapping.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let mut found: Vec<Range<usize>> = Vec::new();
    found.extend(jwts(text));
    for prefix in TOKEN_PREFIXES {
        found.extend(prefixed(text, prefix));
    }
    found.extend(aws_key_ids(text));
    found.extend(after_bearer(text));
    found.extend(after_basic(text));
    found.extend(named_values(text));
    found.extend(quoted_pairs(text));
    found.extend(url_passwords(text));
    found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in found {
        match out.last_mut() {
            Some(last) if r.start < last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Tokens that are keys by their prefix (Supabase, Stripe, GitHub, Slack…).
const TOKEN_PREFIXES: &[&str] = &[
    "sb_secret_",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    "ghp_",
    "gho_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "glpat-",
    "AIza",
];

/// Names whose value is a secret (`"api_key": "…"`, `password '…'`).
const SECRET_NAMES: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "secret",
    "secret_key",
    "client_secret",
    "password",
    "passwd",
    "token",
    "access_token",
    "auth_token",
    "private_key",
];

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn token_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() && is_token_char(bytes[i]) {
        i += 1;
    }
    i
}

/// `eyJ…`.`…`.`…`: three base64url segments.
fn jwts(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("eyJ").map(|i| i + from) {
        let boundary = i == 0 || !is_token_char(bytes[i - 1]);
        let a = token_end(bytes, i);
        let ok2 = boundary && a < bytes.len() && bytes[a] == b'.' && a - i >= 10;
        let b = if ok2 { token_end(bytes, a + 1) } else { a };
        if ok2 && b - a > 10 && b < bytes.len() && bytes[b] == b'.' {
            let c = token_end(bytes, b + 1);
            out.push(i..c);
            from = c;
        } else {
            from = i + 3;
        }
    }
    out
}

fn prefixed(text: &str, prefix: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix).map(|i| i + from) {
        let boundary = i == 0 || !is_token_char(bytes[i - 1]);
        let end = token_end(bytes, i + prefix.len());
        if boundary && end - i - prefix.len() >= 12 {
            out.push(i..end);
        }
        from = end.max(i + prefix.len());
    }
    out
}

/// `AKIA…`/`ASIA…`: AWS access key ids (20 upper-case letters and digits).
fn aws_key_ids(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for prefix in ["AKIA", "ASIA"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix).map(|i| i + from) {
            let end = i + 20;
            let ok = end <= bytes.len()
                && bytes[i..end]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && (end == bytes.len() || !bytes[end].is_ascii_alphanumeric())
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
            if ok {
                out.push(i..end);
            }
            from = i + prefix.len();
        }
    }
    out
}

/// The token after `Bearer ` (20 characters or more).
fn after_bearer(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("bearer ").map(|i| i + from) {
        let start = i + "bearer ".len();
        let mut end = start;
        while end < bytes.len() && (is_token_char(bytes[end]) || b"./+=~".contains(&bytes[end])) {
            end += 1;
        }
        if end - start >= 20 {
            out.push(start..end);
        }
        from = start;
    }
    out
}

/// The credentials after `Basic ` (HTTP basic auth: base64 of user:password).
fn after_basic(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("basic ").map(|i| i + from) {
        let start = i + "basic ".len();
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || b"+/=".contains(&bytes[end]))
        {
            end += 1;
        }
        if boundary && end - start >= 8 {
            out.push(start..end);
        }
        from = start;
    }
    out
}

/// Whether a header's (or a map key's) name says its value is a secret.
fn secret_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "secret",
        "token",
        "signature",
        "password",
        "passwd",
        "apikey",
        "authorization",
        "credential",
        "private",
    ];
    let n = name.to_ascii_lowercase();
    // `key` as one word of several (`x-api-key`, `signing_key`); a map's
    // plain `key` is too common to mean a secret.
    let words: Vec<&str> = n.split(['-', '_', ' ']).collect();
    WORDS.iter().any(|w| n.contains(w)) || (words.len() > 1 && words.contains(&"key"))
}

/// Values in quoted name/value pairs (`"x-webhook-secret": "…"`, header
/// maps, `jsonb_build_object('api-key', '…')`): the whole value when the
/// name says secret; any long base64 or hex value of a `"name": "value"`
/// map.
fn quoted_pairs(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let quoted = |from: usize| -> Option<(usize, usize)> {
        let q = *bytes.get(from)?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let len = text[from + 1..].find(q as char)?;
        Some((from + 1, from + 1 + len))
    };
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'"' && c != b'\'' {
            continue;
        }
        let Some((ns, ne)) = quoted(i) else { continue };
        let name = &text[ns..ne];
        if name.is_empty() || name.len() > 64 || name.contains('\n') {
            continue;
        }
        let j = skip_ws(ne + 1);
        let sep = match bytes.get(j) {
            Some(b':') => b':',
            Some(b',') => b',',
            _ => continue,
        };
        let k = skip_ws(j + 1);
        let Some((vs, ve)) = quoted(k) else { continue };
        // An auth scheme stays readable (`Bearer …`, `Basic …`, `Token …`):
        // the credentials after it are the secret.
        let vs = match text[vs..ve].split_once(' ') {
            Some((scheme, rest))
                if (1..=10).contains(&scheme.len())
                    && scheme.bytes().all(|b| b.is_ascii_alphabetic())
                    && !rest.is_empty() =>
            {
                vs + scheme.len() + 1
            }
            _ => vs,
        };
        let value = &text[vs..ve];
        let tokenish = value.len() >= 32
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b));
        // After a comma (`jsonb_build_object('x-api-key', '…')`) only a
        // header's name counts: a list of labels (`'access_token',
        // 'refresh_token'`) is not a map.
        let header = name.contains('-')
            || ["authorization", "apikey"].contains(&name.to_ascii_lowercase().as_str());
        let label = value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if (secret_name(name)
            && value.len() >= 6
            && !value.contains('\n')
            && (sep == b':' || (header && !label)))
            || (sep == b':' && tokenish)
        {
            out.push(vs..ve);
        }
    }
    out
}

/// The password in a URL's userinfo (`scheme://user:password@host`).
fn url_passwords(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("://").map(|i| i + from) {
        let start = i + 3;
        let mut end = start;
        while end < bytes.len() && !b"/@?#\"' \t\n".contains(&bytes[end]) {
            end += 1;
        }
        if bytes.get(end) == Some(&b'@') {
            if let Some(colon) = text[start..end].find(':') {
                let p = start + colon + 1;
                if end - p >= 3 {
                    out.push(p..end);
                }
            }
        }
        from = start;
    }
    out
}

/// The quoted value after a secret's name: `"api_key": "v"`, `password 'v'`,
/// `token=v`.
fn named_values(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for name in SECRET_NAMES {
        let mut from = 0;
        while let Some(i) = lower[from..].find(name).map(|i| i + from) {
            from = i + name.len();
            let before_ok = i == 0 || !is_token_char(bytes[i - 1]);
            let mut j = i + name.len();
            if !before_ok || (j < bytes.len() && is_token_char(bytes[j])) {
                continue;
            }
            // Closing quote of a quoted name, then `:`, `=` or spaces.
            while j < bytes.len() && b"\"' \t:=".contains(&bytes[j]) && j - (i + name.len()) < 6 {
                j += 1;
            }
            let quoted = j > 0 && (bytes[j - 1] == b'"' || bytes[j - 1] == b'\'');
            let mut end = j;
            while end < bytes.len()
                && !bytes[end].is_ascii_whitespace()
                && !b"\"',;)}&#?".contains(&bytes[end])
            {
                end += 1;
            }
            if (quoted || bytes.get(j.wrapping_sub(1)) == Some(&b'=')) && end - j >= 8 {
                out.push(j..end);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn secrets_are_found_in_the_forms_definitions_hold_them() {
        let cases: &[(&str, &[&str])] = &[
            (&format!("'{{\"Authorization\":\"Bearer {JWT}\"}}'"), &[JWT]),
            (&format!("headers := '{{\"apikey\": \"{JWT}\"}}'"), &[JWT]),
            (
                "api_key 'sk_test_51HxAbCdEfGhIjKlMnOp'",
                &["sk_test_51HxAbCdEfGhIjKlMnOp"],
            ),
            (
                "options (api_key 'k3y-v4lue-123456')",
                &["k3y-v4lue-123456"],
            ),
            ("x := 'AKIAIOSFODNN7EXAMPLE'", &["AKIAIOSFODNN7EXAMPLE"]),
            (
                "'Bearer abcdefghijklmnopqrstuvwxyz0123'",
                &["abcdefghijklmnopqrstuvwxyz0123"],
            ),
            ("'{\"password\": \"hunter2hunter2\"}'", &["hunter2hunter2"]),
            (
                "url=https://x.supabase.co/functions/v1/hook?token=tok_abcdefghijkl",
                &["tok_abcdefghijkl"],
            ),
            // Basic auth, any header whose name says secret, URL userinfo,
            // long base64/hex values in header maps.
            (
                "'{\"Authorization\": \"Basic dXNlcjpzM2NyM3QtcGFzcw==\"}'",
                &["dXNlcjpzM2NyM3QtcGFzcw=="],
            ),
            (
                "headers := '{\"Content-Type\":\"application/json\",\"x-webhook-secret\":\"wh-9f8e7d6c5b\"}'",
                &["wh-9f8e7d6c5b"],
            ),
            (
                "jsonb_build_object('X-Signing-Key', 'k-1234567890')",
                &["k-1234567890"],
            ),
            (
                "'{\"X-Hub-Signature\": \"sha256=abcdef0123\"}'",
                &["sha256=abcdef0123"],
            ),
            (
                "'{\"x-custom\": \"0123456789abcdef0123456789abcdef01\"}'",
                &["0123456789abcdef0123456789abcdef01"],
            ),
            (
                "perform dblink_connect('postgresql://app:Sup3rS3cret@db.internal:5432/app')",
                &["Sup3rS3cret"],
            ),
            (
                "'redis://:hunter2hunter2@cache:6379'",
                &["hunter2hunter2"],
            ),
            ("'{\"Content-Type\": \"application/json\"}'", &[]),
            ("'https://example.com/path?x=1'", &[]),
            ("jsonb_build_object('key', 'orders')", &[]),
            ("create type t as enum ('confirmation_token', 'recovery_token')", &[]),
            ("select 'eyJnotajwt' , password_hash, 'token'", &[]),
            ("create table t (api_key text, token text not null)", &[]),
        ];
        for (text, expected) in cases {
            let got: Vec<&str> = find(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(got, *expected, "in {text}");
        }
    }

    #[test]
    fn redact_then_restore_gives_the_text_back() {
        let mut v = Vault::default();
        let text =
            format!("select net.http_post('u', '{{\"Authorization\":\"Bearer {JWT}\"}}', '{JWT}')");
        let red = v.redact(&text);
        assert!(!red.contains(JWT), "{red}");
        assert_eq!(red.matches("[secret-1]").count(), 2, "{red}");
        assert_eq!(v.len(), 1);
        assert_eq!(v.restore(&red).unwrap(), text);
        assert!(Vault::default().restore(&red).unwrap_err().is_bad_input());
        let shown = format!("{v:?}");
        assert!(
            !shown.contains(JWT) && shown.contains("1 secrets"),
            "{shown}"
        );
    }
}
