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
    /// How many Vault secrets (`None`: the role may not count them).
    pub vault_secrets: Option<i64>,
    /// Foreign servers.
    pub foreign_servers: Vec<ForeignServer>,
    /// The application's triggers on internal tables.
    pub internal_triggers: Vec<InternalTrigger>,
    /// Policies on internal tables.
    pub internal_policies: Vec<InternalPolicy>,
}

/// Reads them.
pub async fn gather(client: &Client) -> Result<PlatformFacts> {
    let internal: Vec<String> = INTERNAL_SCHEMAS.iter().map(|s| s.to_string()).collect();
    let q = |e| Error::postgres("reading the platform features the project uses", e);
    let exists = |rel: &'static str| async move {
        client
            .query_one("select to_regclass($1) is not null", &[&rel])
            .await
            .map(|r| r.get::<_, bool>(0))
    };
    let cron_jobs = if exists("cron.job").await.map_err(q)? {
        client
            .query(include_str!("sql/cron_jobs.sql"), &[])
            .await
            .map_err(q)?
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
            .collect()
    } else {
        Vec::new()
    };
    let vault_secrets = if exists("vault.secrets").await.map_err(q)? {
        // Counting needs SELECT on vault.secrets; without it, say so.
        client
            .query_one("select count(*) from vault.secrets", &[])
            .await
            .ok()
            .map(|r| r.get::<_, i64>(0))
    } else {
        Some(0)
    };
    let queues = crate::pg::strings(
        client,
        include_str!("sql/pgmq_queues.sql"),
        &[],
        "pgmq queues",
    )
    .await?;
    let foreign_servers = client
        .query(include_str!("sql/foreign_servers.sql"), &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| ForeignServer {
            name: r.get(0),
            wrapper: r.get(1),
            option_names: r.get(2),
            foreign_tables: r.get(3),
        })
        .collect();
    let internal_triggers = client
        .query(include_str!("sql/internal_triggers.sql"), &[&internal])
        .await
        .map_err(q)?
        .iter()
        .map(|r| InternalTrigger {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            function: r.get(3),
            definition: r.get(4),
        })
        .collect();
    let internal_policies = client
        .query(include_str!("sql/internal_policies.sql"), &[&internal])
        .await
        .map_err(q)?
        .iter()
        .map(|r| InternalPolicy {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
        })
        .collect();
    Ok(PlatformFacts {
        cron_jobs,
        queues,
        vault_secrets,
        foreign_servers,
        internal_triggers,
        internal_policies,
    })
}
