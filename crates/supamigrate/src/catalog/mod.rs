//! Introspection of a PostgreSQL catalog. Queries live in `sql/*.sql`.

use tokio_postgres::Client;

use crate::error::{Error, Result};

const LIST_TABLES: &str = include_str!("sql/list_tables.sql");
const LIST_FOREIGN_KEYS: &str = include_str!("sql/list_foreign_keys.sql");

/// A foreign key constraint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing table.
    pub table: TableName,
    /// Referencing columns, in key order.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: TableName,
    /// Referenced columns, in key order.
    pub ref_columns: Vec<String>,
    /// False for constraints added NOT VALID and not validated since.
    pub validated: bool,
}

/// The foreign keys of tables in `schemas`.
pub async fn list_foreign_keys(client: &Client, schemas: &[&str]) -> Result<Vec<ForeignKey>> {
    let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(LIST_FOREIGN_KEYS, &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing foreign keys", e))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            table: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            ref_table: TableName::new(r.get::<_, String>(3), r.get::<_, String>(4)),
            columns: r.get(5),
            ref_columns: r.get(6),
            validated: r.get(7),
        })
        .collect())
}

/// A schema-qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TableName {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
}

impl TableName {
    /// A name from its parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `"schema"."name"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does, always.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `s` as an SQL string literal (standard_conforming_strings, the default
/// since PostgreSQL 9.1).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The primary key columns of `table`, in key order (empty when none).
pub async fn primary_key(client: &Client, table: &TableName) -> Result<Vec<String>> {
    Ok(client
        .query(
            "select a.attname::text from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = $1::text::regclass and i.indisprimary \
             order by array_position(i.indkey::int2[], a.attnum)",
            &[&format!(
                "{}.{}",
                quote_ident(&table.schema),
                quote_ident(&table.name)
            )],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the primary key of {table}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The tables (not partitions) of `schemas`, sorted.
pub async fn list_tables(client: &Client, schemas: &[&str]) -> Result<Vec<TableName>> {
    let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(LIST_TABLES, &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Runs a catalog query whose first column is text; returns that column.
async fn strings(client: &Client, sql: &str, what: &str) -> Result<Vec<String>> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Error::postgres(format!("reading {what} from the catalog"), e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Every schema except system schemas and schemas owned by extensions.
pub async fn list_schemas(client: &Client) -> Result<Vec<String>> {
    strings(client, include_str!("sql/list_schemas.sql"), "schemas").await
}

/// The columns of `auth.users`, or `None` when the source has no `auth.users`.
pub async fn auth_users_columns(client: &Client) -> Result<Option<Vec<String>>> {
    let cols = strings(
        client,
        include_str!("sql/auth_users_columns.sql"),
        "auth.users columns",
    )
    .await?;
    Ok((!cols.is_empty()).then_some(cols))
}

/// `CREATE TRIGGER` statements of the user triggers on `auth.users`.
pub async fn auth_users_triggers(client: &Client) -> Result<Vec<String>> {
    strings(
        client,
        include_str!("sql/auth_users_triggers.sql"),
        "triggers on auth.users",
    )
    .await
}

/// Installed extensions: (name, schema).
pub async fn list_extensions(client: &Client) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(include_str!("sql/list_extensions.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading extensions from the catalog", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Objects depending on extensions: (extension, object).
pub async fn extension_dependents(client: &Client) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(include_str!("sql/extension_dependents.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading extension dependents from the catalog", e))?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get(0), r.get::<_, Option<String>>(1)?)))
        .collect())
}

/// Publications: (name, published tables).
pub async fn list_publications(client: &Client) -> Result<Vec<(String, Vec<String>)>> {
    let rows = client
        .query(include_str!("sql/list_publications.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading publications from the catalog", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Event trigger names.
pub async fn list_event_triggers(client: &Client) -> Result<Vec<String>> {
    strings(
        client,
        include_str!("sql/list_event_triggers.sql"),
        "event triggers",
    )
    .await
}

/// Names of RLS policies on Storage tables.
pub async fn storage_policies(client: &Client) -> Result<Vec<String>> {
    strings(
        client,
        include_str!("sql/storage_policies.sql"),
        "storage policies",
    )
    .await
}

/// Storage buckets: (id, name, public, file_size_limit, allowed_mime_types).
pub async fn storage_buckets(
    client: &Client,
) -> Result<Vec<(String, String, bool, Option<i64>, Vec<String>)>> {
    let exists: bool = client
        .query_one("select to_regclass('storage.buckets') is not null", &[])
        .await
        .map_err(|e| Error::postgres("looking for storage.buckets", e))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(include_str!("sql/storage_buckets.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading storage buckets", e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

/// The server's major version (e.g. 15).
pub async fn server_major(client: &Client) -> Result<u32> {
    let v: String = client
        .query_one("select current_setting('server_version_num')", &[])
        .await
        .map_err(|e| Error::postgres("reading the server version", e))?
        .get(0);
    Ok(v.parse::<u32>().unwrap_or(0) / 10_000)
}

/// Extensions the connected role can create: on RDS, those in its allow-list
/// `rds.extensions`; elsewhere all of `pg_available_extensions` for a superuser,
/// only trusted ones for anyone else.
pub async fn available_extensions(client: &Client) -> Result<std::collections::BTreeSet<String>> {
    let rows = client
        .query(include_str!("sql/available_extensions.sql"), &[])
        .await
        .map_err(|e| Error::postgres("reading available extensions", e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        let cases = [
            ("users", "\"users\""),
            ("Mixed Case", "\"Mixed Case\""),
            ("we\"ird", "\"we\"\"ird\""),
            ("select", "\"select\""),
        ];
        for (input, want) in cases {
            assert_eq!(quote_ident(input), want);
        }
        assert_eq!(
            TableName::new("public", "Trips").quoted(),
            "\"public\".\"Trips\""
        );
    }
}
