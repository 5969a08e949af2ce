//! Planning the copy: which tasks, in which order. Pure.
//!
//! A task copies one table, one block range of a large table, or `auth.users`
//! into `app_users`. Tasks are persisted on the target before the first row
//! moves, so a resumed run executes the same tasks (a re-plan after the source
//! grew could draw range boundaries elsewhere and copy rows twice).

use serde::Serialize;

use crate::catalog::{quote_ident, TableName};
use crate::schema::convert::USER_COLUMNS;

/// A source table as the planner sees it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The table.
    pub name: TableName,
    /// `r` (ordinary) or `p` (partitioned).
    pub kind: String,
    /// Pages (8 KiB blocks), from the catalog.
    pub pages: i64,
    /// Size in bytes.
    pub bytes: i64,
    /// Columns to copy (generated ones left out).
    pub columns: Vec<String>,
    /// Every column's binary COPY form is server-independent.
    pub binary_safe: bool,
}

/// One unit of copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Stable id, e.g. `public.trips`, `public.location_history#3`, `auth.users`.
    pub id: String,
    /// The table rows go into.
    pub target: TableName,
    /// Target columns, in the order `source_sql` yields them.
    pub columns: Vec<String>,
    /// The query whose rows are copied (`COPY (…) TO STDOUT`).
    pub source_sql: String,
    /// Estimated bytes, for ordering and progress.
    pub est_bytes: i64,
    /// COPY in binary (cheaper for both servers) rather than text.
    pub binary: bool,
}

/// How to plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Tables larger than this are split into block ranges copied concurrently.
    pub split_bytes: i64,
    /// At most this many ranges per table.
    pub max_parts: i64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            split_bytes: 128 * 1024 * 1024,
            max_parts: 16,
        }
    }
}

fn column_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tasks for `tables` (and `auth.users` → `app_users` when `users` is
/// true), largest first so the long ones start early.
pub fn plan(tables: &[TableInfo], users: bool, opts: PlanOptions) -> Vec<Task> {
    let mut tasks = Vec::new();
    for t in tables {
        let cols = column_list(&t.columns);
        let from = t.name.quoted();
        let parts = if t.kind == "r" && t.bytes > opts.split_bytes && t.pages > 1 {
            ((t.bytes + opts.split_bytes - 1) / opts.split_bytes).clamp(1, opts.max_parts.max(1))
        } else {
            1
        };
        if parts <= 1 {
            tasks.push(Task {
                id: t.name.to_string(),
                target: t.name.clone(),
                columns: t.columns.clone(),
                source_sql: format!("select {cols} from {from}"),
                est_bytes: t.bytes,
                binary: t.binary_safe,
            });
            continue;
        }
        let step = (t.pages + parts - 1) / parts;
        for i in 0..parts {
            let lo = i * step;
            // The last range is open: rows in pages added since planning are not lost.
            let range = if i == parts - 1 {
                format!("ctid >= '({lo},0)'::tid")
            } else {
                format!(
                    "ctid >= '({lo},0)'::tid and ctid < '({},0)'::tid",
                    lo + step
                )
            };
            tasks.push(Task {
                id: format!("{}#{i}", t.name),
                target: t.name.clone(),
                columns: t.columns.clone(),
                source_sql: format!("select {cols} from {from} where {range}"),
                est_bytes: t.bytes / parts,
                binary: t.binary_safe,
            });
        }
    }
    if users {
        let (src, dst): (Vec<&str>, Vec<&str>) = USER_COLUMNS.iter().copied().unzip();
        let src: Vec<String> = src.iter().map(|c| quote_ident(c)).collect();
        tasks.push(Task {
            id: "auth.users".into(),
            target: TableName::new("public", "app_users"),
            columns: dst.iter().map(|c| c.to_string()).collect(),
            source_sql: format!("select {} from auth.users", src.join(", ")),
            est_bytes: 0,
            // auth.users holds varchar(255) where app_users has text: the
            // binary forms agree, but text is the safe choice for a mapping.
            binary: false,
        });
    }
    tasks.sort_by(|a, b| b.est_bytes.cmp(&a.est_bytes).then(a.id.cmp(&b.id)));
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, pages: i64, bytes: i64) -> TableInfo {
        TableInfo {
            name: TableName::new("public", name),
            kind: "r".into(),
            pages,
            bytes,
            columns: vec!["id".into(), "Note".into()],
            binary_safe: true,
        }
    }

    #[test]
    fn small_tables_are_one_task_large_ones_are_ranges() {
        let opts = PlanOptions {
            split_bytes: 1000,
            max_parts: 4,
        };
        let tasks = plan(
            &[table("small", 1, 500), table("big", 100, 3500)],
            false,
            opts,
        );
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "public.big#0",
                "public.big#1",
                "public.big#2",
                "public.big#3",
                "public.small"
            ]
        );
        assert_eq!(tasks[0].source_sql, "select \"id\", \"Note\" from \"public\".\"big\" where ctid >= '(0,0)'::tid and ctid < '(25,0)'::tid");
        assert_eq!(
            tasks[3].source_sql,
            "select \"id\", \"Note\" from \"public\".\"big\" where ctid >= '(75,0)'::tid"
        );
        assert_eq!(
            tasks[4].source_sql,
            "select \"id\", \"Note\" from \"public\".\"small\""
        );
    }

    #[test]
    fn ranges_cover_every_page_exactly_once() {
        for (pages, parts) in [(10, 3), (7, 7), (1000, 16), (5, 2)] {
            let opts = PlanOptions {
                split_bytes: 1,
                max_parts: parts,
            };
            let tasks = plan(&[table("t", pages, 1_000_000)], false, opts);
            let mut covered = vec![0; pages as usize + 50];
            for t in &tasks {
                let lo: i64 = t
                    .source_sql
                    .split("ctid >= '(")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let hi: i64 = t
                    .source_sql
                    .split("ctid < '(")
                    .nth(1)
                    .map(|s| s.split(',').next().unwrap().parse().unwrap())
                    .unwrap_or(pages + 50);
                for p in lo..hi {
                    covered[p as usize] += 1;
                }
            }
            assert!(
                covered.iter().all(|&c| c == 1),
                "pages {pages} parts {parts}: {covered:?}"
            );
        }
    }

    #[test]
    fn partitioned_tables_and_users() {
        let mut p = table("events", 0, 10_000_000);
        p.kind = "p".into();
        let tasks = plan(
            &[p],
            true,
            PlanOptions {
                split_bytes: 1,
                max_parts: 8,
            },
        );
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            tasks[0].id, "public.events",
            "partitioned parents are copied whole"
        );
        let users = &tasks[1];
        assert_eq!(users.target, TableName::new("public", "app_users"));
        assert!(users.source_sql.contains("\"email_change_token_new\""));
        assert!(users.columns.contains(&"email_change_token".to_string()));
        assert_eq!(users.columns.len(), USER_COLUMNS.len());
    }
}
