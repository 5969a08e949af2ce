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
pub const PINNED_SESSION: &str = "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; \
    set intervalstyle = 'postgres'; set extra_float_digits = 3; set bytea_output = 'hex';";

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

/// The fingerprint of one table (over all its columns). Call [`pin_session`] first.
pub async fn table(client: &Client, table: &TableName) -> Result<TableFingerprint> {
    let sql = format!(
        "select count(*), {} from (select md5(t::text) as h from {} t offset 0) s",
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
