//! What a Supabase project has besides its application schemas, that the
//! application uses: pg_cron jobs, pgmq queues, Vault secrets (counted,
//! never read), foreign servers (option names, never values), the
//! application's triggers and policies on Supabase's own tables.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::supabase::INTERNAL_SCHEMAS;

/// A pg_cron job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJob {
    /// `cron.job.jobid`.
    pub id: i64,
    /// Its name ("" for jobs scheduled without one).
    pub name: String,
    /// The cron schedule.
    pub schedule: String,
    /// The SQL it runs (secrets in it are redacted by the inventory).
    pub command: String,
    /// The database it runs in.
    pub database: String,
    /// The role it runs as.
    pub username: String,
    /// Whether it is active.
    pub active: bool,
}

/// A foreign server and what uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignServer {
    /// Its name.
    pub name: String,
    /// Its foreign data wrapper.
    pub wrapper: String,
    /// The names of its options (their values may be keys and are never read).
    pub option_names: Vec<String>,
    /// Its foreign tables (`schema.table`).
    pub foreign_tables: Vec<String>,
}

/// An application trigger on a table of a Supabase-internal schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalTrigger {
    /// `auth`, `storage`…
    pub schema: String,
    /// `users`, `objects`…
    pub table: String,
    /// The trigger's name.
    pub name: String,
    /// Its function (`public.handle_new_user`).
    pub function: String,
    /// `CREATE TRIGGER …` (secrets redacted by the inventory).
    pub definition: String,
}

/// A policy on a table of a Supabase-internal schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalPolicy {
    /// Its table's schema.
    pub schema: String,
    /// Its table.
    pub table: String,
    /// Its name.
    pub name: String,
}

/// The platform features the source uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFacts {
    /// pg_cron jobs.
    pub cron_jobs: Vec<CronJob>,
    /// pgmq queue names.
    pub queues: Vec<String>,
    /// How many Vault secrets (0 without Vault).
    pub vault_secrets: i64,
    /// The Vault secrets' ids and names (never their values).
    #[serde(default)]
    pub vault_names: Vec<(String, String)>,
    /// Vault is there, but the role may not count its secrets.
    pub vault_unreadable: bool,
    /// Foreign servers.
    pub foreign_servers: Vec<ForeignServer>,
    /// The application's triggers on internal tables.
    pub internal_triggers: Vec<InternalTrigger>,
    /// Policies on internal tables.
    pub internal_policies: Vec<InternalPolicy>,
    /// Privileges granted on `auth.users`: (role, privilege).
    #[serde(default)]
    pub auth_users_grants: Vec<(String, String)>,
    /// `auth.users` has row level security on (it has on hosted projects,
    /// with no policy: only its owner and BYPASSRLS roles see rows).
    #[serde(default)]
    pub auth_users_rls: bool,
}

/// Reads them.
pub async fn gather(client: &Client) -> Result<PlatformFacts> {
    let internal: Vec<String> = INTERNAL_SCHEMAS.iter().map(|s| s.to_string()).collect();
    let vault = vault_count(client).await?;
    Ok(PlatformFacts {
        cron_jobs: cron_jobs(client).await?,
        queues: crate::pg::strings(
            client,
            include_str!("sql/pgmq_queues.sql"),
            &[],
            "pgmq queues",
        )
        .await?,
        vault_secrets: vault.unwrap_or(0),
        vault_names: if vault.unwrap_or(0) > 0 {
            vault_names(client).await?
        } else {
            Vec::new()
        },
        vault_unreadable: vault.is_none(),
        foreign_servers: foreign_servers(client).await?,
        internal_triggers: internal_triggers(client, &internal).await?,
        internal_policies: internal_policies(client, &internal).await?,
        auth_users_grants: client
            .query(include_str!("sql/auth_users_grants.sql"), &[])
            .await
            .map_err(failed)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
        auth_users_rls: client
            .query_one(
                "select coalesce((select relrowsecurity from pg_class where oid = to_regclass('auth.users')), false)",
                &[],
            )
            .await
            .map_err(failed)?
            .get(0),
    })
}

fn failed(e: tokio_postgres::Error) -> Error {
    Error::postgres("reading the platform features the project uses", e)
}

async fn exists(client: &Client, rel: &str) -> Result<bool> {
    Ok(client
        .query_one("select to_regclass($1) is not null", &[&rel])
        .await
        .map_err(failed)?
        .get(0))
}

async fn cron_jobs(client: &Client) -> Result<Vec<CronJob>> {
    if !exists(client, "cron.job").await? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(include_str!("sql/cron_jobs.sql"), &[])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| CronJob {
            id: r.get(0),
            name: r.get(1),
            schedule: r.get(2),
            command: r.get(3),
            database: r.get(4),
            username: r.get(5),
            active: r.get(6),
        })
        .collect())
}

/// How many Vault secrets (`None`: Vault is there, the role may not count).
async fn vault_count(client: &Client) -> Result<Option<i64>> {
    if !exists(client, "vault.secrets").await? {
        return Ok(Some(0));
    }
    Ok(client
        .query_one("select count(*) from vault.secrets", &[])
        .await
        .ok()
        .map(|r| r.get::<_, i64>(0)))
}

/// The secrets' ids and names: the values are never read.
async fn vault_names(client: &Client) -> Result<Vec<(String, String)>> {
    Ok(client
        .query(
            "select id::text, coalesce(name, '') from vault.secrets order by created_at, id",
            &[],
        )
        .await
        .map_err(failed)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn foreign_servers(client: &Client) -> Result<Vec<ForeignServer>> {
    Ok(client
        .query(include_str!("sql/foreign_servers.sql"), &[])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| ForeignServer {
            name: r.get(0),
            wrapper: r.get(1),
            option_names: r.get(2),
            foreign_tables: r.get(3),
        })
        .collect())
}

async fn internal_triggers(client: &Client, internal: &[String]) -> Result<Vec<InternalTrigger>> {
    Ok(client
        .query(include_str!("sql/internal_triggers.sql"), &[&internal])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| InternalTrigger {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            function: r.get(3),
            definition: r.get(4),
        })
        .collect())
}

async fn internal_policies(client: &Client, internal: &[String]) -> Result<Vec<InternalPolicy>> {
    Ok(client
        .query(include_str!("sql/internal_policies.sql"), &[&internal])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| InternalPolicy {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
        })
        .collect())
}
