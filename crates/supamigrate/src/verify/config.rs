//! Kept extensions' configuration tables: the rows the project added on
//! the source (selected by the extension's own condition, as pg_dump does)
//! must be on the target too. Counted on both sides: the target may hold
//! more (its extension's version adds entries), never fewer.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::catalog::ExtensionConfig;
use crate::error::{Error, Result};
use crate::pg::TableName;

/// One configuration table on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCheck {
    /// The extension.
    pub extension: String,
    /// The table.
    pub relation: TableName,
    /// The project's rows on the source.
    pub source_rows: i64,
    /// The same condition's rows on the target (`None`: the target user
    /// may not read the table, or the target has none).
    pub target_rows: Option<i64>,
    /// The target has no such table: its version of the extension differs.
    #[serde(default)]
    pub target_lacks: bool,
}

impl ConfigCheck {
    /// The target has at least the source's rows.
    pub fn matches(&self) -> bool {
        self.target_rows.is_some_and(|t| t >= self.source_rows)
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self.target_rows {
            Some(t) => format!(
                "extension {} configuration {}: {} row(s) the project added on the source, {t} on the target",
                self.extension, self.relation, self.source_rows
            ),
            None if self.target_lacks => format!(
                "extension {} configuration {}: {} row(s) the project added on the source; the target's version of the extension has no such table",
                self.extension, self.relation, self.source_rows
            ),
            None => format!(
                "extension {} configuration {}: the target user may not read it",
                self.extension, self.relation
            ),
        }
    }
}

/// Counts each configuration table's project rows on both sides.
pub async fn check(
    src: &Client,
    tgt: &Client,
    configs: &[ExtensionConfig],
) -> Result<Vec<ConfigCheck>> {
    let mut out = Vec::new();
    for c in configs.iter().filter(|c| !c.sequence) {
        let count = |client: &'static str| {
            move |e| Error::postgres(format!("counting {} on the {client}", c.relation), e)
        };
        let source_rows: i64 = src
            .query_one(&c.rows_query("count(*)"), &[])
            .await
            .map_err(count("source"))?
            .get(0);
        let r = tgt
            .query_one(
                "select to_regclass($1) is null, \
                        to_regclass($1) is not null and has_table_privilege($1::text::regclass, 'select')",
                &[&c.relation.quoted()],
            )
            .await
            .map_err(count("target"))?;
        let (target_lacks, readable): (bool, bool) = (r.get(0), r.get(1));
        let target_rows = if readable {
            Some(
                tgt.query_one(&c.rows_query("count(*)"), &[])
                    .await
                    .map_err(count("target"))?
                    .get(0),
            )
        } else {
            None
        };
        out.push(ConfigCheck {
            extension: c.extension.clone(),
            relation: c.relation.clone(),
            source_rows,
            target_rows,
            target_lacks,
        });
    }
    Ok(out)
}
