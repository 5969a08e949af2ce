//! Makes a cluster look like a hosted Supabase project's database.
//!
//! The SQL lives in `sql/supabase/*.sql`, one file per area, written from the
//! facts in `shared/research/supabase-internals.md`.

use supamigrate::connect::{ConnInfo, Password};
use supamigrate::error::Result;

use super::{quote_literal, run_sql};

/// Per-database set-up, in order: (file name, SQL).
pub const DATABASE_SQL: &[(&str, &str)] = &[
    (
        "02_schemas.sql",
        include_str!("sql/supabase/02_schemas.sql"),
    ),
    ("03_auth.sql", include_str!("sql/supabase/03_auth.sql")),
    (
        "04_storage.sql",
        include_str!("sql/supabase/04_storage.sql"),
    ),
    (
        "05_platform.sql",
        include_str!("sql/supabase/05_platform.sql"),
    ),
];

/// `postgresql.conf` settings of a Supabase project that matter to a migration.
pub fn server_settings() -> Vec<(String, String)> {
    [
        ("wal_level", "logical"),
        ("max_wal_senders", "10"),
        ("max_replication_slots", "5"),
        ("max_slot_wal_keep_size", "4096"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Creates the cluster-wide roles; `superuser` is `supabase_admin` on any database.
/// `postgres_password` becomes the password of the `postgres` login role.
pub async fn install_roles(superuser: &ConnInfo, postgres_password: &Password) -> Result<()> {
    let create_postgres = format!(
        "create role postgres login nosuperuser createdb createrole replication bypassrls password {};",
        quote_literal(&postgres_password.scram_verifier())
    );
    run_sql(superuser, &create_postgres, "creating the postgres role").await?;
    run_sql(
        superuser,
        include_str!("sql/supabase/01_roles.sql"),
        "installing Supabase roles (01_roles.sql)",
    )
    .await
}

/// Installs the schemas, tables, functions, publication and event triggers of a
/// Supabase project database into the database `superuser` connects to.
pub async fn install_database(superuser: &ConnInfo) -> Result<()> {
    for (name, sql) in DATABASE_SQL {
        run_sql(
            superuser,
            sql,
            &format!("installing the Supabase-like source ({name})"),
        )
        .await?;
    }
    Ok(())
}
