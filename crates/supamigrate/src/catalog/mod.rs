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
