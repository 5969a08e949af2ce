//! What the plan must know about the source's data, not only its schema:
//! stored generated columns whose rows no longer match their expression,
//! and the columns that hold Storage references.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::{quote_ident, TableName};

/// A stored generated column, and how many rows hold a value its
/// expression no longer gives (the function it calls was redefined after
/// they were written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedColumn {
    /// Its table.
    pub table: TableName,
    /// The column.
    pub column: String,
    /// Its expression.
    pub expression: String,
    /// Rows whose stored value differs from the expression's.
    pub stale_rows: i64,
}

/// The materialized views of `schemas` the source has populated, each after
/// the ones it reads.
pub async fn populated_matviews(client: &Client, schemas: &[String]) -> Result<Vec<TableName>> {
    Ok(client
        .query(include_str!("sql/populated_matviews.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing materialized views", e))?
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// A setting of the source database (`ALTER DATABASE … SET name = value`):
/// the application's functions may read it with `current_setting()`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatabaseSetting {
    /// The parameter (`app.region`, `timezone`…).
    pub name: String,
    /// Its value as stored; a secret in it (a key, a JWT) is redacted.
    pub value: String,
}

/// The source database's own settings, secrets in their values redacted
/// into `secrets`.
pub async fn database_settings(
    client: &Client,
    secrets: &mut crate::secrets::Vault,
) -> Result<Vec<DatabaseSetting>> {
    Ok(client
        .query(include_str!("sql/database_settings.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading the database's settings", e))?
        .iter()
        .map(|r| DatabaseSetting {
            name: r.get(0),
            value: secrets.redact(r.get(1)),
        })
        .collect())
}

/// A role of the project's own on the source: grants, policies and
/// memberships name it, so the target needs it too.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProjectRole {
    /// Its name.
    pub name: String,
    /// It logs in (its password cannot be read from Supabase).
    pub login: bool,
    /// The roles it is a member of (the project's own and the API roles).
    pub member_of: Vec<String>,
    /// Its settings (`ALTER ROLE … SET`), secrets in their values redacted.
    #[serde(default)]
    pub settings: Vec<DatabaseSetting>,
}

/// The project's own roles on the source: every role but PostgreSQL's,
/// superusers, the platform's and the one supamigrate connects as.
pub async fn project_roles(
    client: &Client,
    secrets: &mut crate::secrets::Vault,
) -> Result<Vec<ProjectRole>> {
    let me = current_user(client).await?;
    // (AWS's reserved roles too: a plain source on RDS has them.)
    let ours = |n: &str| !crate::supabase::is_supabase_role(n) && !is_aws_role(n) && n != me;
    Ok(client
        .query(include_str!("sql/project_roles.sql"), &[])
        .await
        .map_err(|e| Error::postgres("listing roles", e))?
        .iter()
        .filter(|r| ours(r.get::<_, &str>(0)))
        .map(|r| ProjectRole {
            name: r.get(0),
            login: r.get(1),
            member_of: r
                .get::<_, Vec<String>>(2)
                .into_iter()
                .filter(|g| ours(g) || crate::supabase::API_ROLES.contains(&g.as_str()))
                .collect(),
            settings: r
                .get::<_, Vec<String>>(3)
                .iter()
                .filter_map(|c| c.split_once('='))
                .map(|(name, value)| DatabaseSetting {
                    name: name.to_string(),
                    value: secrets.redact(value),
                })
                .collect(),
        })
        .collect())
}

/// One change the project made to the privileges PostgreSQL gives new
/// objects (`ALTER DEFAULT PRIVILEGES`): a grant beyond the built-in
/// default, or, for every schema, a default taken away (`REVOKE EXECUTE
/// ON FUNCTIONS FROM PUBLIC`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct DefaultPrivilege {
    /// The role whose new objects get it (`FOR ROLE`).
    pub role: String,
    /// `IN SCHEMA`; `None` for every schema.
    pub schema: Option<String>,
    /// pg_default_acl's kind: `r` tables, `S` sequences, `f` functions,
    /// `T` types, `n` schemas.
    pub kind: String,
    /// The grantee; "" for PUBLIC.
    pub grantee: String,
    /// The privilege (`SELECT`, `EXECUTE`…).
    pub privilege: String,
    /// `WITH GRANT OPTION`.
    pub grantable: bool,
    /// Taken away from the built-in default rather than granted.
    pub revoke: bool,
}

/// The project's changes to default privileges: those for objects its
/// own roles or the role supamigrate connects as (Supabase's `postgres`)
/// create, to PUBLIC or the project's roles. The platform's (for its own
/// roles, or to them) are left out.
pub async fn default_privileges(client: &Client) -> Result<Vec<DefaultPrivilege>> {
    let me = current_user(client).await?;
    let project = |n: &str| !crate::supabase::is_supabase_role(n) && !is_aws_role(n);
    Ok(client
        .query(include_str!("sql/default_privileges.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading default privileges", e))?
        .iter()
        .map(|r| DefaultPrivilege {
            role: r.get(0),
            schema: r.get(1),
            kind: r.get(2),
            grantee: r.get(3),
            privilege: r.get(4),
            grantable: r.get(5),
            revoke: r.get(6),
        })
        .filter(|d| d.role == me || d.role == "postgres" || project(&d.role))
        .filter(|d| d.grantee.is_empty() || (project(&d.grantee) && d.grantee != me))
        .collect())
}

/// The role the session runs as.
async fn current_user(client: &Client) -> Result<String> {
    Ok(client
        .query_one("select current_user::text", &[])
        .await
        .map_err(|e| Error::postgres("reading the current role", e))?
        .get(0))
}

/// AWS's reserved roles (a plain source on RDS has them).
fn is_aws_role(n: &str) -> bool {
    n.starts_with("rds_") || matches!(n, "rdsadmin" | "rdsrepladmin" | "rdstopmgr")
}

/// The stored generated columns of `schemas`' tables, each with its stale
/// rows counted (one scan of each such table).
pub async fn generated_columns(
    client: &Client,
    schemas: &[String],
) -> Result<Vec<GeneratedColumn>> {
    let rows = client
        .query(include_str!("sql/generated_columns.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing generated columns", e))?;
    let mut out = Vec::new();
    for r in rows {
        let table = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let column: String = r.get(2);
        let expression: String = r.get(3);
        let sql = format!(
            "select count(*) from {} where {} is distinct from ({expression})",
            table.quoted(),
            quote_ident(&column)
        );
        let stale_rows: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| Error::postgres(format!("checking generated column {table}.{column}"), e))?
            .get(0);
        out.push(GeneratedColumn {
            table,
            column,
            expression,
            stale_rows,
        });
    }
    Ok(out)
}

/// Sampled values of a text column, for Storage reference discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSample {
    /// Its table.
    pub table: TableName,
    /// The column.
    pub column: String,
    /// Distinct non-empty values sampled.
    pub values: usize,
    /// Of them, the Supabase Storage URLs (`…/storage/v1/…`). Signed URLs
    /// carry tokens: the inventory is never shown or stored.
    pub urls: Vec<String>,
    /// The buckets of the others that are keys of `storage.objects`
    /// (`name`, or `bucket/name`).
    pub key_buckets: Vec<String>,
}

/// How many distinct values discovery samples per column (from the first
/// 200 non-empty rows: no table is read to its end).
pub const SAMPLE_VALUES: i64 = 20;

/// Tables larger than this many pages (8 MB) are sampled from about this
/// many random pages (`TABLESAMPLE SYSTEM … REPEATABLE`, so a plan made
/// again samples the same pages) rather than read until 200 non-empty
/// values turn up: a column empty in most rows of a large table would have
/// been read to its end, on the production source, for every plan.
pub const SAMPLE_PAGES: i64 = 1000;

/// Longer values are not Storage references (a path, a URL, a signed URL):
/// discovery never reads them, so a document of hundreds of megabytes in a
/// sampled column costs its length's header, not its bytes.
pub const MAX_REFERENCE_BYTES: i64 = 4096;

/// The `TABLESAMPLE` clause for a table of `pages` pages (empty: read it).
fn sample_clause(pages: i64) -> String {
    if pages <= SAMPLE_PAGES {
        return String::new();
    }
    let percent = 100.0 * SAMPLE_PAGES as f64 / pages as f64;
    format!(" tablesample system ({percent:.6}) repeatable (0)")
}

/// Samples every text column of `schemas` for Storage references. Empty
/// when the source has no `storage.objects`.
pub async fn sample_reference_columns(
    client: &Client,
    schemas: &[String],
) -> Result<Vec<ColumnSample>> {
    if !super::has_storage(client).await? {
        return Ok(Vec::new());
    }
    let columns = client
        .query(include_str!("sql/text_columns.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing text columns", e))?;
    let mut out = Vec::new();
    for r in columns {
        let table = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let column: String = r.get(2);
        let sample = sample_clause(r.get(3));
        let sql = format!(
            "{own} with raw as (select {c}::text collate \"C\" as v from {t}{sample} \
                          where {c} is not null and octet_length({c}::text) between 1 and {MAX_REFERENCE_BYTES} limit 200),
                  v as (select distinct ltrim(v, '/') as v from raw limit {SAMPLE_VALUES})
             select (select count(*) from v),
                    array(select v from v where v like '%/storage/v1/%'),
                    array(select b.id::text from v cross join storage.buckets b
                          where exists (select from storage.objects o
                                        where o.bucket_id = b.id and o.name = v.v collate \"default\")
                             or (b.id = split_part(v.v, '/', 1)
                                 and exists (select from storage.objects o
                                             where o.bucket_id = b.id
                                               and o.name = substr(v.v, length(split_part(v.v, '/', 1)) + 2) collate \"default\")))",
            own = crate::sql::OWN,
            c = quote_ident(&column),
            t = table.quoted()
        );
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| Error::postgres(format!("sampling {table}.{column}"), e))?;
        let values: i64 = row.get(0);
        let urls: Vec<String> = row.get(1);
        let key_buckets: Vec<String> = row.get(2);
        if values > 0 && (!urls.is_empty() || !key_buckets.is_empty()) {
            out.push(ColumnSample {
                table,
                column,
                values: values as usize,
                urls,
                key_buckets,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tables_are_sampled_from_about_sample_pages_pages() {
        assert_eq!(sample_clause(SAMPLE_PAGES), "");
        assert_eq!(
            sample_clause(2 * SAMPLE_PAGES),
            " tablesample system (50.000000) repeatable (0)"
        );
        assert_eq!(
            sample_clause(1000 * SAMPLE_PAGES),
            " tablesample system (0.100000) repeatable (0)"
        );
    }
}

/// Who reads past row level security on the source: what decides what the
/// target may show (service_role's policy under the shim, views reading
/// `auth.users` with their owner's rights).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSecurityFacts {
    /// Roles that bypass row level security: superusers and BYPASSRLS roles.
    pub bypassing_roles: std::collections::BTreeSet<String>,
    /// The application's views and materialized views (`schema.name`,
    /// unquoted) and their owners.
    pub view_owners: std::collections::BTreeMap<String, String>,
    /// `auth.users` has row level security enabled.
    pub auth_users_rls: bool,
    /// Policies on `auth.users`.
    pub auth_users_policies: i64,
}

impl RowSecurityFacts {
    /// Whether `role` bypasses row level security on the source.
    pub fn bypasses(&self, role: &str) -> bool {
        self.bypassing_roles.contains(role)
    }

    /// What the owner of view `name` (`schema.name`) saw of `auth.users`.
    pub fn owner_sees_users(&self, name: &str) -> OwnerSees {
        match self.view_owners.get(name) {
            Some(owner) if self.bypasses(owner) || !self.auth_users_rls => OwnerSees::Every,
            Some(owner) if self.auth_users_policies == 0 => OwnerSees::None(owner.clone()),
            Some(owner) => OwnerSees::ByPolicy(owner.clone()),
            None => OwnerSees::Every,
        }
    }
}

/// What a view's owner saw of `auth.users` on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerSees {
    /// Every user: it bypasses row level security (or auth.users has none).
    Every,
    /// No user: it does not bypass row level security and auth.users has
    /// no policy.
    None(String),
    /// What auth.users' policies let it see.
    ByPolicy(String),
}

/// Reads [`RowSecurityFacts`] for `schemas`.
pub async fn row_security(client: &Client, schemas: &[String]) -> Result<RowSecurityFacts> {
    let what = |e| Error::postgres("reading who bypasses row level security", e);
    let bypassing = client
        .query(
            "select rolname::text from pg_roles where rolsuper or rolbypassrls order by 1",
            &[],
        )
        .await
        .map_err(what)?;
    let views = client
        .query(
            "select n.nspname::text || '.' || c.relname::text, pg_get_userbyid(c.relowner)::text \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('v', 'm') and n.nspname = any($1) order by 1",
            &[&schemas],
        )
        .await
        .map_err(what)?;
    let users = client
        .query_one(
            "select coalesce((select relrowsecurity from pg_class where oid = to_regclass('auth.users')), false), \
                    (select count(*) from pg_policy where polrelid = to_regclass('auth.users'))",
            &[],
        )
        .await
        .map_err(what)?;
    Ok(RowSecurityFacts {
        bypassing_roles: bypassing.iter().map(|r| r.get(0)).collect(),
        view_owners: views.iter().map(|r| (r.get(0), r.get(1))).collect(),
        auth_users_rls: users.get(0),
        auth_users_policies: users.get(1),
    })
}
