//! Loads an application into a source the way `supabase db push` does: as
//! the project's `postgres` role, one transaction per migration file, each
//! recorded in `supabase_migrations.schema_migrations`.

use supamigrate::connect::{connect, ConnInfo};
use supamigrate::error::{Error, Result};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The timestamp prefix of the file name (`20240115093000`).
    pub version: &'static str,
    /// The rest of the file name (`initial_schema`).
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// The CLI's history table, created as it creates it.
const HISTORY: &str = "
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
";

/// Applies `files` in order as the role `as_postgres` logs in as, skipping
/// versions already recorded.
pub async fn push(as_postgres: &ConnInfo, files: &[Migration]) -> Result<()> {
    let mut client = connect(as_postgres).await?;
    client
        .batch_execute(HISTORY)
        .await
        .map_err(|e| Error::postgres("creating supabase_migrations.schema_migrations", e))?;
    for m in files {
        let done: bool = client
            .query_one(
                "select exists (select 1 from supabase_migrations.schema_migrations where version = $1)",
                &[&m.version],
            )
            .await
            .map_err(|e| Error::postgres("reading the migration history", e))?
            .get(0);
        if done {
            continue;
        }
        let what = format!("migration {}_{}.sql", m.version, m.name);
        let tx = client
            .transaction()
            .await
            .map_err(|e| Error::postgres(format!("{what}: begin"), e))?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| Error::postgres(what.clone(), e))?;
        tx.execute(
            "insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, array[$3])",
            &[&m.version, &m.name, &m.sql],
        )
        .await
        .map_err(|e| Error::postgres(format!("{what}: recording it"), e))?;
        tx.commit()
            .await
            .map_err(|e| Error::postgres(format!("{what}: commit"), e))?;
    }
    Ok(())
}
