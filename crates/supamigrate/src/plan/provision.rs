//! What provisioning creates on the target: the database, its extensions,
//! the application role and its privileges, the RLS shim's roles.

use serde::{Deserialize, Serialize};

/// The provisioning part of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionPlan {
    /// The target database.
    pub database: String,
    /// It did not exist when the plan was made.
    pub create_database: bool,
    /// Extensions to create, each in its schema.
    pub extensions: Vec<super::convert::PlannedExtension>,
    /// pg_cron jobs to schedule.
    pub cron: Option<super::convert::CronPlan>,
    /// The application role.
    pub app_role: String,
    /// Application schemas to create and grant on.
    pub schemas: Vec<String>,
    /// NOLOGIN anon/authenticated/service_role, granted to the application
    /// role, for the RLS shim.
    pub shim_roles: bool,
    /// The project's own roles, created NOLOGIN with their memberships.
    #[serde(default)]
    pub project_roles: Vec<crate::catalog::data::ProjectRole>,
    /// The source database's settings provision sets on the target
    /// database (values with secrets redacted; restored when set).
    #[serde(default)]
    pub database_settings: Vec<crate::catalog::data::DatabaseSetting>,
}

/// The source database's settings the target database takes: the
/// built-in parameters (the platform's and custom ones left out).
pub fn database_settings(
    all: &[crate::catalog::data::DatabaseSetting],
) -> Vec<crate::catalog::data::DatabaseSetting> {
    all.iter()
        .filter(|s| {
            super::convert::platform_setting(&s.name).is_none()
                && !super::convert::custom_setting(&s.name)
        })
        .cloned()
        .collect()
}

/// Checks an application role name: plain lowercase, not a platform's.
pub fn validate_role_name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok
        || crate::supabase::is_supabase_role(name)
        || name.starts_with("pg_")
        || name.starts_with("rds")
    {
        return Err(crate::Error::invalid_input(format!("{name:?} cannot be the application role"))
            .with_hint("use lowercase letters, digits and _ (e.g. app_user), not a Supabase, pg_ or rds role name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_checked() {
        for good in ["app_user", "web", "a1"] {
            assert!(validate_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "App",
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
