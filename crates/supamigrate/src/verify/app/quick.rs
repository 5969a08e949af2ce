//! The application's checks in the cutover's fast form: what can be proved
//! in milliseconds while writes are stopped, without reading the tables'
//! rows (the full form is `verify --app`):
//!
//! - the identity functions the policies call (`auth.uid()`, `auth.role()`,
//!   `auth.jwt()`) answer the same on both sides as anon, service_role and
//!   the first signed-up users;
//! - for each role and each table with row level security, whether it sees
//!   every row, none, is refused, or depends on the user: the same on both
//!   sides (the catalog only).

use tokio_postgres::Client;

use super::access::{self, Principal};
use crate::error::{Error, Result};
use crate::plan::convert::PolicyMode;
use crate::plan::MigrationPlan;

/// Signed-up users whose identity is compared at the cutover.
pub const USERS: i64 = 3;

/// What the fast form found (the cutover's report holds it).
pub use crate::follow::AppQuick as Quick;

/// The identity functions' answers, as text.
const IDENTITY_SQL: &str = "select coalesce(auth.uid()::text, 'NULL'), \
    coalesce(auth.role()::text, 'NULL'), coalesce(auth.jwt() ->> 'sub', 'NULL')";

/// The identity functions compared.
const FUNCTIONS: [&str; 3] = ["auth.uid()", "auth.role()", "auth.jwt() ->> 'sub'"];

/// Runs the fast form on `src` and `tgt` (sessions outside a transaction;
/// each read happens in a read-only transaction rolled back).
pub async fn check(src: &Client, tgt: &Client, plan: &MigrationPlan) -> Result<Quick> {
    if plan.options.policies == PolicyMode::Drop {
        return Ok(Quick {
            not_checked: Some(
                "RLS policies were dropped (--policies drop): access control is the application's"
                    .into(),
            ),
            ..Quick::default()
        });
    }
    let begin = "begin transaction isolation level repeatable read, read only";
    let what = |e| Error::postgres("opening a read-only transaction", e);
    tokio::try_join!(src.batch_execute(begin), tgt.batch_execute(begin)).map_err(what)?;
    let out = compare(src, tgt, plan).await;
    let _ = tokio::join!(src.batch_execute("rollback"), tgt.batch_execute("rollback"));
    out
}

async fn compare(src: &Client, tgt: &Client, plan: &MigrationPlan) -> Result<Quick> {
    let everyone = access::first_principals(src, USERS).await?;
    let mut out = Quick::default();
    let has_identity: bool = src
        .query_one(
            "select to_regprocedure('auth.uid()') is not null \
               and to_regprocedure('auth.role()') is not null \
               and to_regprocedure('auth.jwt()') is not null",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("looking for auth.uid() on the source", e))?
        .get(0);
    // A plain source has no identity functions to compare with.
    let askers = if has_identity { &everyone[..] } else { &[] };
    out.principals = askers.len();
    for p in askers {
        match tokio::try_join!(identity(src, p), identity(tgt, p))? {
            (Ok(s), Ok(t)) => {
                for ((name, a), b) in FUNCTIONS.iter().zip(&s).zip(&t) {
                    if a != b {
                        out.differences
                            .push(format!("{name} as {}: source {a}, target {b}", p.name));
                    }
                }
            }
            (Err(a), Err(b)) if a == b => {}
            (s, t) => out.differences.push(format!(
                "the identity functions as {}: source {}, target {}",
                p.name,
                s.map_or_else(|e| e, |v| v.join(", ")),
                t.map_or_else(|e| e, |v| v.join(", "))
            )),
        }
    }
    let tables = super::rls_tables(src, plan).await?;
    let roles = access::roles_of(&everyone);
    let (s, t) = tokio::try_join!(
        access::kinds(src, &tables, true, &roles),
        access::kinds(tgt, &tables, false, &roles)
    )?;
    let user = "depends on the user";
    for role in &roles {
        for (i, table) in tables.iter().enumerate() {
            out.compared += 1;
            let key = (role.clone(), i);
            let (a, b) = (
                s.get(&key).copied().unwrap_or(user),
                t.get(&key).copied().unwrap_or(user),
            );
            if a != b {
                out.differences.push(format!(
                    "{} as {role}: source {a}, target {b}",
                    table.target
                ));
            }
        }
    }
    Ok(out)
}

/// What the identity functions answer as `p`; `Err` with the server's
/// message when they cannot (a function missing) or `p` cannot be acted as.
async fn identity(c: &Client, p: &Principal) -> Result<std::result::Result<Vec<String>, String>> {
    let read = async {
        Ok(match c.query_one(IDENTITY_SQL, &[]).await {
            Ok(r) => Ok((0..FUNCTIONS.len())
                .map(|i| r.get::<_, String>(i))
                .collect()),
            Err(e) => Err(super::server_error(&e)),
        })
    };
    Ok(access::as_principal(c, p, read).await?.and_then(|r| r))
}
