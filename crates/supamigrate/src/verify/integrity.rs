//! Referential integrity: rows whose foreign key points nowhere.
//!
//! Checked by query, not by trusting the constraint, so it also catches rows
//! loaded while checks were off and constraints added `NOT VALID`.

use tokio_postgres::Client;

use crate::catalog::{list_foreign_keys, quote_ident, ForeignKey};
use crate::error::{Error, Result};

/// A foreign key and how many rows violate it.
#[derive(Debug, Clone, serde::Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableName;

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
