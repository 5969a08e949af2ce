//! Whether each migrated table is ready for traffic on the target: planner
//! statistics for its columns (`pg_stats`), `reltuples` close to its row
//! count, and how much of it the visibility map marks all-visible.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::TableName;

/// One table's statistics on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsCheck {
    /// The target table.
    pub table: TableName,
    /// Its rows (counted by verify).
    pub rows: i64,
    /// The planner's estimate (`pg_class.reltuples`; -1: never analyzed).
    pub reltuples: f64,
    /// Columns with a `pg_stats` row.
    pub columns_with_stats: i64,
    /// Heap pages, and those the visibility map marks all-visible.
    pub pages: i64,
    /// All-visible pages.
    pub all_visible: i64,
}

impl StatsCheck {
    /// Statistics there and `reltuples` within 10% of the rows.
    pub fn matches(&self) -> bool {
        if self.rows == 0 {
            return self.reltuples >= 0.0;
        }
        self.columns_with_stats > 0
            && (self.reltuples - self.rows as f64).abs() <= 0.1 * self.rows as f64
    }

    /// What people read.
    pub fn describe(&self) -> String {
        let visible = if self.pages > 0 {
            format!(
                "; {}% of {} pages all-visible",
                self.all_visible * 100 / self.pages,
                self.pages
            )
        } else {
            String::new()
        };
        if self.reltuples < 0.0 {
            return format!("{}: never analyzed ({} rows)", self.table, self.rows);
        }
        format!(
            "{}: {} rows, the planner estimates {:.0}; {} columns with statistics{visible}",
            self.table, self.rows, self.reltuples, self.columns_with_stats
        )
    }
}

/// The statistics of `tables` (target name, rows) on the target.
pub async fn check(tgt: &Client, tables: &[(TableName, i64)]) -> Result<Vec<StatsCheck>> {
    let mut out = Vec::new();
    for (table, rows) in tables {
        let r = tgt
            .query_opt(
                "select c.reltuples::float8, c.relpages::int8, c.relallvisible::int8, \
                        (select count(*) from pg_stats s where s.schemaname = n.nspname and s.tablename = c.relname) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = $1 and c.relname = $2",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading {table}'s statistics"), e))?;
        let Some(r) = r else { continue };
        out.push(StatsCheck {
            table: table.clone(),
            rows: *rows,
            reltuples: r.get(0),
            pages: r.get(1),
            all_visible: r.get(2),
            columns_with_stats: r.get(3),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (rows, reltuples, columns with stats) → matches.
    #[test]
    fn statistics_must_be_there_and_close() {
        let cases = [
            (100, 100.0, 3, true),
            (100, 91.0, 3, true),
            (100, 89.0, 3, false),
            (100, 100.0, 0, false),
            (100, -1.0, 0, false),
            (0, 0.0, 0, true),
            (0, -1.0, 0, false),
        ];
        for (rows, reltuples, columns_with_stats, want) in cases {
            let c = StatsCheck {
                table: TableName::new("public", "t"),
                rows,
                reltuples,
                columns_with_stats,
                pages: 0,
                all_visible: 0,
            };
            assert_eq!(c.matches(), want, "{}", c.describe());
        }
    }
}
