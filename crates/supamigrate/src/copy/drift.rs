//! Snapshot drift across a resumed copy. A resumed copy reads a new snapshot
//! of the source; a table copied (partly or wholly) under the old one is
//! consistent with the new one only if it did not change in between. Each
//! task's commit records its source table's change signature (the table's
//! change counters and storage file, read just before the snapshot was
//! taken); a resumed copy reads the signatures again, and every table whose
//! signature moved is copied again, whole, in one target transaction.
//!
//! The counters come from the statistics system, which a writing session
//! flushes when its transaction ends (at most a second late while it stays
//! busy): a write in the instant before the kill may be missed, and verify
//! catches it. A false alarm (a write just before the first snapshot) only
//! costs a re-copy.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::TableName;

/// A table's change signature on the source.
pub(super) type Signatures = HashMap<TableName, String>;

/// The signatures of `tables` now. Read before the snapshot is exported, so
/// a write between the two makes the signature differ later (a re-copy),
/// never the reverse.
pub(super) async fn signatures(source: &Client, tables: &[TableName]) -> Result<Signatures> {
    // The statistics snapshot of this session is cached per transaction.
    source
        .batch_execute("select pg_stat_clear_snapshot()")
        .await
        .map_err(|e| Error::postgres("reading the source's change counters", e))?;
    let (schemas, names): (Vec<&str>, Vec<&str>) = tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .unzip();
    let rows = source
        .query(
            include_str!("sql/change_signatures.sql"),
            &[&schemas, &names],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's change counters", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                r.get(2),
            )
        })
        .collect())
}

/// The signatures recorded on the target by committed tasks.
pub(super) async fn recorded(target: &Client) -> Result<Signatures> {
    let rows = target
        .query(
            "select source_schema, source_table, signature from supamigrate.copy_sources",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy's source signatures", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                r.get(2),
            )
        })
        .collect())
}

/// Records `table`'s signature, in the transaction of the task that copied it.
pub(super) async fn record(target: &Client, table: &TableName, signature: &str) -> Result<()> {
    target
        .execute(
            "insert into supamigrate.copy_sources (source_schema, source_table, signature) values ($1, $2, $3) \
             on conflict (source_schema, source_table) do update set signature = excluded.signature, recorded_at = now()",
            &[&table.schema, &table.name, &signature],
        )
        .await
        .map_err(|e| Error::postgres("recording the source table's signature", e))?;
    Ok(())
}

/// Why a table is copied again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// The source changed since its rows were copied.
    Changed,
    /// Its rows were copied before signatures were recorded.
    Unrecorded,
    /// The operator asked (`--recopy`).
    Asked,
}

/// Tables with copied rows to copy again: their signature moved, or none
/// was recorded, or the operator asked. Pure.
pub(super) fn drifted(
    copied: &[TableName],
    now: &Signatures,
    recorded: &Signatures,
    asked: &[TableName],
) -> BTreeMap<TableName, Why> {
    copied
        .iter()
        .filter_map(|t| {
            let why = if asked.contains(t) {
                Why::Asked
            } else {
                match recorded.get(t) {
                    None => Why::Unrecorded,
                    Some(r) if now.get(t) != Some(r) => Why::Changed,
                    Some(_) => return None,
                }
            };
            Some((t.clone(), why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: &str) -> TableName {
        TableName::new("public", n)
    }

    #[test]
    fn only_copied_tables_that_moved_or_were_asked_for_drift() {
        let copied = [t("a"), t("b"), t("c"), t("d")];
        let now: Signatures = [
            (t("a"), "1"),
            (t("b"), "2"),
            (t("c"), "3"),
            (t("d"), "4"),
            (t("e"), "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let recorded: Signatures = [(t("a"), "1"), (t("b"), "1"), (t("d"), "4"), (t("e"), "0")]
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let d = drifted(&copied, &now, &recorded, &[t("d")]);
        let got: Vec<(String, Why)> = d.into_iter().map(|(k, v)| (k.name, v)).collect();
        assert_eq!(
            got,
            [
                ("b".to_string(), Why::Changed),
                ("c".to_string(), Why::Unrecorded),
                ("d".to_string(), Why::Asked)
            ]
        );
    }
}
