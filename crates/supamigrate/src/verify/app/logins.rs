//! Logins: how each user of `auth.users` signs in (a census), whether the
//! target keeps what that sign-in needs, and what the application must still
//! do; and `verify --login`, one password checked against the stored hash on
//! both sides, in this process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::{quote_ident, TableName};
use crate::plan::copy::TableMapping;

/// One way of signing in, as counted on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginKind {
    /// `password: bcrypt (cost 10)`, `OAuth: google`, `phone`, …
    pub kind: String,
    /// Users signing in this way.
    pub users: i64,
    /// Of those, users whose sign-in data differs (or is missing) on the
    /// target.
    pub differing: i64,
    /// What was compared.
    pub compared: String,
    /// What the application must still do for them.
    pub todo: String,
}

/// The census of `auth.users` by sign-in kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logins {
    /// Users on the source.
    pub users: i64,
    /// Each kind (a user may sign in more than one way).
    pub kinds: Vec<LoginKind>,
    /// Why there is no census (no `auth.users` on the source, or it does
    /// not move).
    pub not_checked: Option<String>,
}

impl Logins {
    /// Kinds whose users' sign-in data differs on the target.
    pub fn mismatches(&self) -> usize {
        self.kinds.iter().filter(|k| k.differing > 0).count()
    }
}

/// What every user's move means, whatever their kind.
pub const FOR_EVERYONE: &str = "sessions and refresh tokens do not carry over: every user signs in again; the project's JWT secret is not readable from Supabase: re-enter it (or issue new keys) in the service that signs your tokens";

/// One user's sign-in data on one side.
#[derive(Debug, Clone, Default)]
struct UserRow {
    /// SHA-256 of the stored hash, email and phone (never the hash itself).
    digest: String,
    hash_scheme: Option<String>,
    email: bool,
    phone: bool,
    anonymous: bool,
    sso: bool,
    deleted: bool,
    banned: bool,
}

/// `auth.users` on the source and its columns' names on the target.
pub struct UsersTables<'a> {
    /// The source's `auth.users` → the target's table (`public.app_users`).
    pub users: &'a TableMapping,
    /// `auth.identities`, when it is carried.
    pub identities: Option<&'a TableMapping>,
    /// `auth.webauthn_credentials` (passkeys), when it is carried.
    pub passkeys: Option<&'a TableMapping>,
}

impl<'a> UsersTables<'a> {
    /// The mappings of `tables` for `auth.users` and `auth.identities`.
    pub fn find(tables: &'a [TableMapping]) -> Option<UsersTables<'a>> {
        let of = |name: &str| {
            tables
                .iter()
                .find(|t| t.source == TableName::new("auth", name))
        };
        Some(UsersTables {
            users: of("users")?,
            identities: of("identities"),
            passkeys: of("webauthn_credentials"),
        })
    }

    fn target_column(&self, source: &str) -> Option<&str> {
        self.users
            .columns
            .iter()
            .find(|p| p.source == source)
            .map(|p| p.target.as_str())
    }
}

/// The scheme of a stored password hash.
pub fn hash_scheme(hash: &str) -> Option<String> {
    if hash.is_empty() {
        return None;
    }
    let bcrypt = ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p));
    if bcrypt {
        let cost = hash.get(4..6).unwrap_or("?");
        return Some(format!("bcrypt (cost {cost})"));
    }
    if let Some(rest) = hash.strip_prefix("$argon2") {
        let variant = rest.split('$').next().unwrap_or("");
        return Some(format!("argon2{variant}"));
    }
    Some("another hash format".into())
}

/// Reads one side's users: `exprs` are the SQL expressions of
/// (id, hash, email, phone, anonymous, sso, deleted, banned).
async fn user_rows(
    c: &Client,
    table: &TableName,
    exprs: &[String; 8],
) -> Result<BTreeMap<String, UserRow>> {
    let sql = format!(
        "{own} select {id}::text, coalesce({pw}, ''), coalesce({email}, ''), coalesce({phone}, ''), \
         {anon}, {sso}, {del}, {ban} from {t}",
        own = crate::sql::OWN,
        id = exprs[0],
        pw = exprs[1],
        email = exprs[2],
        phone = exprs[3],
        anon = exprs[4],
        sso = exprs[5],
        del = exprs[6],
        ban = exprs[7],
        t = table.quoted()
    );
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| Error::postgres(format!("reading the users of {table}"), e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (pw, email, phone): (String, String, String) = (r.get(1), r.get(2), r.get(3));
            let digest = hex::encode(sha2::Sha256::digest(
                format!("{pw}\u{1}{email}\u{1}{phone}").as_bytes(),
            ));
            (
                r.get::<_, String>(0),
                UserRow {
                    digest,
                    hash_scheme: hash_scheme(&pw),
                    email: !email.is_empty(),
                    phone: !phone.is_empty(),
                    anonymous: r.get::<_, Option<bool>>(4).unwrap_or(false),
                    sso: r.get::<_, Option<bool>>(5).unwrap_or(false),
                    deleted: r.get::<_, Option<bool>>(6).unwrap_or(false),
                    banned: r.get::<_, Option<bool>>(7).unwrap_or(false),
                },
            )
        })
        .collect())
}

/// The columns of a table.
async fn columns(c: &Client, table: &TableName) -> Result<Vec<String>> {
    let rows = c
        .query(
            "select attname::text from pg_attribute where attrelid = to_regclass($1) \
             and attnum > 0 and not attisdropped",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the columns of {table}"), e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The SQL expressions reading each user's sign-in data on one side:
/// `name(source column)` gives that side's column, if it has it.
fn user_exprs(present: &[String], name: impl Fn(&str) -> Option<String>) -> [String; 8] {
    let col = |c: &str, otherwise: &str| {
        name(c)
            .filter(|n| present.contains(n))
            .map(|n| quote_ident(&n))
            .unwrap_or_else(|| otherwise.to_string())
    };
    let deleted = col("deleted_at", "null");
    let banned = col("banned_until", "null");
    [
        col("id", "null"),
        col("encrypted_password", "null"),
        col("email", "null"),
        col("phone", "null"),
        col("is_anonymous", "false"),
        col("is_sso_user", "false"),
        format!("({deleted} is not null)"),
        format!("coalesce({banned} > now(), false)"),
    ]
}

/// Each user's identities, `provider:provider_id` sorted, by user id.
async fn identities(
    c: &Client,
    table: &TableName,
    m: &TableMapping,
    source: bool,
) -> Result<BTreeMap<String, Vec<String>>> {
    let name = |s: &str| -> String {
        if source {
            s.to_string()
        } else {
            m.columns
                .iter()
                .find(|p| p.source == s)
                .map_or_else(|| s.to_string(), |p| p.target.clone())
        }
    };
    let sql = format!(
        "{} select {}::text, {} || ':' || {} from {}",
        crate::sql::OWN,
        quote_ident(&name("user_id")),
        quote_ident(&name("provider")),
        quote_ident(&name("provider_id")),
        table.quoted()
    );
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| Error::postgres(format!("reading the identities of {table}"), e))?;
    Ok(by_user(&rows))
}

/// (user id, value) rows as each user's values, sorted.
fn by_user(rows: &[tokio_postgres::Row]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Each user's passkeys, `passkey:<SHA-256 of the credential id and the
/// public key>` sorted, by user id (never the keys themselves).
async fn passkeys(c: &Client, table: &TableName) -> Result<BTreeMap<String, Vec<String>>> {
    let sql = format!(
        "{} select user_id::text, 'passkey:' || encode(sha256(credential_id || public_key), 'hex') from {}",
        crate::sql::OWN,
        table.quoted()
    );
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| Error::postgres(format!("reading the passkeys of {table}"), e))?;
    Ok(by_user(&rows))
}

/// The census on the source and its comparison with the target.
pub async fn census(src: &Client, tgt: &Client, tables: &[TableMapping]) -> Result<Logins> {
    let Some(t) = UsersTables::find(tables) else {
        return Ok(Logins {
            not_checked: Some("auth.users does not move with this plan".into()),
            ..Logins::default()
        });
    };
    let src_cols = columns(src, &t.users.source).await?;
    let tgt_cols = columns(tgt, &t.users.target).await?;
    let source = user_rows(
        src,
        &t.users.source,
        &user_exprs(&src_cols, |c| Some(c.to_string())),
    )
    .await?;
    let target = user_rows(
        tgt,
        &t.users.target,
        &user_exprs(&tgt_cols, |c| t.target_column(c).map(str::to_string)),
    )
    .await?;
    let (mut src_ids, mut tgt_ids) = match t.identities {
        Some(m) => (
            identities(src, &m.source, m, true).await?,
            identities(tgt, &m.target, m, false).await?,
        ),
        None => (
            identities(src, &TableName::new("auth", "identities"), t.users, true)
                .await
                .unwrap_or_default(),
            BTreeMap::new(),
        ),
    };
    // Passkeys count with the identities: the way in, per user.
    if let Some(m) = t.passkeys {
        for (ids, keys) in [
            (&mut src_ids, passkeys(src, &m.source).await?),
            (&mut tgt_ids, passkeys(tgt, &m.target).await?),
        ] {
            for (user, k) in keys {
                let v = ids.entry(user).or_default();
                v.extend(k);
                v.sort();
            }
        }
    }
    Ok(tally(&source, &target, &src_ids, &tgt_ids))
}

/// Counts each kind and its users whose data differs on the target.
fn tally(
    source: &BTreeMap<String, UserRow>,
    target: &BTreeMap<String, UserRow>,
    src_ids: &BTreeMap<String, Vec<String>>,
    tgt_ids: &BTreeMap<String, Vec<String>>,
) -> Logins {
    let mut kinds: BTreeMap<String, LoginKind> = BTreeMap::new();
    let none = Vec::new();
    for (id, u) in source {
        let row_same = target.get(id).is_some_and(|t| t.digest == u.digest);
        let ids = src_ids.get(id).unwrap_or(&none);
        let ids_same = tgt_ids.get(id).unwrap_or(&none) == ids;
        for (kind, needs_ids) in kinds_of(u, ids) {
            let (compared, todo) = advice(&kind);
            let k = kinds.entry(kind.clone()).or_insert_with(|| LoginKind {
                kind,
                users: 0,
                differing: 0,
                compared: compared.into(),
                todo,
            });
            k.users += 1;
            if !row_same || (needs_ids && !ids_same) {
                k.differing += 1;
            }
        }
    }
    Logins {
        users: source.len() as i64,
        kinds: kinds.into_values().collect(),
        not_checked: None,
    }
}

/// The kinds a user signs in by; each with whether it needs the user's
/// identities.
fn kinds_of(u: &UserRow, identities: &[String]) -> Vec<(String, bool)> {
    if u.deleted {
        return vec![("deleted (soft)".into(), false)];
    }
    let mut out = Vec::new();
    if u.banned {
        out.push(("banned".into(), false));
    }
    if let Some(s) = &u.hash_scheme {
        out.push((format!("password: {s}"), false));
    }
    if u.anonymous {
        out.push(("anonymous".into(), false));
    }
    let mut oauth = false;
    if identities.iter().any(|i| i.starts_with("passkey:")) {
        out.push(("passkey (WebAuthn)".into(), true));
    }
    for i in identities {
        let provider = i.split(':').next().unwrap_or("");
        if provider == "passkey" {
            continue;
        }
        if provider == "sso" || i.starts_with("sso:") {
            continue;
        }
        if provider != "email" && provider != "phone" {
            oauth = true;
            out.push((format!("OAuth: {provider}"), true));
        }
    }
    if u.sso {
        out.push(("SSO (SAML)".into(), true));
    }
    if u.phone {
        out.push(("phone (one-time codes)".into(), false));
    }
    if u.email && u.hash_scheme.is_none() && !u.sso && !u.anonymous && !oauth {
        out.push((
            "email without a password (magic link / one-time code)".into(),
            false,
        ));
    }
    out.dedup();
    out
}

/// What is compared for a kind, and what the application must still do.
fn advice(kind: &str) -> (&'static str, String) {
    const ROW: &str = "the stored hash, email and phone, byte for byte";
    const WITH_IDS: &str = "the user row and its identities (provider and provider id)";
    if let Some(s) = kind.strip_prefix("password: ") {
        let todo = if s.starts_with("bcrypt") {
            format!("verify passwords with any bcrypt library ({s}): the hashes are GoTrue's own; `supamigrate verify --login EMAIL` checks one")
        } else if s.starts_with("argon2") {
            format!("these were imported into Supabase as {s} hashes: verify them with an {s} library (GoTrue accepted them; plain bcrypt code will refuse them)")
        } else {
            "verify them with the library that made them, or ask these users to reset their password".into()
        };
        return (ROW, todo);
    }
    if let Some(p) = kind.strip_prefix("OAuth: ") {
        return (
            WITH_IDS,
            format!("register {p} as a sign-in provider of your new auth service with the same OAuth client (so {p}'s user ids match auth.identities.provider_id), and re-enter its client secret (not readable from Supabase)"),
        );
    }
    if kind == "passkey (WebAuthn)" {
        return (
            "the user row and its passkeys (credential id and public key, by their SHA-256)",
            "have your new sign-in service verify WebAuthn assertions against auth.webauthn_credentials with the same relying party id (your domain): passkeys belong to the domain, not to Supabase".into(),
        );
    }
    let todo = match kind {
        "SSO (SAML)" => "move the SAML identity providers (auth.sso_providers, auth.sso_domains) to your new auth service; their certificates and metadata URLs are in the Supabase dashboard",
        "anonymous" => "anonymous users cannot sign in again once their session ends: link them to a real sign-in first, or accept losing them",
        "banned" => "keep refusing their sign-ins until banned_until (the column is copied)",
        "deleted (soft)" => "keep refusing their sign-ins (deleted_at is copied)",
        k if k.starts_with("phone") => "configure an SMS provider for one-time codes and re-enter its credentials (Supabase's Twilio/MessageBird settings are not readable)",
        _ => "configure an email sender for sign-in links and one-time codes (Supabase's SMTP settings are not readable)",
    };
    (
        if kind == "SSO (SAML)" { WITH_IDS } else { ROW },
        todo.to_string(),
    )
}

/// `verify --login`: one password against one side's stored hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum LoginOutcome {
    /// The password matches the stored hash.
    Matches {
        /// The hash's scheme.
        scheme: String,
    },
    /// It does not.
    WrongPassword {
        /// The hash's scheme.
        scheme: String,
    },
    /// The hash is of a scheme this tool does not check (argon2, …).
    NotChecked {
        /// The hash's scheme.
        scheme: String,
    },
    /// The user has no password (signs in another way).
    NoPassword,
    /// No user with that email.
    NoSuchUser,
}

impl LoginOutcome {
    /// The password is proven to work.
    pub fn matches(&self) -> bool {
        matches!(self, LoginOutcome::Matches { .. })
    }
}

/// The stored hashes of the users with `email` on one side (several users
/// may share an email: an SSO user and an email one).
pub async fn stored_hashes(
    c: &Client,
    table: &TableName,
    email_col: &str,
    hash_col: &str,
    email: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "{own} select coalesce({h}, '') from {t} where lower({e}) = lower($1) order by 1 desc",
        own = crate::sql::OWN,
        h = quote_ident(hash_col),
        e = quote_ident(email_col),
        t = table.quoted()
    );
    let rows = c.query(&sql, &[&email]).await.map_err(|e| {
        Error::postgres(
            format!("reading the stored password of a user of {table}"),
            e,
        )
    })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Checks `password` against `hashes` (one side's): bcrypt, in this process.
pub async fn check_password(hashes: Vec<String>, password: &str) -> Result<LoginOutcome> {
    if hashes.is_empty() {
        return Ok(LoginOutcome::NoSuchUser);
    }
    let mut best = LoginOutcome::NoPassword;
    for h in hashes {
        let Some(scheme) = hash_scheme(&h) else {
            continue;
        };
        if !scheme.starts_with("bcrypt") {
            best = LoginOutcome::NotChecked { scheme };
            continue;
        }
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &h))
            .await
            .map_err(|e| Error::internal(format!("checking a password: {e}")))?
            .unwrap_or(false);
        if ok {
            return Ok(LoginOutcome::Matches { scheme });
        }
        best = LoginOutcome::WrongPassword { scheme };
    }
    Ok(best)
}

/// `verify --login`'s answer: the password against each side's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginCheck {
    /// On the source.
    pub source: LoginOutcome,
    /// On the target.
    pub target: LoginOutcome,
}

impl LoginCheck {
    /// The password signs the user in on both sides.
    pub fn proven(&self) -> bool {
        self.source.matches() && self.target.matches()
    }
}

/// Checks `password` for the user with `email` on both sides of `m`.
pub async fn check_login(
    m: &crate::migration::Migration,
    email: &str,
    password: &str,
) -> Result<LoginCheck> {
    let t = UsersTables::find(&m.plan.tables).ok_or_else(|| {
        Error::invalid_input("this plan does not move auth.users: there are no logins to check")
    })?;
    let (email_col, hash_col) = match (t.target_column("email"), t.target_column("encrypted_password")) {
        (Some(e), Some(h)) => (e.to_string(), h.to_string()),
        _ => {
            return Err(Error::invalid_input(
                "the plan does not carry auth.users' email and encrypted_password columns: there are no passwords to check",
            ))
        }
    };
    let (src, tgt) = tokio::try_join!(
        crate::connect::connect(&m.source),
        crate::connect::connect(&m.target)
    )?;
    let on_source =
        stored_hashes(&src, &t.users.source, "email", "encrypted_password", email).await?;
    let on_target = stored_hashes(&tgt, &t.users.target, &email_col, &hash_col, email).await?;
    if on_source.is_empty() && on_target.is_empty() {
        return Err(Error::invalid_input(format!(
            "no user signs in with {email} on either side: nothing was checked"
        ))
        .with_hint("give the email of a user of auth.users (compared without regard to case)"));
    }
    Ok(LoginCheck {
        source: check_password(on_source, password).await?,
        target: check_password(on_target, password).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_schemes_are_named_with_their_cost() {
        for (hash, want) in [
            (
                "$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4g3Ez0QJYy1i3Y8QW3kN5uW",
                Some("bcrypt (cost 10)"),
            ),
            ("$2b$12$abcdefghijklmnopqrstuu", Some("bcrypt (cost 12)")),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$Zm9v",
                Some("argon2id"),
            ),
            ("pbkdf2_sha256$260000$x$y", Some("another hash format")),
            ("", None),
        ] {
            assert_eq!(hash_scheme(hash).as_deref(), want, "{hash}");
        }
    }

    #[test]
    fn each_user_is_counted_under_each_way_they_sign_in() {
        let u = |f: &dyn Fn(&mut UserRow)| {
            let mut r = UserRow {
                email: true,
                ..UserRow::default()
            };
            f(&mut r);
            r
        };
        let names = |r: &UserRow, ids: &[&str]| -> Vec<String> {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            kinds_of(r, &ids).into_iter().map(|(k, _)| k).collect()
        };
        let pw = u(&|r| r.hash_scheme = Some("bcrypt (cost 10)".into()));
        assert_eq!(names(&pw, &["email:1"]), ["password: bcrypt (cost 10)"]);
        let google = u(&|_| {});
        assert_eq!(names(&google, &["google:108"]), ["OAuth: google"]);
        let magic = u(&|_| {});
        assert_eq!(
            names(&magic, &["email:1"]),
            ["email without a password (magic link / one-time code)"]
        );
        let sso = u(&|r| r.sso = true);
        assert_eq!(names(&sso, &["sso:5e5e:alice"]), ["SSO (SAML)"]);
        let phone = u(&|r| {
            r.email = false;
            r.phone = true;
        });
        assert_eq!(names(&phone, &["phone:1"]), ["phone (one-time codes)"]);
        let gone = u(&|r| r.deleted = true);
        assert_eq!(names(&gone, &[]), ["deleted (soft)"]);
    }
}
