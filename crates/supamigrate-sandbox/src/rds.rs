//! Makes a cluster behave like RDS for PostgreSQL towards its master user: the
//! master role is not superuser, so what RDS refuses, this refuses.

use supamigrate::connect::{ConnInfo, Password};
use supamigrate::error::Result;

use super::{quote_literal, run_sql};

/// `postgresql.conf` settings: RDS defaults that matter here.
pub fn server_settings() -> Vec<(String, String)> {
    [("wal_level", "replica"), ("max_connections", "100")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Creates the master role `postgres` with `master_password` and the `rds_*` roles.
/// `superuser` is the bootstrap superuser on the `postgres` database.
pub async fn install(superuser: &ConnInfo, master_password: &Password) -> Result<()> {
    let create_master = format!(
        "create role postgres login nosuperuser inherit createdb createrole noreplication password {};",
        quote_literal(&master_password.scram_verifier())
    );
    run_sql(superuser, &create_master, "creating the master role").await?;
    run_sql(
        superuser,
        include_str!("sql/rds.sql"),
        "installing the RDS-like target (rds.sql)",
    )
    .await
}
