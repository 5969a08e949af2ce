//! Provisioning the target (seed Phase 2.2 and the grants of 3.1), as the
//! plan says: the database, supamigrate's state store in it (with the
//! plan), its extensions, the application role and its privileges.
//! Idempotent: a re-run creates what is missing and changes nothing else.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{connect, random_hex, ConnInfo, Password};
use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal};
use crate::plan::convert::CronPlan;
use crate::plan::provision::ProvisionPlan;
use crate::plan::MigrationPlan;
use crate::secrets::Vault;
use crate::supabase::API_ROLES;

/// What provisioning needs besides the plan.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The application role's password (`APP_DB_PASSWORD`); generated (and
    /// written to `secrets_dir`) when `None` and the role is new.
    pub password: Option<Password>,
    /// Where a generated password is written, owner-only.
    pub secrets_dir: PathBuf,
}

/// What provisioning did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionReport {
    /// The database was created now.
    pub database_created: bool,
    /// Extensions created now.
    pub extensions_created: Vec<String>,
    /// The application role was created now.
    pub role_created: bool,
    /// Its password was set from the given one (new role, or an existing one).
    pub password_set: bool,
    /// Where the generated password was written (never the password itself).
    pub password_file: Option<PathBuf>,
    /// Shim roles created now.
    pub shim_roles_created: Vec<String>,
    /// The project's own roles created now (NOLOGIN).
    #[serde(default)]
    pub project_roles_created: Vec<String>,
    /// pg_cron jobs scheduled (or updated).
    #[serde(default)]
    pub cron_jobs_scheduled: usize,
    /// The source database's settings set on the target database.
    #[serde(default)]
    pub database_settings_set: Vec<String>,
    /// The project's roles' settings set on the target (`role: name`).
    #[serde(default)]
    pub role_settings_set: Vec<String>,
    /// Caveats to tell the user.
    pub warnings: Vec<String>,
}

/// Provisions the target as the plan says (its database is created through
/// the server's `postgres` database when missing) and stores the plan
/// there; the pg_cron jobs get the secrets found in definitions back.
pub async fn provision(
    m: &crate::migration::Migration,
    req: &ProvisionRequest,
) -> Result<ProvisionReport> {
    provision_with(&m.target, &m.plan, req, &m.vault).await
}

async fn provision_with(
    target: &ConnInfo,
    plan: &MigrationPlan,
    req: &ProvisionRequest,
    secrets: &Vault,
) -> Result<ProvisionReport> {
    let p = &plan.provision;
    let mut report = ProvisionReport::default();
    let maintenance = connect(&target.with_dbname("postgres")).await?;
    report.database_created = ensure_database(&maintenance, &p.database).await?;
    ensure_role(&maintenance, p, req, &mut report).await?;
    let mut client = connect(target).await?;
    crate::store::migrate(&mut client).await?;
    crate::store::store_plan(&client, plan).await?;
    for ext in &p.extensions {
        if !extension_present(&client, &ext.name).await? {
            report.extensions_created.push(ext.name.clone());
        }
    }
    let mut sql = grant_sql(p);
    if p.shim_roles {
        sql.extend(shim_sql(&client, p, &mut report).await?);
    }
    sql.extend(project_roles_sql(&client, p, &mut report).await?);
    for st in &sql {
        client
            .batch_execute(st)
            .await
            .map_err(|e| Error::postgres(format!("provisioning ({st})"), e))?;
    }
    if p.shim_roles {
        master_may_act_as_api_roles(&client, &mut report).await?;
    }
    set_database_settings(&client, p, secrets, &mut report).await?;
    set_role_settings(&client, p, secrets, &mut report).await?;
    if let Some(cron) = &p.cron {
        report.cron_jobs_scheduled = schedule_jobs(target, cron, secrets).await?;
    }
    Ok(report)
}

/// The source database's settings, on the target database: each value
/// read as the server reads postgresql.conf (`set_config`, so a list such
/// as search_path keeps its elements), then stored with `ALTER DATABASE …
/// SET … FROM CURRENT`: the value (perhaps a secret) is a bind parameter,
/// never SQL text. A setting the target refuses (a superuser-only
/// parameter on RDS) is a warning that names the parameter group.
async fn set_database_settings(
    client: &Client,
    p: &ProvisionPlan,
    secrets: &Vault,
    report: &mut ProvisionReport,
) -> Result<()> {
    for s in &p.database_settings {
        let value = secrets.prepare(&s.value)?;
        let alter = format!(
            "alter database {} set {} from current",
            quote_ident(&p.database),
            quote_ident(&s.name)
        );
        match set_from_current(client, &s.name, &value.run, &alter).await {
            Ok(()) => report.database_settings_set.push(s.name.clone()),
            Err(why) => report.warnings.push(value.mask(&format!(
                "database setting {} not set on the target ({why}): set it in the instance's parameter group",
                s.name
            ))),
        }
    }
    Ok(())
}

/// The project's roles' settings, for the target database (`ALTER ROLE …
/// IN DATABASE … SET … FROM CURRENT`, the value a bind parameter as for
/// the database's settings); a refusal is a warning.
async fn set_role_settings(
    client: &Client,
    p: &ProvisionPlan,
    secrets: &Vault,
    report: &mut ProvisionReport,
) -> Result<()> {
    for r in &p.project_roles {
        for s in &r.settings {
            let value = secrets.prepare(&s.value)?;
            let alter = format!(
                "alter role {} in database {} set {} from current",
                quote_ident(&r.name),
                quote_ident(&p.database),
                quote_ident(&s.name)
            );
            match set_from_current(client, &s.name, &value.run, &alter).await {
                Ok(()) => report
                    .role_settings_set
                    .push(format!("{}: {}", r.name, s.name)),
                Err(why) => report.warnings.push(value.mask(&format!(
                    "setting {} of role {} not set on the target ({why}): have its sessions set it",
                    s.name, r.name
                ))),
            }
        }
    }
    Ok(())
}

/// Sets `name` to `value` in a transaction and runs `alter` (`… SET name
/// FROM CURRENT`) in it; the server's refusal as text.
async fn set_from_current(
    client: &Client,
    name: &str,
    value: &str,
    alter: &str,
) -> std::result::Result<(), String> {
    let r = async {
        client.batch_execute("begin").await?;
        client
            .execute("select set_config($1, $2, true)", &[&name, &value])
            .await?;
        client.batch_execute(alter).await?;
        client.batch_execute("commit").await
    }
    .await;
    match r {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = client.batch_execute("rollback").await;
            Err(e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()))
        }
    }
}

/// pg_cron in its database (RDS: `postgres`), and the jobs scheduled from
/// there into the application's database. Idempotent: a job scheduled
/// again under its name is updated.
async fn schedule_jobs(target: &ConnInfo, cron: &CronPlan, secrets: &Vault) -> Result<usize> {
    let client = connect(&target.with_dbname(&cron.cron_database)).await?;
    client
        .batch_execute("create extension if not exists pg_cron")
        .await
        .map_err(|e| {
            Error::postgres(format!("creating pg_cron in database {}", cron.cron_database), e)
                .with_hint("RDS: add pg_cron to shared_preload_libraries in the instance's parameter group (cron.database_name stays postgres), reboot, and run provision again")
        })?;
    for j in &cron.jobs {
        let command = secrets.restore(&j.command)?;
        client
            .execute(
                "select cron.schedule_in_database($1, $2, $3, $4, null, $5)",
                &[&j.name, &j.schedule, &command, &cron.database, &j.active],
            )
            .await
            .map_err(|e| Error::postgres(format!("scheduling pg_cron job {}", j.name), e))?;
    }
    Ok(cron.jobs.len())
}

async fn ensure_database(maintenance: &Client, db: &str) -> Result<bool> {
    let exists = maintenance
        .query_opt("select 1 from pg_database where datname = $1", &[&db])
        .await
        .map_err(|e| Error::postgres("looking for the target database", e))?
        .is_some();
    if exists {
        return Ok(false);
    }
    maintenance
        .batch_execute(&format!("create database {}", quote_ident(db)))
        .await
        .map_err(|e| Error::postgres(format!("creating database {db}"), e))?;
    tracing::info!(database = %db, "database created");
    Ok(true)
}

async fn ensure_role(
    maintenance: &Client,
    p: &ProvisionPlan,
    req: &ProvisionRequest,
    report: &mut ProvisionReport,
) -> Result<()> {
    let exists = maintenance
        .query_opt("select 1 from pg_roles where rolname = $1", &[&p.app_role])
        .await
        .map_err(|e| Error::postgres("looking for the application role", e))?
        .is_some();
    let role = quote_ident(&p.app_role);
    let password = match (&req.password, exists) {
        (Some(pw), _) => pw.clone(),
        (None, true) => return Ok(()),
        (None, false) => {
            let pw = Password::new(random_hex(24)?);
            report.password_file = Some(write_secret(&req.secrets_dir, &p.app_role, &pw)?);
            pw
        }
    };
    let verb = if exists { "alter" } else { "create" };
    let login = if exists { "" } else { " login" };
    maintenance
        .batch_execute(&format!(
            "{verb} role {role}{login} password {}",
            quote_literal(&password.scram_verifier())
        ))
        .await
        .map_err(|e| Error::postgres(format!("{verb} role {}", p.app_role), e))?;
    report.role_created = !exists;
    report.password_set = req.password.is_some();
    Ok(())
}

async fn extension_present(client: &Client, ext: &str) -> Result<bool> {
    Ok(client
        .query_opt("select 1 from pg_extension where extname = $1", &[&ext])
        .await
        .map_err(|e| Error::postgres("looking for extensions", e))?
        .is_some())
}

/// The statements that create the extensions and schemas and give the
/// application role its privileges (all idempotent).
fn grant_sql(p: &ProvisionPlan) -> Vec<String> {
    let role = quote_ident(&p.app_role);
    let db = quote_ident(&p.database);
    let mut sql = vec![format!("grant connect on database {db} to {role}")];
    let in_extensions = p.extensions.iter().any(|e| e.schema == "extensions");
    let schemas: std::collections::BTreeSet<&str> = p
        .extensions
        .iter()
        .map(|e| e.schema.as_str())
        .filter(|s| *s != "public" && *s != "pg_catalog")
        .collect();
    for s in &schemas {
        sql.push(format!("create schema if not exists {}", quote_ident(s)));
        sql.push(format!(
            "grant usage on schema {} to {role}",
            quote_ident(s)
        ));
    }
    if in_extensions {
        sql.push(format!(
            "alter database {db} set search_path to \"$user\", public, extensions"
        ));
    }
    for ext in &p.extensions {
        sql.push(format!(
            "create extension if not exists {} with schema {}",
            quote_ident(&ext.name),
            quote_ident(&ext.schema)
        ));
    }
    for s in &p.schemas {
        let s = quote_ident(s);
        sql.extend([
            format!("create schema if not exists {s}"),
            format!("grant usage on schema {s} to {role}"),
            format!("grant select, insert, update, delete on all tables in schema {s} to {role}"),
            format!("grant usage, select on all sequences in schema {s} to {role}"),
            format!("alter default privileges in schema {s} grant select, insert, update, delete on tables to {role}"),
            format!("alter default privileges in schema {s} grant usage, select on sequences to {role}"),
        ]);
    }
    sql
}

/// The project's own roles, created NOLOGIN where missing (a password
/// cannot be read from Supabase: those that log in are told in the plan),
/// with their memberships (after the shim's roles exist).
async fn project_roles_sql(
    client: &Client,
    p: &ProvisionPlan,
    report: &mut ProvisionReport,
) -> Result<Vec<String>> {
    let mut sql = Vec::new();
    for r in &p.project_roles {
        let exists = client
            .query_opt("select 1 from pg_roles where rolname = $1", &[&r.name])
            .await
            .map_err(|e| Error::postgres("looking for the project's roles", e))?
            .is_some();
        if !exists {
            sql.push(format!("create role {} nologin", quote_ident(&r.name)));
            report.project_roles_created.push(r.name.clone());
        }
    }
    for r in &p.project_roles {
        for g in &r.member_of {
            sql.push(format!(
                "grant {} to {}",
                quote_ident(g),
                quote_ident(&r.name)
            ));
        }
    }
    Ok(sql)
}

/// The RLS shim's NOLOGIN roles, granted to the application role.
async fn shim_sql(
    client: &Client,
    p: &ProvisionPlan,
    report: &mut ProvisionReport,
) -> Result<Vec<String>> {
    let role = quote_ident(&p.app_role);
    let mut sql = Vec::new();
    for r in API_ROLES {
        let exists = client
            .query_opt("select 1 from pg_roles where rolname = $1", &[r])
            .await
            .map_err(|e| Error::postgres("looking for API roles", e))?
            .is_some();
        if !exists {
            sql.push(format!("create role {} nologin", quote_ident(r)));
            report.shim_roles_created.push(r.to_string());
        }
        sql.push(format!("grant {} to {role}", quote_ident(r)));
    }
    if p.extensions.iter().any(|e| e.schema == "extensions") {
        sql.push("grant usage on schema extensions to anon, authenticated, service_role".into());
    }
    let can_bypass: bool = client
        .query_one(
            "select rolbypassrls or rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the master role", e))?
        .get(0);
    if !can_bypass {
        report.warnings.push(
            "service_role was created without BYPASSRLS (only a superuser may grant it on PostgreSQL 15): it sees rows only through policies".into(),
        );
    }
    Ok(sql)
}

/// The master made able to switch to the API roles (without inheriting
/// their privileges, where the server lets that be said), so `verify --app`
/// reads each table as anon, authenticated and service_role do. A master
/// that may not is a warning: verify then reports it cannot act as them.
async fn master_may_act_as_api_roles(client: &Client, report: &mut ProvisionReport) -> Result<()> {
    let version: i32 = client
        .query_one("select current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| Error::postgres("reading the server's version", e))?
        .get(0);
    let (privilege, options) = if version >= 160_000 {
        ("SET", " with inherit false, set true")
    } else {
        ("MEMBER", "")
    };
    for r in API_ROLES {
        let can: bool = client
            .query_one("select pg_has_role(current_user, $1, $2)", &[r, &privilege])
            .await
            .map_err(|e| Error::postgres(format!("reading the master's membership in {r}"), e))?
            .get(0);
        if can {
            continue;
        }
        let grant = format!("grant {} to current_user{options}", quote_ident(r));
        if let Err(e) = client.batch_execute(&grant).await {
            let why = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            report.warnings.push(format!(
                "the master may not act as {r} ({why}): `verify --app` cannot compare what {r} sees"
            ));
        }
    }
    Ok(())
}

/// Writes a generated password to `<dir>/<role>.password`, owner-only.
fn write_secret(dir: &Path, role: &str, password: &Password) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
    let path = dir.join(format!("{role}.password"));
    let tmp = dir.join(format!(".{role}.password.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        writeln!(f, "{}", password.expose())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    }
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}
