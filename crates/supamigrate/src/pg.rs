//! PostgreSQL primitives every phase shares: names and quoting, snapshots,
//! sequence state, key expressions. SQL is rendered here, at the edge, from
//! typed values.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// Session settings that fix the text form of values: what one server
/// writes under them, another major reads back to the same value (floats
/// in full precision, ISO dates, `postgres` intervals, hex bytea, UTC). The
/// copy's sessions on both sides and verify's run under them.
pub const TEXT_FORMS: &str = "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; \
    set intervalstyle = 'postgres'; set extra_float_digits = 3; set bytea_output = 'hex';";

/// A schema-qualified table (or sequence, view…) name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// Parses `schema.name` (or `name`, in `public`), as typed by a user.
    pub fn parse(s: &str) -> Option<TableName> {
        match s.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
                Some(TableName::new(schema, name))
            }
            None if !s.is_empty() => Some(TableName::new("public", s)),
            _ => None,
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

/// Quoted, comma-separated column names.
pub fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row's key as one text value: `alias."a"::text || ',' || alias."b"::text`.
pub fn key_text_expr<S: AsRef<str>>(alias: &str, columns: &[S]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{}::text", quote_ident(c.as_ref())))
        .collect::<Vec<_>>()
        .join(" || ',' || ")
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

/// The primary key columns of `table`, in key order (empty when none).
pub async fn primary_key(client: &Client, table: &TableName) -> Result<Vec<String>> {
    Ok(client
        .query(
            "select a.attname::text from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = $1::text::regclass and i.indisprimary \
             order by array_position(i.indkey::int2[], a.attnum)",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the primary key of {table}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// How a snapshot session reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads (verify, the copy's source side).
    ReadOnly,
    /// May write.
    ReadWrite,
}

fn begin_sql(access: Access) -> &'static str {
    match access {
        Access::ReadOnly => "begin transaction isolation level repeatable read read only",
        Access::ReadWrite => "begin transaction isolation level repeatable read",
    }
}

/// Opens a repeatable-read transaction on `client` and exports its
/// snapshot; other sessions [`import_snapshot`] it to read the same instant.
/// The snapshot lives as long as this transaction.
pub async fn export_snapshot(client: &Client, access: Access) -> Result<String> {
    client
        .batch_execute(begin_sql(access))
        .await
        .map_err(|e| Error::postgres("opening a snapshot transaction", e))?;
    let row = client
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::postgres("exporting the snapshot", e))?;
    Ok(row.get(0))
}

/// Opens a repeatable-read transaction on `client` reading `snapshot`.
pub async fn import_snapshot(client: &Client, snapshot: &str, access: Access) -> Result<()> {
    client
        .batch_execute(&import_snapshot_sql(snapshot, access))
        .await
        .map_err(|e| Error::postgres("importing the snapshot", e).with_hint(SNAPSHOT_GONE))
}

/// What to do when a snapshot cannot be imported.
pub const SNAPSHOT_GONE: &str = "the session that exported it ended early; run the command again";

/// The statements that open a transaction reading `snapshot`.
pub fn import_snapshot_sql(snapshot: &str, access: Access) -> String {
    format!(
        "{}; set transaction snapshot {}",
        begin_sql(access),
        quote_literal(snapshot)
    )
}

/// A sequence's state: what `setval(seq, last_value, is_called)` restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceState {
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`: whether `last_value` was handed out already.
    pub is_called: bool,
}

impl SequenceState {
    /// The value `nextval` returns next.
    pub fn next(&self, increment: i64) -> i64 {
        if self.is_called {
            self.last_value.saturating_add(increment)
        } else {
            self.last_value
        }
    }
}

/// Reads sequence `name`'s state.
pub async fn read_sequence(client: &Client, name: &TableName) -> Result<SequenceState> {
    let row = client
        .query_one(
            &crate::sql::own(&format!(
                "select last_value, is_called from {}",
                name.quoted()
            )),
            &[],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading sequence {name}"), e))?;
    Ok(SequenceState {
        last_value: row.get(0),
        is_called: row.get(1),
    })
}

/// Sets sequence `name` to `state`.
pub async fn set_sequence(client: &Client, name: &TableName, state: SequenceState) -> Result<()> {
    client
        .execute(
            "select setval($1::text::regclass, $2, $3)",
            &[&name.quoted(), &state.last_value, &state.is_called],
        )
        .await
        .map_err(|e| Error::postgres(format!("setting sequence {name}"), e))?;
    Ok(())
}

/// Runs a query whose first column is text; returns that column.
pub async fn strings(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: &str,
) -> Result<Vec<String>> {
    let rows = client
        .query(sql, params)
        .await
        .map_err(|e| Error::postgres(format!("reading {what}"), e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
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
            TableName::new("public", "Orders").quoted(),
            "\"public\".\"Orders\""
        );
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(
            key_text_expr("t", &["a", "B"]),
            "t.\"a\"::text || ',' || t.\"B\"::text"
        );
        assert_eq!(column_list(&["a", "b c"]), "\"a\", \"b c\"");
    }

    #[test]
    fn table_names_parse_as_typed() {
        let cases = [
            ("public.orders", Some(("public", "orders"))),
            ("orders", Some(("public", "orders"))),
            ("app.items", Some(("app", "items"))),
            ("", None),
            (".x", None),
            ("x.", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                TableName::parse(input),
                want.map(|(s, n)| TableName::new(s, n)),
                "{input}"
            );
        }
    }
}
