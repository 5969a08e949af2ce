//! What the data copy moves: each table's mapping (source → target, column
//! by column) and the copy tasks, a whole table or one block range of a
//! large one. Pure; SQL is rendered from these typed values where COPY is
//! issued.

use serde::{Deserialize, Serialize};

use super::convert::Conversion;
use super::users::{user_columns, ColumnPair, APP_USERS};
use crate::catalog::inventory::SourceInventory;
use crate::catalog::{ColumnDef, TableFacts};
use crate::pg::{column_list, TableName};

/// A source table and the target table its rows go into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMapping {
    /// On the source.
    pub source: TableName,
    /// On the target.
    pub target: TableName,
    /// The columns copied, in order (generated ones and those of dropped
    /// extensions left out).
    pub columns: Vec<ColumnPair>,
    /// Source columns left behind on purpose, with the reason.
    pub left_out: Vec<LeftOut>,
    /// COPY in binary (cheaper for both servers) rather than text.
    pub binary: bool,
    /// A partitioned parent: rows are read through it from its partitions.
    pub partitioned: bool,
    /// Size on the source (bytes), for ordering and progress.
    pub bytes: i64,
    /// Heap blocks on the source, for splitting.
    pub pages: i64,
    /// Estimated rows on the source (-1 when unknown).
    pub est_rows: i64,
}

/// A source column the copy does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
}

impl TableMapping {
    /// Whether this is `auth.users` → `app_users`.
    pub fn is_users(&self) -> bool {
        self.source == TableName::new("auth", "users")
    }

    /// Source column names, in copy order.
    pub fn source_columns(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.source.as_str()).collect()
    }

    /// Target column names, in copy order.
    pub fn target_columns(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.target.as_str()).collect()
    }
}

/// A range of heap blocks: `ctid >= (start,0)` and, unless open, `ctid < (end,0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtidRange {
    /// First block.
    pub start_block: i64,
    /// First block after the range; `None` for the last range, which stays
    /// open so rows in blocks added since planning are not lost.
    pub end_block: Option<i64>,
}

impl CtidRange {
    /// The range as a WHERE condition.
    pub fn condition(&self) -> String {
        match self.end_block {
            None => format!("ctid >= '({},0)'::tid", self.start_block),
            Some(end) => format!(
                "ctid >= '({},0)'::tid and ctid < '({end},0)'::tid",
                self.start_block
            ),
        }
    }
}

/// One unit of copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyTask {
    /// Stable id, e.g. `public.orders`, `public.events#3`, `auth.users`.
    pub id: String,
    /// The source table (the key of its [`TableMapping`]).
    pub table: TableName,
    /// The block range, when the table is split.
    pub range: Option<CtidRange>,
    /// Estimated bytes.
    pub est_bytes: i64,
}

impl CopyTask {
    /// The query whose rows are copied (`COPY (…) TO STDOUT`).
    pub fn source_query(&self, mapping: &TableMapping) -> String {
        let cols = column_list(&mapping.source_columns());
        let only = if mapping.partitioned { "" } else { "only " };
        match &self.range {
            None => format!("select {cols} from {only}{}", mapping.source.quoted()),
            Some(r) => format!(
                "select {cols} from {only}{} where {}",
                mapping.source.quoted(),
                r.condition()
            ),
        }
    }
}

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitOptions {
    /// Tables larger than this are split into block ranges copied concurrently.
    pub split_bytes: i64,
    /// At most this many ranges per table.
    pub max_parts: i64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            split_bytes: 128 * 1024 * 1024,
            max_parts: 16,
        }
    }
}

/// Every table's mapping: the application's, `auth.users` → `app_users`,
/// Storage's metadata tables.
pub fn mappings(src: &SourceInventory, conv: &Conversion, same_major: bool) -> Vec<TableMapping> {
    let mut tables: Vec<TableMapping> = src
        .tables
        .iter()
        .map(|t| table_mapping(t, conv, same_major))
        .collect();
    if let (Some(users), Some(cols)) = (&src.auth_users, &src.schema.auth_users_columns) {
        tables.push(users_mapping(users, cols));
    }
    for facts in &src.auth_tables {
        let def = src
            .schema
            .auth_tables
            .iter()
            .find(|d| TableName::new("auth", &d.name) == facts.name);
        if let Some(def) = def.filter(|d| conv.auth_tables.contains(&d.name)) {
            tables.push(auth_mapping(facts, def));
        }
    }
    if let Some((buckets, objects)) = &src.storage_tables {
        for (t, name) in [(buckets, "buckets"), (objects, "objects")] {
            if let Some(t) = t {
                tables.push(storage_mapping(t, name));
            }
        }
    }
    tables
}

/// The mapping of an application table (same name on the target).
pub fn table_mapping(t: &TableFacts, conv: &Conversion, same_major: bool) -> TableMapping {
    let mut columns = Vec::new();
    let mut left_out = Vec::new();
    for c in &t.columns {
        if conv.dropped_columns.contains(&format!("{}.{c}", t.name)) {
            left_out.push(LeftOut {
                column: c.clone(),
                reason: "its type belongs to an extension left behind (--allow-drop-extension); its data is not copied".into(),
            });
        } else {
            columns.push(ColumnPair {
                source: c.clone(),
                target: c.clone(),
            });
        }
    }
    // Generated columns made plain (`--stale-generated keep`) carry the source's values.
    let prefix = format!("{}.", t.name);
    let plain: Vec<&str> = conv
        .plain_generated
        .iter()
        .filter_map(|g| g.strip_prefix(&prefix))
        .collect();
    for c in &plain {
        columns.push(ColumnPair {
            source: c.to_string(),
            target: c.to_string(),
        });
    }
    TableMapping {
        source: t.name.clone(),
        target: t.name.clone(),
        columns,
        left_out,
        binary: t.binary_safe && same_major && plain.is_empty(),
        partitioned: t.partitioned,
        bytes: t.bytes,
        pages: t.pages,
        est_rows: t.est_rows,
    }
}

/// `auth.users` → `app_users`: every column, the runbook's renamed
/// (generated ones are computed on the target).
pub fn users_mapping(users: &TableFacts, defs: &[ColumnDef]) -> TableMapping {
    let targets = user_columns(defs);
    let columns: Vec<ColumnPair> = users
        .columns
        .iter()
        .filter_map(|c| targets.iter().find(|u| &u.source == c && !u.generated))
        .map(|u| ColumnPair {
            source: u.source.clone(),
            target: u.target.clone(),
        })
        .collect();
    let left_out = users
        .columns
        .iter()
        .filter(|c| !columns.iter().any(|p| &p.source == *c))
        .map(|c| LeftOut {
            column: c.clone(),
            reason: format!("not in {APP_USERS}"),
        })
        .collect();
    let (schema, name) = APP_USERS.split_once('.').unwrap_or(("public", APP_USERS));
    TableMapping {
        source: users.name.clone(),
        target: TableName::new(schema, name),
        columns,
        left_out,
        // auth.users holds varchar(255) where app_users has text: the binary
        // forms agree, but text is the safe choice for a mapping.
        binary: false,
        partitioned: false,
        bytes: users.bytes,
        pages: users.pages,
        est_rows: users.est_rows,
    }
}

/// One of Auth's tables beyond users ([`super::auth_meta`]): same name,
/// every column but generated ones.
pub fn auth_mapping(facts: &TableFacts, def: &crate::catalog::dump::AuthTable) -> TableMapping {
    let generated = |c: &str| {
        def.columns
            .iter()
            .any(|d| d.name == c && d.generated.is_some())
    };
    same_named(
        facts,
        |c| !generated(c),
        "generated: the target computes it",
    )
}

/// `storage.buckets`/`storage.objects` → the same tables on the target, on
/// the columns the target's have.
pub fn storage_mapping(t: &TableFacts, table: &str) -> TableMapping {
    same_named(
        t,
        |c| super::storage_meta::copies(table, c),
        "used by the Storage server only",
    )
}

/// A platform table carried under its own name: the columns `copied`
/// keeps, the others left out for `reason`; text COPY.
fn same_named(t: &TableFacts, copied: impl Fn(&str) -> bool, reason: &str) -> TableMapping {
    let (columns, left): (Vec<&String>, Vec<&String>) =
        t.columns.iter().partition(|c| copied(c.as_str()));
    TableMapping {
        source: t.name.clone(),
        target: t.name.clone(),
        columns: columns
            .into_iter()
            .map(|c| ColumnPair {
                source: c.clone(),
                target: c.clone(),
            })
            .collect(),
        left_out: left
            .into_iter()
            .map(|c| LeftOut {
                column: c.clone(),
                reason: reason.into(),
            })
            .collect(),
        binary: false,
        partitioned: false,
        bytes: t.bytes,
        pages: t.pages,
        est_rows: t.est_rows,
    }
}

/// The tasks for `mappings`, largest first so the long ones start early.
pub fn tasks(mappings: &[TableMapping], opts: SplitOptions) -> Vec<CopyTask> {
    let mut tasks = Vec::new();
    for m in mappings {
        let pages = m.pages;
        let parts = if !m.partitioned && m.bytes > opts.split_bytes && pages > 1 {
            ((m.bytes + opts.split_bytes - 1) / opts.split_bytes).clamp(1, opts.max_parts.max(1))
        } else {
            1
        };
        let id = if m.is_users() {
            "auth.users".to_string()
        } else {
            m.source.to_string()
        };
        if parts <= 1 {
            tasks.push(CopyTask {
                id,
                table: m.source.clone(),
                range: None,
                est_bytes: m.bytes,
            });
            continue;
        }
        let step = (pages + parts - 1) / parts;
        for i in 0..parts {
            let start_block = i * step;
            tasks.push(CopyTask {
                id: format!("{id}#{i}"),
                table: m.source.clone(),
                range: Some(CtidRange {
                    start_block,
                    end_block: (i < parts - 1).then_some(start_block + step),
                }),
                est_bytes: m.bytes / parts,
            });
        }
    }
    tasks.sort_by(|a, b| b.est_bytes.cmp(&a.est_bytes).then(a.id.cmp(&b.id)));
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            data_type: "text".into(),
            not_null: false,
            default: None,
            generated: None,
        }
    }

    fn facts(name: &str, pages: i64, bytes: i64) -> TableFacts {
        TableFacts {
            name: TableName::new("public", name),
            partitioned: false,
            pages,
            est_rows: 10,
            bytes,
            columns: vec!["id".into(), "Note".into()],
            binary_safe: true,
        }
    }

    fn plan(tables: &[TableFacts], opts: SplitOptions) -> (Vec<TableMapping>, Vec<CopyTask>) {
        let maps: Vec<TableMapping> = tables
            .iter()
            .map(|t| table_mapping(t, &Conversion::default(), true))
            .collect();
        let tasks = tasks(&maps, opts);
        (maps, tasks)
    }

    #[test]
    fn small_tables_are_one_task_large_ones_are_ranges() {
        let opts = SplitOptions {
            split_bytes: 1000,
            max_parts: 4,
        };
        let (maps, tasks) = plan(&[facts("small", 1, 500), facts("big", 100, 3500)], opts);
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
        let big = &maps[1];
        assert_eq!(tasks[0].source_query(big), "select \"id\", \"Note\" from only \"public\".\"big\" where ctid >= '(0,0)'::tid and ctid < '(25,0)'::tid");
        assert_eq!(
            tasks[3].source_query(big),
            "select \"id\", \"Note\" from only \"public\".\"big\" where ctid >= '(75,0)'::tid"
        );
        assert_eq!(
            tasks[4].source_query(&maps[0]),
            "select \"id\", \"Note\" from only \"public\".\"small\""
        );
    }

    #[test]
    fn ranges_cover_every_page_exactly_once() {
        for (pages, parts) in [(10, 3), (7, 7), (1000, 16), (5, 2)] {
            let opts = SplitOptions {
                split_bytes: 1,
                max_parts: parts,
            };
            let (_, tasks) = plan(&[facts("t", pages, 1_000_000)], opts);
            let mut covered = vec![0; pages as usize + 50];
            for t in &tasks {
                let r = t.range.unwrap();
                for p in r.start_block..r.end_block.unwrap_or(pages + 50) {
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
    fn partitioned_tables_dropped_columns_and_users() {
        let mut p = facts("events", 0, 10_000_000);
        p.partitioned = true;
        let conv = Conversion {
            dropped_columns: ["public.events.Note".to_string()].into(),
            ..Conversion::default()
        };
        let m = table_mapping(&p, &conv, true);
        assert_eq!(m.source_columns(), ["id"]);
        assert_eq!(m.left_out[0].column, "Note");
        let users = TableFacts {
            name: TableName::new("auth", "users"),
            columns: vec![
                "instance_id".into(),
                "id".into(),
                "email".into(),
                "email_change_token_new".into(),
            ],
            ..p.clone()
        };
        let defs: Vec<ColumnDef> = [
            "instance_id",
            "id",
            "email",
            "email_change_token_new",
            "confirmed_at",
        ]
        .iter()
        .map(|c| col(c))
        .collect();
        let mut defs = defs;
        defs[4].generated = Some("LEAST(email_confirmed_at, phone_confirmed_at)".into());
        let u = users_mapping(&users, &defs);
        let tasks = tasks(
            &[m.clone(), u.clone()],
            SplitOptions {
                split_bytes: 1,
                max_parts: 8,
            },
        );
        assert_eq!(tasks.len(), 2, "partitioned parents are copied whole");
        assert_eq!(
            tasks[0].source_query(&m),
            "select \"id\" from \"public\".\"events\""
        );
        assert_eq!(u.target, TableName::new("public", "app_users"));
        // Every column moves, the runbook's renamed; generated ones are computed.
        assert_eq!(
            u.target_columns(),
            ["instance_id", "id", "email", "email_change_token"]
        );
        assert!(u.left_out.is_empty());
        assert!(tasks.iter().any(|t| t.id == "auth.users"));
    }
}
