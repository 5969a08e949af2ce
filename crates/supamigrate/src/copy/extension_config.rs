//! Kept extensions' configuration, as pg_dump carries it
//! (`pg_extension_config_dump`): the rows the project added to an
//! extension's configuration table (a custom `spatial_ref_sys` entry of
//! PostGIS), and each used configuration sequence's value. `CREATE
//! EXTENSION` on the target makes only the extension's own rows, so these
//! go before the table data (a geography column needs its SRID).
//!
//! Each table or sequence is carried in one target transaction with its
//! mark in `supamigrate.extension_config`: a kill leaves both or neither,
//! and a re-run skips what is marked. Rows the target already has (same
//! key) are kept as they are and counted. A table the target user may not
//! insert into (an extension's table belongs to `rdsadmin` on RDS) is taken
//! over first (`ALTER TABLE … OWNER TO CURRENT_USER`, with INSERT for itself; RDS lets its
//! master do); if the target refuses that too, the table is reported, not
//! marked, and verify counts its missing rows.

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Transaction};

use crate::catalog::ExtensionConfig;
use crate::error::{Error, Result};
use crate::pg::TableName;
use crate::plan::MigrationPlan;

/// What happened to one configuration table or sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCopied {
    /// The extension.
    pub extension: String,
    /// The table or sequence.
    pub relation: TableName,
    /// Rows inserted (a sequence: 1 when its value was set).
    pub rows_copied: u64,
    /// Rows the target already had under the same key, left as they were.
    pub rows_present: u64,
    /// The target user took the table over to insert into it.
    pub owner_taken: Option<String>,
    /// An earlier run carried it.
    pub earlier: bool,
    /// Why it was not carried (the target refused), with the fix.
    pub refused: Option<String>,
}

/// Carries every planned configuration table and sequence not carried yet.
/// `src` reads the copy's snapshot.
pub async fn copy(
    src: &Client,
    tgt: &mut Client,
    plan: &MigrationPlan,
) -> Result<Vec<ConfigCopied>> {
    let mut out = Vec::new();
    for c in &plan.conversion.extension_config {
        let mut done = ConfigCopied {
            extension: c.extension.clone(),
            relation: c.relation.clone(),
            rows_copied: 0,
            rows_present: 0,
            owner_taken: None,
            earlier: false,
            refused: None,
        };
        let what = |e| Error::postgres(format!("carrying configuration {}", c.relation), e);
        let key = c.relation.quoted();
        if let Some(r) = tgt
            .query_opt(
                "select rows_copied, rows_present from supamigrate.extension_config where relation = $1",
                &[&key],
            )
            .await
            .map_err(what)?
        {
            done.rows_copied = r.get::<_, i64>(0) as u64;
            done.rows_present = r.get::<_, i64>(1) as u64;
            done.earlier = true;
            out.push(done);
            continue;
        }
        let tx = tgt.transaction().await.map_err(what)?;
        if c.sequence {
            sequence(src, &tx, c).await?;
            done.rows_copied = 1;
        } else {
            match writable(&tx, c).await? {
                Ok(taken) => done.owner_taken = taken,
                Err(why) => {
                    tracing::warn!(relation = %c.relation, "{why}");
                    done.refused = Some(why);
                    out.push(done);
                    continue;
                }
            }
            (done.rows_copied, done.rows_present) = rows(src, &tx, c).await?;
        }
        tx.execute(
            "insert into supamigrate.extension_config (relation, rows_copied, rows_present) values ($1, $2, $3)",
            &[&key, &(done.rows_copied as i64), &(done.rows_present as i64)],
        )
        .await
        .map_err(what)?;
        crate::failpoint::hit(crate::failpoint::EXTENSION_CONFIG_BEFORE_COMMIT);
        tx.commit().await.map_err(what)?;
        tracing::info!(relation = %c.relation, extension = %c.extension, rows = done.rows_copied,
            already = done.rows_present, "extension configuration copied");
        out.push(done);
    }
    Ok(out)
}

/// Sets a configuration sequence to the source's state.
async fn sequence(src: &Client, tx: &Transaction<'_>, c: &ExtensionConfig) -> Result<()> {
    let state = crate::pg::read_sequence(src, &c.relation).await?;
    tx.execute(
        "select setval($1::text::regclass, $2, $3)",
        &[&c.relation.quoted(), &state.last_value, &state.is_called],
    )
    .await
    .map_err(|e| Error::postgres(format!("setting configuration sequence {}", c.relation), e))?;
    Ok(())
}

/// Whether the target user may insert into the table, taking it over when
/// it may not (`Ok(Some(previous owner))`); `Err(why)` when the target
/// has no such table (its version of the extension differs) or refuses both.
async fn writable(
    tx: &Transaction<'_>,
    c: &ExtensionConfig,
) -> Result<std::result::Result<Option<String>, String>> {
    let what = |e| Error::postgres(format!("checking privileges on {}", c.relation), e);
    let lacks: bool = tx
        .query_one("select to_regclass($1) is null", &[&c.relation.quoted()])
        .await
        .map_err(what)?
        .get(0);
    if lacks {
        return Ok(Err(format!(
            "{} row(s) the project added to {} (extension {}) were not copied: the target's version of the extension has no such table \
             (compare pg_extension's extversion on both sides); once it has (ALTER EXTENSION {} UPDATE), `supamigrate copy` again carries them",
            c.rows.unwrap_or(0),
            c.relation,
            c.extension,
            crate::pg::quote_ident(&c.extension),
        )));
    }
    let r = tx
        .query_one(
            "select has_table_privilege($1::text::regclass, 'insert'), \
             pg_get_userbyid(relowner)::text, current_user::text \
             from pg_class where oid = $1::text::regclass",
            &[&c.relation.quoted()],
        )
        .await
        .map_err(what)?;
    let (may, owner, me): (bool, String, String) = (r.get(0), r.get(1), r.get(2));
    if may {
        return Ok(Ok(None));
    }
    tx.batch_execute("savepoint supamigrate_owner")
        .await
        .map_err(what)?;
    // The owner's privileges pass to the new owner as they were: INSERT is
    // granted as well, in case the old owner had given it up.
    let take = format!(
        "alter table {t} owner to current_user; grant insert on {t} to current_user",
        t = c.relation.quoted()
    );
    match tx.batch_execute(&take).await {
        Ok(()) => Ok(Ok(Some(owner))),
        Err(e) => {
            tx.batch_execute("rollback to savepoint supamigrate_owner")
                .await
                .map_err(what)?;
            let reason = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            Ok(Err(format!(
                "{} row(s) the project added to {} (extension {}) were not copied: the target user {me} may not insert into it (owned by {owner}) nor take it over ({reason}); \
                 as its owner run ALTER TABLE {} OWNER TO {me} (or GRANT INSERT), then `supamigrate copy` again carries them",
                c.rows.unwrap_or(0),
                c.relation,
                c.extension,
                c.relation.quoted(),
            )))
        }
    }
}

/// Copies the rows the project added, through a temporary table, into the
/// target's: (rows inserted, rows the target already had).
async fn rows(src: &Client, tx: &Transaction<'_>, c: &ExtensionConfig) -> Result<(u64, u64)> {
    let what = |e| Error::postgres(format!("copying configuration table {}", c.relation), e);
    let columns: String = src
        .query_one(
            "select coalesce(string_agg(quote_ident(attname), ', ' order by attnum), '') \
             from pg_attribute where attrelid = $1::text::regclass and attnum > 0 \
             and not attisdropped and attgenerated = ''",
            &[&c.relation.quoted()],
        )
        .await
        .map_err(what)?
        .get(0);
    tx.batch_execute(&format!(
        "create temporary table supamigrate_config (like {}) on commit drop",
        c.relation.quoted()
    ))
    .await
    .map_err(what)?;
    let sink = tx
        .copy_in::<_, bytes::Bytes>(&format!("copy supamigrate_config ({columns}) from stdin"))
        .await
        .map_err(what)?;
    let mut sink = std::pin::pin!(sink);
    let stream = src
        .copy_out(&format!("copy ({}) to stdout", c.rows_query(&columns)))
        .await
        .map_err(what)?;
    let mut stream = std::pin::pin!(stream);
    sink.send_all(&mut stream).await.map_err(what)?;
    let read = sink.as_mut().finish().await.map_err(what)?;
    let inserted = tx
        .execute(
            &format!(
                "insert into {} ({columns}) overriding system value \
                 select {columns} from supamigrate_config on conflict do nothing",
                c.relation.quoted()
            ),
            &[],
        )
        .await
        .map_err(what)?;
    Ok((inserted, read.saturating_sub(inserted)))
}
