//! Planned statements: each converted statement with what the executors
//! need to know about it, decided once from its parse tree.

use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType, RangeVar};
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};

use super::objects::{objects_of, PlannedObject};
use crate::pg::TableName;
use crate::sql::uses::Uses;
use crate::sql::Statement;

/// Which part of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Types, functions, tables without constraints: applied before the data.
    PreData,
    /// Constraints, indexes, triggers, policies: applied after it.
    PostData,
}

impl Section {
    /// `pre-data` / `post-data`.
    pub fn name(self) -> &'static str {
        match self {
            Section::PreData => "pre-data",
            Section::PostData => "post-data",
        }
    }
}

/// How post-data builds a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A session setting every connection runs first (`SET`, `set_config`).
    Prelude,
    /// A key, check or index: built in parallel, as soon as its table's data is in.
    Keys,
    /// A partition's index attached to its partitioned table's index:
    /// after every key (both indexes exist), before the foreign keys (one
    /// referencing a partitioned table needs its index whole: valid only
    /// once every partition's is attached).
    Attach,
    /// A foreign key: in parallel, after the keys it references.
    ForeignKeys,
    /// Everything else (triggers, policies, grants…), in order.
    Rest,
}

/// One statement of the converted schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStatement {
    /// Before or after the data.
    pub section: Section,
    /// How post-data builds it.
    pub phase: Phase,
    /// For keys and indexes: the table they are on.
    pub table: Option<TableName>,
    /// The SQL, ending in `;`: the original text when kept, deparsed when rewritten.
    pub sql: String,
    /// The objects it creates, for verify.
    pub objects: Vec<PlannedObject>,
    /// A table whose columns come from elsewhere (a partition…).
    pub inherits: bool,
    /// For code (functions, views, policies, triggers): what it uses, so
    /// verify can check each of those resolves on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<Uses>,
}

fn table_of(rv: &Option<RangeVar>) -> Option<TableName> {
    rv.as_ref().map(|r| {
        TableName::new(
            if r.schemaname.is_empty() {
                "public"
            } else {
                r.schemaname.as_str()
            },
            r.relname.as_str(),
        )
    })
}

fn phase_of(node: Option<&NodeEnum>) -> (Phase, Option<TableName>) {
    match node {
        Some(NodeEnum::VariableSetStmt(_)) | Some(NodeEnum::SelectStmt(_)) => {
            (Phase::Prelude, None)
        }
        Some(NodeEnum::IndexStmt(i)) => (Phase::Keys, table_of(&i.relation)),
        // Extended statistics: with the table's indexes, so the ANALYZE
        // that follows them fills them.
        Some(NodeEnum::CreateStatsStmt(c)) => {
            let rel = c.relations.first().and_then(|n| match n.node.as_ref() {
                Some(NodeEnum::RangeVar(r)) => Some(r.clone()),
                _ => None,
            });
            (Phase::Keys, table_of(&rel))
        }
        Some(NodeEnum::AlterTableStmt(a)) => {
            let mut p = Phase::Rest;
            for c in &a.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() else {
                    continue;
                };
                if a.objtype == ObjectType::ObjectIndex as i32
                    && cmd.subtype == AlterTableType::AtAttachPartition as i32
                {
                    p = Phase::Attach;
                    continue;
                }
                if cmd.subtype != AlterTableType::AtAddConstraint as i32 {
                    continue;
                }
                if let Some(NodeEnum::Constraint(con)) =
                    cmd.def.as_ref().and_then(|d| d.node.as_ref())
                {
                    p = if con.contype == ConstrType::ConstrForeign as i32 {
                        Phase::ForeignKeys
                    } else {
                        Phase::Keys
                    };
                }
            }
            (p, table_of(&a.relation))
        }
        _ => (Phase::Rest, None),
    }
}

/// Classifies `st` (already converted), emitted as `sql`.
pub fn classify(st: &Statement, section: Section, sql: String) -> PlannedStatement {
    let node = st.node();
    let (phase, table) = phase_of(node.as_ref());
    let (objects, inherits) = node.as_ref().map(objects_of).unwrap_or_default();
    let code = matches!(
        node,
        Some(
            NodeEnum::CreateFunctionStmt(_)
                | NodeEnum::ViewStmt(_)
                | NodeEnum::CreateTableAsStmt(_)
                | NodeEnum::CreatePolicyStmt(_)
                | NodeEnum::CreateTrigStmt(_)
        )
    );
    PlannedStatement {
        section,
        phase,
        table: if phase == Phase::Keys { table } else { None },
        sql,
        objects,
        inherits,
        uses: code.then(|| crate::sql::uses::of_statement(st)),
    }
}

/// Parses and classifies a statement supamigrate itself adds.
pub fn added(sql: &str, section: Section) -> crate::Result<PlannedStatement> {
    let st = Statement::parse(sql.trim_end().trim_end_matches(';'))?;
    let text = if sql.trim_end().ends_with(';') {
        sql.trim().to_string()
    } else {
        format!("{};", sql.trim())
    };
    Ok(classify(&st, section, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_phased_with_their_table() {
        let cases = [
            ("SELECT pg_catalog.set_config('search_path', '', false)", Phase::Prelude, None),
            ("SET statement_timeout = 0", Phase::Prelude, None),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)", Phase::Keys, Some("public.t")),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_k UNIQUE (k)", Phase::Keys, Some("public.t")),
            ("CREATE INDEX i ON public.\"T t\" USING btree (k)", Phase::Keys, Some("public.T t")),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_fk FOREIGN KEY (p) REFERENCES public.p(id)", Phase::ForeignKeys, None),
            ("CREATE TRIGGER tr BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()", Phase::Rest, None),
            ("ALTER TABLE public.t ENABLE ROW LEVEL SECURITY", Phase::Rest, None),
            ("CREATE POLICY p ON public.t USING (true)", Phase::Rest, None),
            ("CREATE STATISTICS public.s (dependencies) ON a, b FROM public.t", Phase::Keys, Some("public.t")),
            ("ALTER INDEX app.chats_pkey ATTACH PARTITION app.\"chats_2024-01-01_pkey\"", Phase::Attach, None),
            ("ALTER TABLE ONLY app.chats ATTACH PARTITION app.c1 FOR VALUES FROM ('2024-01-01') TO ('2024-01-02')", Phase::Rest, None),
        ];
        for (sql, phase, table) in cases {
            let p = added(sql, Section::PostData).unwrap();
            assert_eq!(p.phase, phase, "{sql}");
            assert_eq!(p.table.map(|t| t.to_string()).as_deref(), table, "{sql}");
            assert!(p.sql.ends_with(';'));
        }
    }
}
