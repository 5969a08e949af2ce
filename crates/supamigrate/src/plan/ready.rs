//! What makes each copied table ready for production traffic the moment the
//! copy ends: planner statistics, and a visibility map with frozen rows so
//! the first reads write no hint bits and no anti-wraparound vacuum rewrites
//! the table later. Decided per table from how it is copied. Pure.
//!
//! Measured (`bench/copy.sh`, docs/benchmarks.md): a table copied by one
//! task gets `COPY … FREEZE` into itself emptied in the same transaction
//! (rows arrive frozen and all-visible; nothing re-reads the heap) and then
//! `ANALYZE`, which samples. A table copied in block ranges by parallel
//! transactions cannot be emptied by each; it gets `ANALYZE` once its
//! ranges and indexes are in. A `VACUUM (FREEZE, ANALYZE)` of it at the end
//! of the copy (while other COPY transactions run it can neither freeze nor
//! mark pages all-visible) cost 7% more wall time for the same first-query
//! times; autovacuum's insert threshold vacuums it in the background soon
//! after.

use serde::{Deserialize, Serialize};

use super::copy::{CopyTask, TableMapping};
use crate::pg::TableName;

/// What is done to a table once its rows (and its indexes) are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyAction {
    /// Rows copied with `COPY … FREEZE`, then `ANALYZE`.
    FreezeAnalyze,
    /// `ANALYZE` once every range (or partition) is in and indexed.
    Analyze,
    /// Rows copied with `COPY … FREEZE`; statistics left for later
    /// (`--no-analyze`).
    FreezeOnly,
    /// Nothing (`--no-analyze`, a table copied in ranges).
    Nothing,
}

impl ReadyAction {
    /// Whether the rows go in with `COPY … FREEZE`.
    pub fn copy_freeze(self) -> bool {
        matches!(self, ReadyAction::FreezeAnalyze | ReadyAction::FreezeOnly)
    }

    /// The statement run once the table's rows and indexes are in, if any.
    pub fn statement(self, table: &TableName) -> Option<String> {
        match self {
            ReadyAction::FreezeAnalyze | ReadyAction::Analyze => {
                Some(format!("analyze {}", table.quoted()))
            }
            ReadyAction::FreezeOnly | ReadyAction::Nothing => None,
        }
    }

    /// What people read.
    /// The action by the name the store records (`freeze-analyze`, …).
    pub fn from_name(name: &str) -> Option<ReadyAction> {
        [
            ReadyAction::FreezeAnalyze,
            ReadyAction::Analyze,
            ReadyAction::FreezeOnly,
            ReadyAction::Nothing,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// The name the store and the plan file use.
    pub fn name(self) -> &'static str {
        match self {
            ReadyAction::FreezeAnalyze => "freeze-analyze",
            ReadyAction::Analyze => "analyze",
            ReadyAction::FreezeOnly => "freeze-only",
            ReadyAction::Nothing => "nothing",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ReadyAction::FreezeAnalyze => "COPY FREEZE, then ANALYZE",
            ReadyAction::Analyze => "ANALYZE after its ranges",
            ReadyAction::FreezeOnly => "COPY FREEZE; no ANALYZE (--no-analyze)",
            ReadyAction::Nothing => "nothing (--no-analyze)",
        }
    }
}

/// One table's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyTable {
    /// The target table.
    pub table: TableName,
    /// What is done.
    pub action: ReadyAction,
    /// Why.
    pub reason: String,
}

/// Decides each table's action from its mapping and tasks.
pub fn plan(mappings: &[TableMapping], tasks: &[CopyTask], analyze: bool) -> Vec<ReadyTable> {
    mappings
        .iter()
        .map(|m| {
            let mine: Vec<&CopyTask> = tasks.iter().filter(|t| t.table == m.source).collect();
            let whole = mine.len() == 1 && mine[0].range.is_none();
            let (action, reason) = if m.partitioned {
                (
                    ReadyAction::Analyze,
                    "a partitioned table: COPY FREEZE cannot route rows into partitions; ANALYZE samples and covers each of them".to_string(),
                )
            } else if whole {
                (
                    ReadyAction::FreezeAnalyze,
                    "one task: COPY FREEZE into the table emptied in the same transaction writes frozen, all-visible rows".to_string(),
                )
            } else {
                (
                    ReadyAction::Analyze,
                    format!(
                        "copied in {} ranges by parallel transactions: none can empty the table for COPY FREEZE, and a VACUUM (FREEZE) of it costs more than it saves (measured)",
                        mine.len()
                    ),
                )
            };
            let action = match (analyze, action) {
                (true, a) => a,
                (false, a) if a.copy_freeze() => ReadyAction::FreezeOnly,
                (false, _) => ReadyAction::Nothing,
            };
            ReadyTable {
                table: m.target.clone(),
                action,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::copy::CtidRange;

    #[test]
    fn names_are_the_plan_files_names() {
        for a in [
            ReadyAction::FreezeAnalyze,
            ReadyAction::Analyze,
            ReadyAction::FreezeOnly,
            ReadyAction::Nothing,
        ] {
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json.as_str(), Some(a.name()));
            assert_eq!(ReadyAction::from_name(a.name()), Some(a));
        }
        assert_eq!(ReadyAction::from_name("vacuum"), None);
    }

    fn mapping(name: &str, partitioned: bool) -> TableMapping {
        TableMapping {
            source: TableName::new("public", name),
            target: TableName::new("public", name),
            columns: vec![],
            left_out: vec![],
            binary: true,
            partitioned,
            bytes: 0,
            pages: 0,
            est_rows: 0,
        }
    }

    fn task(name: &str, range: Option<CtidRange>) -> CopyTask {
        CopyTask {
            id: name.into(),
            table: TableName::new("public", name),
            range,
            est_bytes: 0,
        }
    }

    /// (table, partitioned, tasks, analyze) → action.
    #[test]
    fn each_table_gets_the_cheapest_action_its_copy_allows() {
        let r = |start_block, end_block| {
            Some(CtidRange {
                start_block,
                end_block,
            })
        };
        let cases: &[(&str, bool, Vec<CopyTask>, bool, ReadyAction)] = &[
            (
                "whole",
                false,
                vec![task("whole", None)],
                true,
                ReadyAction::FreezeAnalyze,
            ),
            (
                "split",
                false,
                vec![task("split", r(0, Some(10))), task("split", r(10, None))],
                true,
                ReadyAction::Analyze,
            ),
            (
                "parent",
                true,
                vec![task("parent", None)],
                true,
                ReadyAction::Analyze,
            ),
            (
                "whole",
                false,
                vec![task("whole", None)],
                false,
                ReadyAction::FreezeOnly,
            ),
            (
                "split",
                false,
                vec![task("split", r(0, Some(10))), task("split", r(10, None))],
                false,
                ReadyAction::Nothing,
            ),
        ];
        for (name, partitioned, tasks, analyze, want) in cases {
            let got = plan(&[mapping(name, *partitioned)], tasks, *analyze);
            assert_eq!(
                got[0].action, *want,
                "{name} analyze={analyze}: {}",
                got[0].reason
            );
        }
    }

    #[test]
    fn statements_are_rendered_from_the_table() {
        let t = TableName::new("public", "Odd name");
        assert_eq!(
            ReadyAction::Analyze.statement(&t).unwrap(),
            "analyze \"public\".\"Odd name\""
        );
        assert_eq!(ReadyAction::FreezeOnly.statement(&t), None);
    }
}
