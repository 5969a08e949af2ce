//! Rewriting references to Storage objects: every value of the plan's
//! reference columns that names a copied object becomes its new location,
//! on the target, in one transaction, with the tables' own triggers paused.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::ObjectsPlan;
use crate::error::{Error, Result};
use crate::pg::{key_text_expr, primary_key, quote_ident};
use crate::plan::refs::{self, RefColumn, Reference};
use crate::plan::storage::StoragePlan;

/// One reference rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `schema.table.column`.
    pub column: String,
    /// The row's primary key (as text).
    pub key: String,
    /// Old value (signed URLs' tokens are shown redacted).
    #[serde(serialize_with = "redacted")]
    pub old: String,
    /// New value.
    pub new: String,
}

fn redacted<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&refs::redact_token(v))
}

/// A value that looks like a Storage reference but matches no copied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolved {
    /// `schema.table.column`.
    pub column: String,
    /// The row's key.
    pub key: String,
    /// The value (tokens redacted).
    pub value: String,
}

/// The rewrite of the reference columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewritePlan {
    /// Every change.
    pub changes: Vec<Change>,
    /// Values that match no object.
    pub unresolved: Vec<Unresolved>,
    /// Values already pointing at the new location.
    pub already_moved: usize,
    /// Other URLs, left alone.
    pub foreign: usize,
}

async fn check_column(target: &Client, rc: &RefColumn) -> Result<()> {
    let exists: bool = target
        .query_one(
            "select exists (select 1 from information_schema.columns \
             where table_schema = $1 and table_name = $2 and column_name = $3)",
            &[&rc.table.schema, &rc.table.name, &rc.column],
        )
        .await
        .map_err(|e| Error::postgres("looking up a reference column", e))?
        .get(0);
    if !exists {
        return Err(Error::invalid_input(format!(
            "reference column {}.{} does not exist on the target",
            rc.table, rc.column
        ))
        .with_hint(
            "name the columns that hold Storage paths with --reference SCHEMA.TABLE.COLUMN=BUCKET",
        ));
    }
    Ok(())
}

/// Plans the rewrite of the plan's reference columns on `target` (reads
/// only). Only objects the copy moved are new locations; a reference to an
/// object missing from the store stays as it is, reported.
pub async fn plan_rewrite(
    target: &Client,
    objects: &ObjectsPlan,
    plan: &StoragePlan,
) -> Result<RewritePlan> {
    let known: BTreeSet<(&str, &str)> = objects
        .objects
        .iter()
        .map(|o| (o.bucket.as_str(), o.key.as_str()))
        .collect();
    let url_prefix = plan.rewrite.as_ref().and_then(|r| r.url_prefix.clone());
    let moved = |v: &str| {
        v.starts_with(&format!("s3://{}", plan.bucket_prefix))
            || url_prefix.as_deref().is_some_and(|p| v.starts_with(p))
    };
    let mut out = RewritePlan::default();
    for rc in &plan.references {
        check_column(target, rc).await?;
        let key = primary_key(target, &rc.table).await?;
        let key_expr = if key.is_empty() {
            "t.ctid::text".to_string()
        } else {
            key_text_expr("t", &key)
        };
        let column = format!("{}.{}", rc.table, rc.column);
        let rows = target
            .query(
                &crate::sql::own(&format!(
                    "select {key_expr}, t.{col}::text from {} t where t.{col} is not null order by 1",
                    rc.table.quoted(),
                    col = quote_ident(&rc.column)
                )),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading {column}"), e))?;
        for r in rows {
            let (k, v): (String, String) = (r.get(0), r.get(1));
            match refs::parse(&v, &rc.bucket, &moved) {
                Reference::Moved => out.already_moved += 1,
                Reference::Foreign => out.foreign += 1,
                Reference::Object(candidates) => {
                    match candidates
                        .iter()
                        .find(|(b, key)| known.contains(&(b.as_str(), key.as_str())))
                    {
                        Some((b, obj)) => out.changes.push(Change {
                            column: column.clone(),
                            key: k,
                            new: refs::new_location(
                                &plan.dest_bucket(b),
                                obj,
                                url_prefix.as_deref(),
                            ),
                            old: v,
                        }),
                        None => out.unresolved.push(Unresolved {
                            column: column.clone(),
                            key: k,
                            value: refs::redact_token(&v),
                        }),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `alter table … {disable|enable} trigger …` for the table's enabled user
/// triggers.
async fn toggled_triggers(
    tx: &tokio_postgres::Transaction<'_>,
    rc: &RefColumn,
) -> Result<Vec<String>> {
    Ok(tx
        .query(
            "select tgname::text from pg_trigger \
             where tgrelid = $1::text::regclass and not tgisinternal and tgenabled = 'O'",
            &[&rc.table.quoted()],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the triggers of {}", rc.table), e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Applies `rewrite` on `target` in one transaction; returns rows updated.
pub async fn rewrite(
    target: &mut Client,
    rewrite: &RewritePlan,
    plan: &StoragePlan,
) -> Result<u64> {
    let tx = target
        .transaction()
        .await
        .map_err(|e| Error::postgres("starting the reference rewrite", e))?;
    let mut n = 0;
    for rc in &plan.references {
        let column = format!("{}.{}", rc.table, rc.column);
        let pairs: BTreeMap<&str, &str> = rewrite
            .changes
            .iter()
            .filter(|c| c.column == column)
            .map(|c| (c.old.as_str(), c.new.as_str()))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let (old, new): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
        // A path is not an application change: the table's own triggers
        // (updated_at = now() and the like) must not fire. Those enabled are
        // switched off for this transaction only (owner's right; no
        // superuser, no session_replication_role).
        let triggers = toggled_triggers(&tx, rc).await?;
        let toggle = |how: &str| {
            triggers
                .iter()
                .map(|t| {
                    format!(
                        "alter table {} {how} trigger {};",
                        rc.table.quoted(),
                        quote_ident(t)
                    )
                })
                .collect::<String>()
        };
        let what = |e| Error::postgres(format!("rewriting {column}"), e);
        if !triggers.is_empty() {
            tx.batch_execute(&toggle("disable")).await.map_err(what)?;
        }
        n += tx
            .execute(
                &format!(
                    "update {} t set {col} = m.new from unnest($1::text[], $2::text[]) as m(old, new) \
                     where t.{col} = m.old",
                    rc.table.quoted(),
                    col = quote_ident(&rc.column)
                ),
                &[&old, &new],
            )
            .await
            .map_err(what)?;
        if !triggers.is_empty() {
            tx.batch_execute(&toggle("enable")).await.map_err(what)?;
        }
    }
    crate::store::record_rewrite(&tx, n).await?;
    tx.commit()
        .await
        .map_err(|e| Error::postgres("committing the reference rewrite", e))?;
    Ok(n)
}
