//! Content fingerprints of tables, computed server-side.
//!
//! A fingerprint is the row count and the sum, over rows, of the first 64 bits
//! of the row text's MD5: independent of row order, sensitive to duplicates,
//! and streamed by the server without sorting. The session is pinned so the
//! text form of every value is the same on any server (time zone, date and
//! interval styles, float digits, bytea output).

use tokio_postgres::Client;

use crate::catalog::list_tables;
use crate::error::{Error, Result};
use crate::pg::TableName;

/// Settings that make the text form of values canonical.
pub use crate::pg::TEXT_FORMS as PINNED_SESSION;

/// One table's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableFingerprint {
    /// The table.
    pub table: TableName,
    /// Row count.
    pub rows: i64,
    /// Order-independent digest of the rows' text.
    pub digest: String,
}

/// Pins the session settings fingerprints depend on.
pub async fn pin_session(client: &Client) -> Result<()> {
    client
        .batch_execute(PINNED_SESSION)
        .await
        .map_err(|e| Error::postgres("pinning session settings", e))
}

/// The fingerprint of one table: over all its columns but stored generated
/// ones (a restore or a copy computes those again, from functions that may
/// have changed since the rows were written). Call [`pin_session`] first.
pub async fn table(client: &Client, table: &TableName) -> Result<TableFingerprint> {
    let generated: Vec<String> = client
        .query(
            "select attname::text from pg_attribute where attrelid = $1::text::regclass and attgenerated <> '' and not attisdropped",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading {table}'s generated columns"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let row_expr = if generated.is_empty() {
        "t::text".to_string()
    } else {
        let cols: Vec<String> = client
            .query(
                "select quote_ident(attname) from pg_attribute where attrelid = $1::text::regclass and attnum > 0 and attgenerated = '' and not attisdropped order by attnum",
                &[&table.quoted()],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading {table}'s columns"), e))?
            .iter()
            .map(|r| format!("t.{}", r.get::<_, String>(0)))
            .collect();
        format!("row({})::text", cols.join(", "))
    };
    let sql = format!(
        "{} select count(*), {} from (select md5({row_expr}) as h from {} t offset 0) s",
        crate::sql::OWN,
        super::content::SUMS,
        table.quoted()
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| Error::postgres(format!("fingerprinting {table}"), e))?;
    Ok(TableFingerprint {
        table: table.clone(),
        rows: row.get(0),
        digest: row.get(1),
    })
}

/// Fingerprints of every table in `schemas`, sorted by name.
pub async fn schemas(client: &Client, schemas: &[&str]) -> Result<Vec<TableFingerprint>> {
    pin_session(client).await?;
    let mut out = Vec::new();
    for t in list_tables(client, schemas).await? {
        out.push(table(client, &t).await?);
    }
    Ok(out)
}
