//! What a rollback would undo: per table, the rows written since the backup
//! (inserted since: discarded; deleted since: put back; changed since:
//! reverted). Tables whose fingerprint still equals the manifest's are not
//! looked at; the others are compared row by row, by primary key, against
//! the backup restored into a throwaway local cluster. Reads only, on the
//! source.

use std::cmp::Ordering;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_postgres::Client;

use super::Manifest;
use crate::connect::connect;
use crate::error::{Error, Result};
use crate::pg::{quote_ident, TableName};

/// One table's rows since the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowsSince {
    /// The table.
    pub table: TableName,
    /// Rows there now and not in the backup: the rollback discards them.
    pub inserted: i64,
    /// Rows in the backup and not there now: the rollback puts them back.
    pub deleted: i64,
    /// Rows in both with other values: the rollback reverts them (`None`:
    /// the table has no primary key, only the counts are compared).
    pub changed: Option<i64>,
    /// Why the rows could not be compared, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// The rows written since the backup in `dir`, for every table that differs
/// from its manifest entry.
pub async fn rows_since(
    dir: &Path,
    manifest: &Manifest,
    source: &Client,
) -> Result<Vec<RowsSince>> {
    let differing: Vec<TableName> = super::restore::check_tables(source, &manifest.tables)
        .await?
        .into_iter()
        .filter(|c| !c.matches && c.rows.is_some())
        .map(|c| c.table)
        .collect();
    if differing.is_empty() {
        return Ok(Vec::new());
    }
    let local = super::restore::LocalRestore::start(dir, manifest).await?;
    let backup = connect(&local.conninfo()).await?;
    let mut out = Vec::new();
    for t in &differing {
        out.push(compare_table(source, &backup, t).await?);
    }
    drop(backup);
    local.stop()?;
    Ok(out)
}

async fn count(c: &Client, t: &TableName) -> Result<i64> {
    c.query_one(
        &crate::sql::own(&format!("select count(*) from only {}", t.quoted())),
        &[],
    )
    .await
    .map(|row| row.get(0))
    .map_err(|e| Error::postgres(format!("counting {t}"), e))
}

/// Each row's key as text in byte order on both servers (collations may
/// differ), and its hash from its text form.
fn rows_by_key(t: &TableName, key: &[String]) -> String {
    let cols: Vec<String> = key
        .iter()
        .map(|k| format!("x.{}", quote_ident(k)))
        .collect();
    format!(
        "{own} select (row({k}))::text collate \"C\" as k, md5(x::text) from only {t} x order by 1",
        own = crate::sql::OWN,
        k = cols.join(", "),
        t = t.quoted()
    )
}

async fn compare_table(now: &Client, backup: &Client, t: &TableName) -> Result<RowsSince> {
    let mut r = RowsSince {
        table: t.clone(),
        inserted: 0,
        deleted: 0,
        changed: None,
        not_compared: None,
    };
    let exists: bool = backup
        .query_one("select to_regclass($1) is not null", &[&t.quoted()])
        .await
        .map_err(|e| Error::postgres("looking up a restored table", e))?
        .get(0);
    if !exists {
        r.not_compared = Some("the backup's table did not restore on the local cluster".into());
        return Ok(r);
    }
    let key = crate::pg::primary_key(now, t).await?;
    if key.is_empty() {
        let (n, b) = (count(now, t).await?, count(backup, t).await?);
        r.inserted = (n - b).max(0);
        r.deleted = (b - n).max(0);
        return Ok(r);
    }
    let sql = rows_by_key(t, &key);
    let params: [&str; 0] = [];
    let a = now
        .query_raw(&sql, params)
        .await
        .map_err(|e| Error::postgres(format!("reading {t}'s rows"), e))?;
    let b = backup
        .query_raw(&sql, params)
        .await
        .map_err(|e| Error::postgres(format!("reading the backup's {t}"), e))?;
    let mut a = std::pin::pin!(a.map_err(|e| Error::postgres("reading rows", e)));
    let mut b = std::pin::pin!(b.map_err(|e| Error::postgres("reading rows", e)));
    let mut changed = 0;
    let (mut x, mut y) = (a.next().await.transpose()?, b.next().await.transpose()?);
    loop {
        let order = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(q)) => p
                .get::<_, String>(0)
                .as_bytes()
                .cmp(q.get::<_, String>(0).as_bytes()),
        };
        match order {
            Ordering::Less => {
                r.inserted += 1;
                x = a.next().await.transpose()?;
            }
            Ordering::Greater => {
                r.deleted += 1;
                y = b.next().await.transpose()?;
            }
            Ordering::Equal => {
                let (p, q) = (x.as_ref(), y.as_ref());
                if p.map(|p| p.get::<_, String>(1)) != q.map(|q| q.get::<_, String>(1)) {
                    changed += 1;
                }
                x = a.next().await.transpose()?;
                y = b.next().await.transpose()?;
            }
        }
    }
    r.changed = Some(changed);
    Ok(r)
}
