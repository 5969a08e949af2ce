//! Referential integrity and sequences.
//!
//! - Rows whose foreign key points nowhere, checked by query rather than by
//!   trusting the constraint, so rows under `NOT VALID` constraints count too.
//! - Sequences: the target's state equal to the source's, and the next value
//!   past every value already in the column it feeds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::catalog::{list_foreign_keys, ForeignKey};
use crate::error::{Error, Result};
use crate::pg::{quote_ident, SequenceState, TableName};

/// A foreign key and how many rows violate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphans {
    /// The constraint.
    pub foreign_key: ForeignKey,
    /// Referencing rows with no referenced row (MATCH SIMPLE: rows with a NULL
    /// in any key column are exempt).
    pub rows: i64,
}

/// The SQL counting `fk`'s orphans.
pub fn orphan_query(fk: &ForeignKey) -> String {
    let not_null = fk
        .columns
        .iter()
        .map(|c| format!("c.{} is not null", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" and ");
    let join = fk
        .columns
        .iter()
        .zip(&fk.ref_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "select count(*) from {} c where {not_null} and not exists (select 1 from {} p where {join})",
        fk.table.quoted(),
        fk.ref_table.quoted()
    )
}

/// Orphan counts for every foreign key of tables in `schemas`.
pub async fn foreign_key_orphans(client: &Client, schemas: &[&str]) -> Result<Vec<Orphans>> {
    let mut out = Vec::new();
    for fk in list_foreign_keys(client, schemas).await? {
        let rows: i64 = client
            .query_one(&orphan_query(&fk), &[])
            .await
            .map_err(|e| {
                Error::postgres(
                    format!("checking foreign key {} on {}", fk.name, fk.table),
                    e,
                )
            })?
            .get(0);
        out.push(Orphans {
            foreign_key: fk,
            rows,
        });
    }
    Ok(out)
}

/// One foreign key on the target with orphans, and the source's count for
/// the same constraint (orphans the source already had are not a migration
/// fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanCheck {
    /// The target's constraint.
    pub foreign_key: ForeignKey,
    /// Orphan rows on the target.
    pub target_rows: i64,
    /// Orphan rows under the constraint of the same name on the source
    /// (`None`: no such constraint there).
    pub source_rows: Option<i64>,
}

impl OrphanCheck {
    /// The target has no more orphans than the source had.
    pub fn matches(&self) -> bool {
        self.target_rows == self.source_rows.unwrap_or(0)
    }
}

async fn count_orphans(client: &Client, fk: &ForeignKey) -> Result<i64> {
    Ok(client
        .query_one(&orphan_query(fk), &[])
        .await
        .map_err(|e| {
            Error::postgres(
                format!("checking foreign key {} on {}", fk.name, fk.table),
                e,
            )
        })?
        .get(0))
}

/// Every foreign key of the target's `schemas`, with its orphans (the source
/// is only asked about constraints that have orphans on the target).
pub async fn orphan_checks(
    source: &Client,
    target: &Client,
    source_schemas: &[&str],
    target_schemas: &[&str],
) -> Result<Vec<OrphanCheck>> {
    let mut out = Vec::new();
    let mut source_fks: Option<Vec<ForeignKey>> = None;
    for fk in list_foreign_keys(target, target_schemas).await? {
        let target_rows = count_orphans(target, &fk).await?;
        let mut source_rows = None;
        if target_rows > 0 {
            if source_fks.is_none() {
                source_fks = Some(list_foreign_keys(source, source_schemas).await?);
            }
            let same = source_fks
                .iter()
                .flatten()
                .find(|s| s.name == fk.name && s.table == fk.table);
            if let Some(s) = same {
                source_rows = Some(count_orphans(source, s).await?);
            }
        }
        out.push(OrphanCheck {
            foreign_key: fk,
            target_rows,
            source_rows,
        });
    }
    Ok(out)
}

/// One sequence compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceCheck {
    /// The sequence.
    pub sequence: TableName,
    /// The column it feeds, `schema.table.column`, when known.
    pub column: Option<String>,
    /// On the source.
    pub source: SequenceState,
    /// On the target (`None`: missing).
    pub target: Option<SequenceState>,
    /// Increment.
    pub increment: i64,
    /// Largest value in the column on the target (smallest for descending
    /// sequences); `None` when empty or not an integer column.
    pub column_extreme: Option<i64>,
    /// What is wrong, empty when nothing.
    pub problems: Vec<String>,
}

struct SequenceInfo {
    name: TableName,
    increment: i64,
    column: Option<(TableName, String, String)>,
}

async fn list_sequences(client: &Client, schemas: &[&str]) -> Result<Vec<SequenceInfo>> {
    let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(include_str!("sql/sequences.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing sequences", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let table: Option<String> = r.get(4);
            SequenceInfo {
                name: TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                increment: r.get(2),
                column: table.map(|t| {
                    (
                        TableName::new(r.get::<_, String>(3), t),
                        r.get::<_, String>(5),
                        r.get::<_, String>(6),
                    )
                }),
            }
        })
        .collect())
}

async fn state(client: &Client, seq: &TableName) -> Result<SequenceState> {
    let r = client
        .query_one(
            &crate::sql::own(&format!(
                "select last_value, is_called from {}",
                seq.quoted()
            )),
            &[],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading sequence {seq}"), e))?;
    Ok(SequenceState {
        last_value: r.get(0),
        is_called: r.get(1),
    })
}

const INTEGER_TYPES: &[&str] = &["smallint", "integer", "bigint"];

/// Every sequence of the source's `schemas` against the target's.
pub async fn sequence_checks(
    source: &Client,
    target: &Client,
    schemas: &[&str],
) -> Result<Vec<SequenceCheck>> {
    let on_target: BTreeMap<TableName, SequenceInfo> = list_sequences(target, schemas)
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut out = Vec::new();
    for seq in list_sequences(source, schemas).await? {
        let src = state(source, &seq.name).await?;
        let mut check = SequenceCheck {
            sequence: seq.name.clone(),
            column: seq
                .column
                .as_ref()
                .map(|(t, c, _)| format!("{t}.{}", quote_ident(c))),
            source: src,
            target: None,
            increment: seq.increment,
            column_extreme: None,
            problems: Vec::new(),
        };
        let Some(tseq) = on_target.get(&seq.name) else {
            check.problems.push("missing on the target".into());
            out.push(check);
            continue;
        };
        let tgt = state(target, &seq.name).await?;
        check.target = Some(tgt);
        if tgt != src {
            check.problems.push(format!(
                "target last_value {} (is_called {}) differs from the source's {} (is_called {})",
                tgt.last_value, tgt.is_called, src.last_value, src.is_called
            ));
        }
        if let Some((table, column, ty)) = &tseq.column {
            if INTEGER_TYPES.contains(&ty.as_str()) {
                let agg = if tseq.increment > 0 { "max" } else { "min" };
                let extreme: Option<i64> = target
                    .query_one(
                        &format!(
                            "select {agg}({})::bigint from {}",
                            quote_ident(column),
                            table.quoted()
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| Error::postgres(format!("reading {agg} of {table}.{column}"), e))?
                    .get(0);
                check.column_extreme = extreme;
                let next = tgt.next(tseq.increment);
                if let Some(x) = extreme {
                    let behind = if tseq.increment > 0 {
                        next <= x
                    } else {
                        next >= x
                    };
                    if behind {
                        check.problems.push(format!(
                            "behind its column: nextval would return {next}, but {table}.{column} already holds {x}"
                        ));
                    }
                }
            }
        }
        out.push(check);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_value_follows_is_called() {
        let s = |last_value, is_called| SequenceState {
            last_value,
            is_called,
        };
        assert_eq!(s(10, true).next(1), 11);
        assert_eq!(s(10, false).next(1), 10);
        assert_eq!(s(-5, true).next(-1), -6);
        assert_eq!(s(i64::MAX, true).next(1), i64::MAX);
    }

    #[test]
    fn orphan_query_handles_composite_and_quoted_keys() {
        let fk = ForeignKey {
            name: "fk".into(),
            table: TableName::new("public", "Child Table"),
            columns: vec!["a".into(), "B".into()],
            ref_table: TableName::new("s", "parent"),
            ref_columns: vec!["x".into(), "y".into()],
            validated: false,
        };
        assert_eq!(
            orphan_query(&fk),
            "select count(*) from \"public\".\"Child Table\" c where c.\"a\" is not null and c.\"B\" is not null \
             and not exists (select 1 from \"s\".\"parent\" p where p.\"x\" = c.\"a\" and p.\"y\" = c.\"B\")"
        );
    }
}
