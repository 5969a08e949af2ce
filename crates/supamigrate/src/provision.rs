//! Provisioning the target (seed Phase 2.2 and the grants of 3.1): the database,
//! its extensions, the application role and its privileges. Idempotent: a
//! re-run creates what is missing and changes nothing else.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::Serialize;

use crate::catalog::quote_ident;
use crate::connect::{connect, ConnInfo, Password};
use crate::error::{Error, Result};
use crate::schema::API_ROLES;

/// What to provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The application role (seed: `tms_app`).
    pub app_role: String,
    /// Its password; generated (and written to `secrets_dir`) when `None`.
    pub app_password: Option<Password>,
    /// Where a generated password is written, owner-only.
    pub secrets_dir: PathBuf,
    /// Extensions to create (from the conversion).
    pub extensions: Vec<String>,
    /// Application schemas to create and grant on.
    pub schemas: Vec<String>,
    /// Create NOLOGIN anon/authenticated/service_role for the RLS shim.
    pub shim_roles: bool,
}

impl ProvisionOptions {
    /// What a converted schema needs: its extensions, its schemas, and the
    /// shim roles when it keeps RLS. The password is generated unless set after.
    pub fn for_conversion(
        app_role: &str,
        secrets_dir: &std::path::Path,
        src: &crate::schema::SchemaSource,
        conv: &crate::schema::Conversion,
    ) -> ProvisionOptions {
        ProvisionOptions {
            app_role: app_role.to_string(),
            app_password: None,
            secrets_dir: secrets_dir.to_path_buf(),
            extensions: conv.extensions.clone(),
            schemas: src.schemas.clone(),
            shim_roles: conv.shim,
        }
    }
}

/// What provisioning did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProvisionReport {
    /// The database was created now.
    pub database_created: bool,
    /// Extensions created now.
    pub extensions_created: Vec<String>,
    /// The application role was created now.
    pub role_created: bool,
    /// Where the generated password was written (never the password itself).
    pub password_file: Option<PathBuf>,
    /// Shim roles created now.
    pub shim_roles_created: Vec<String>,
    /// Caveats to tell the user.
    pub warnings: Vec<String>,
}

/// Provisions `target` (its database is created through the server's
/// `postgres` database when missing).
pub async fn provision(target: &ConnInfo, opts: &ProvisionOptions) -> Result<ProvisionReport> {
    validate_role_name(&opts.app_role)?;
    let mut report = ProvisionReport::default();
    let db = &target.dbname;

    let maintenance = connect(&target.with_dbname("postgres")).await?;
    let exists = maintenance
        .query_opt("select 1 from pg_database where datname = $1", &[db])
        .await
        .map_err(|e| Error::postgres("looking for the target database", e))?
        .is_some();
    if !exists {
        maintenance
            .batch_execute(&format!("create database {}", quote_ident(db)))
            .await
            .map_err(|e| Error::postgres(format!("creating database {db}"), e))?;
        report.database_created = true;
        tracing::info!(database = %db, "database created");
    }

    let role_exists = maintenance
        .query_opt(
            "select 1 from pg_roles where rolname = $1",
            &[&opts.app_role],
        )
        .await
        .map_err(|e| Error::postgres("looking for the application role", e))?
        .is_some();
    let role = quote_ident(&opts.app_role);
    if !role_exists {
        let (password, generated) = match &opts.app_password {
            Some(p) => (p.clone(), false),
            None => (
                Password::new(crate::sandbox::cluster::random_hex(24)?),
                true,
            ),
        };
        if generated {
            report.password_file = Some(write_secret(opts, &password)?);
        }
        maintenance
            .batch_execute(&format!(
                "create role {role} login password {}",
                crate::sandbox::quote_literal(&password.scram_verifier())
            ))
            .await
            .map_err(|e| Error::postgres(format!("creating role {}", opts.app_role), e))?;
        report.role_created = true;
    } else if let Some(p) = &opts.app_password {
        maintenance
            .batch_execute(&format!(
                "alter role {role} password {}",
                crate::sandbox::quote_literal(&p.scram_verifier())
            ))
            .await
            .map_err(|e| {
                Error::postgres(format!("setting the password of {}", opts.app_role), e)
            })?;
    }

    let client = connect(target).await?;
    let mut sql = vec![format!(
        "grant connect on database {} to {role}",
        quote_ident(db)
    )];
    if !opts.extensions.is_empty() {
        sql.push("create schema if not exists extensions".into());
        sql.push(format!("grant usage on schema extensions to {role}"));
        sql.push(format!(
            "alter database {} set search_path to \"$user\", public, extensions",
            quote_ident(db)
        ));
    }
    for ext in &opts.extensions {
        let present = client
            .query_opt("select 1 from pg_extension where extname = $1", &[ext])
            .await
            .map_err(|e| Error::postgres("looking for extensions", e))?
            .is_some();
        if !present {
            sql.push(format!(
                "create extension if not exists {} with schema extensions",
                quote_ident(ext)
            ));
            report.extensions_created.push(ext.clone());
        }
    }
    for s in &opts.schemas {
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
    if opts.shim_roles {
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
        if !opts.extensions.is_empty() {
            sql.push(
                "grant usage on schema extensions to anon, authenticated, service_role".into(),
            );
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
    }
    for st in &sql {
        client
            .batch_execute(st)
            .await
            .map_err(|e| Error::postgres(format!("provisioning ({st})"), e))?;
    }
    Ok(report)
}

fn validate_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok
        || crate::schema::is_supabase_role(name)
        || name.starts_with("pg_")
        || name.starts_with("rds")
    {
        return Err(Error::invalid_input(format!("{name:?} cannot be the application role"))
            .with_hint("use lowercase letters, digits and _ (e.g. tms_app), not a Supabase, pg_ or rds role name"));
    }
    Ok(())
}

fn write_secret(opts: &ProvisionOptions, password: &Password) -> Result<PathBuf> {
    let dir = &opts.secrets_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
    let path = dir.join(format!("{}.password", opts.app_role));
    let tmp = dir.join(format!(".{}.password.tmp", opts.app_role));
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
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        f.sync_all()
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    }
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_checked() {
        for good in ["tms_app", "app_user", "a1"] {
            assert!(validate_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Tms",
            "1app",
            "anon",
            "supabase_x",
            "pg_app",
            "rds_superuser",
            "a-b",
            "x;drop",
        ] {
            let e = validate_role_name(bad).unwrap_err();
            assert!(e.is_bad_input() && e.hint().is_some(), "{bad}");
        }
    }
}
