//! Supabase Auth's tables beyond `auth.users` ([`crate::supabase::AUTH_TABLES`]):
//! their columns, keys and row level security, and the `auth` schema's
//! enum types their columns use. Read from the catalog; nothing else.

use tokio_postgres::Client;

use super::dump::AuthTable;
use crate::error::{Error, Result};

fn failed(e: tokio_postgres::Error) -> Error {
    Error::postgres("reading Supabase Auth's tables", e)
}

/// Those of [`crate::supabase::AUTH_TABLES`] the source has.
pub async fn tables(client: &Client) -> Result<Vec<AuthTable>> {
    let mut out = Vec::new();
    for (name, _, _) in crate::supabase::AUTH_TABLES {
        let qualified = format!("auth.{name}");
        let Some(columns) = super::table_columns(client, &qualified).await? else {
            continue;
        };
        let keys = client
            .query(
                "select conname::text, pg_get_constraintdef(oid) from pg_constraint \
                 where conrelid = to_regclass($1) and contype in ('p', 'u') order by contype, conname",
                &[&qualified],
            )
            .await
            .map_err(failed)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let rls: bool = client
            .query_one(
                "select relrowsecurity from pg_class where oid = to_regclass($1)",
                &[&qualified],
            )
            .await
            .map_err(failed)?
            .get(0);
        out.push(AuthTable {
            name: name.to_string(),
            columns,
            keys,
            rls,
        });
    }
    Ok(out)
}

/// The `auth` schema's enum types: (qualified name, labels in order).
pub async fn enums(client: &Client) -> Result<Vec<(String, Vec<String>)>> {
    Ok(client
        .query(
            "select 'auth.' || t.typname, array_agg(e.enumlabel::text order by e.enumsortorder) \
             from pg_type t join pg_enum e on e.enumtypid = t.oid \
             where t.typnamespace = to_regnamespace('auth') group by t.typname order by 1",
            &[],
        )
        .await
        .map_err(failed)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
