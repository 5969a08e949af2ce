//! Schema inventory: the objects the conversion planned, read from its parse
//! trees, against the objects the target's catalog has.
//!
//! Both sides are reduced to the same [`Object`] shape (kind, schema, table,
//! name, detail), so the comparison is a set difference, done without a
//! database ([`planned`] and [`compare`] are pure).

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, ConstrType, RangeVar};
use pg_query::NodeEnum;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::schema::sql::Statement;

/// One schema object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Object {
    /// table, view, column, index, constraint, function, trigger, enum, policy.
    pub kind: String,
    /// Its schema.
    pub schema: String,
    /// The table it belongs to ("" for tables, views, functions, enums).
    pub table: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.table.is_empty() {
            write!(f, "{} {}.{}", self.kind, self.schema, self.name)
        } else {
            write!(
                f,
                "{} {} on {}.{}",
                self.kind, self.name, self.schema, self.table
            )
        }
    }
}

/// Objects with their detail (an enum's labels, a constraint's `NOT VALID`).
pub type Inventory = BTreeMap<Object, String>;

/// Planned against found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InventoryDiff {
    /// Objects the conversion planned.
    pub planned: usize,
    /// Objects found on the target (in the planned schemas).
    pub found: usize,
    /// Planned but not on the target.
    pub missing: Vec<Object>,
    /// On the target but not planned.
    pub unexpected: Vec<Object>,
    /// On both, with a different detail: (object, planned, found).
    pub different: Vec<(Object, String, String)>,
}

impl InventoryDiff {
    /// Every planned object is there, as planned, and nothing else.
    pub fn matches(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.different.is_empty()
    }
}

/// Tables whose columns come from elsewhere (partitions, inheritance
/// children): their columns are not listed by their CREATE statement.
fn inherits(stmt: &protobuf::CreateStmt) -> bool {
    !stmt.inh_relations.is_empty() || stmt.partbound.is_some() || stmt.of_typename.is_some()
}

fn schema_of(rv: &RangeVar) -> String {
    if rv.schemaname.is_empty() {
        "public".to_string()
    } else {
        rv.schemaname.clone()
    }
}

fn names(list: &[protobuf::Node]) -> (String, String) {
    let parts: Vec<String> = list
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] => ("public".to_string(), name.clone()),
        [.., schema, name] => (schema.clone(), name.clone()),
        [] => (String::new(), String::new()),
    }
}

fn object(kind: &str, schema: &str, table: &str, name: &str) -> Object {
    Object {
        kind: kind.to_string(),
        schema: schema.to_string(),
        table: table.to_string(),
        name: name.to_string(),
    }
}

fn constraint(out: &mut Inventory, rv: &RangeVar, con: &protobuf::Constraint) {
    let kinds = [
        ConstrType::ConstrPrimary,
        ConstrType::ConstrUnique,
        ConstrType::ConstrForeign,
        ConstrType::ConstrCheck,
        ConstrType::ConstrExclusion,
    ];
    if con.conname.is_empty() || !kinds.iter().any(|k| *k as i32 == con.contype) {
        return;
    }
    let detail = if con.skip_validation { "NOT VALID" } else { "" };
    out.insert(
        object("constraint", &schema_of(rv), &rv.relname, &con.conname),
        detail.to_string(),
    );
}

/// The objects `statements` create, and the tables whose columns they do not
/// list (see [`compare`]).
pub fn planned(statements: &[String]) -> Result<(Inventory, BTreeSet<(String, String)>)> {
    let mut out = Inventory::new();
    let mut inherited = BTreeSet::new();
    for text in statements {
        let st = Statement::parse(text)?;
        let Some(node) = st.node() else { continue };
        match node {
            NodeEnum::CreateStmt(c) => {
                let Some(rv) = &c.relation else { continue };
                let schema = schema_of(rv);
                out.insert(object("table", &schema, "", &rv.relname), String::new());
                if inherits(c) {
                    inherited.insert((schema.clone(), rv.relname.clone()));
                }
                for elt in &c.table_elts {
                    match elt.node.as_ref() {
                        Some(NodeEnum::ColumnDef(col)) => {
                            out.insert(
                                object("column", &schema, &rv.relname, &col.colname),
                                String::new(),
                            );
                            for k in &col.constraints {
                                if let Some(NodeEnum::Constraint(con)) = k.node.as_ref() {
                                    constraint(&mut out, rv, con);
                                }
                            }
                        }
                        Some(NodeEnum::Constraint(con)) => constraint(&mut out, rv, con),
                        _ => {}
                    }
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                for cmd in &a.cmds {
                    let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                        continue;
                    };
                    match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                        Some(NodeEnum::Constraint(con))
                            if cmd.subtype == protobuf::AlterTableType::AtAddConstraint as i32 =>
                        {
                            constraint(&mut out, rv, con)
                        }
                        Some(NodeEnum::ColumnDef(col))
                            if cmd.subtype == protobuf::AlterTableType::AtAddColumn as i32 =>
                        {
                            out.insert(
                                object("column", &schema_of(rv), &rv.relname, &col.colname),
                                String::new(),
                            );
                        }
                        _ => {}
                    }
                }
            }
            NodeEnum::ViewStmt(v) => {
                if let Some(rv) = &v.view {
                    out.insert(
                        object("view", &schema_of(rv), "", &rv.relname),
                        String::new(),
                    );
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rv) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    out.insert(
                        object("view", &schema_of(rv), "", &rv.relname),
                        String::new(),
                    );
                }
            }
            NodeEnum::IndexStmt(i) => {
                if let Some(rv) = &i.relation {
                    out.insert(
                        object("index", &schema_of(rv), &rv.relname, &i.idxname),
                        String::new(),
                    );
                }
            }
            NodeEnum::CreateFunctionStmt(f) => {
                let (schema, name) = names(&f.funcname);
                out.insert(object("function", &schema, "", &name), String::new());
            }
            NodeEnum::CreateTrigStmt(t) => {
                if let Some(rv) = &t.relation {
                    out.insert(
                        object("trigger", &schema_of(rv), &rv.relname, &t.trigname),
                        String::new(),
                    );
                }
            }
            NodeEnum::CreateEnumStmt(e) => {
                let (schema, name) = names(&e.type_name);
                let labels: Vec<String> = e
                    .vals
                    .iter()
                    .filter_map(|v| match v.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                        _ => None,
                    })
                    .collect();
                out.insert(object("enum", &schema, "", &name), labels.join(", "));
            }
            NodeEnum::CreatePolicyStmt(p) => {
                if let Some(rv) = &p.table {
                    out.insert(
                        object("policy", &schema_of(rv), &rv.relname, &p.policy_name),
                        String::new(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok((out, inherited))
}

/// The schemas the planned objects live in.
pub fn schemas(planned: &Inventory) -> Vec<String> {
    let set: BTreeSet<&String> = planned.keys().map(|o| &o.schema).collect();
    set.into_iter().cloned().collect()
}

/// The target's objects in `schemas`.
pub async fn found(client: &Client, schemas: &[String]) -> Result<Inventory> {
    let rows = client
        .query(include_str!("sql/inventory.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("reading the target's schema inventory", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                Object {
                    kind: r.get(0),
                    schema: r.get(1),
                    table: r.get(2),
                    name: r.get(3),
                },
                r.get(4),
            )
        })
        .collect())
}

/// Planned against found. Columns of `inherited` tables are not listed by
/// the plan, so the target's are not counted as unexpected.
pub fn compare(
    planned: &Inventory,
    inherited: &BTreeSet<(String, String)>,
    found: &Inventory,
) -> InventoryDiff {
    let mut diff = InventoryDiff {
        planned: planned.len(),
        found: found.len(),
        ..InventoryDiff::default()
    };
    for (o, detail) in planned {
        match found.get(o) {
            None => diff.missing.push(o.clone()),
            Some(d) if d != detail => diff.different.push((o.clone(), detail.clone(), d.clone())),
            Some(_) => {}
        }
    }
    for o in found.keys() {
        let inherited_column =
            o.kind == "column" && inherited.contains(&(o.schema.clone(), o.table.clone()));
        if !planned.contains_key(o) && !inherited_column {
            diff.unexpected.push(o.clone());
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sql: &[&str]) -> Inventory {
        let v: Vec<String> = sql.iter().map(|s| s.to_string()).collect();
        planned(&v).unwrap().0
    }

    fn keys(inv: &Inventory) -> Vec<String> {
        inv.iter()
            .map(|(o, d)| {
                if d.is_empty() {
                    o.to_string()
                } else {
                    format!("{o} [{d}]")
                }
            })
            .collect()
    }

    #[test]
    fn each_statement_kind_yields_its_objects() {
        let cases: &[(&str, &[&str])] = &[
            (
                "CREATE TABLE public.t (id uuid NOT NULL, \"Odd Name\" text, CONSTRAINT t_chk CHECK (id IS NOT NULL))",
                &["column Odd Name on public.t", "column id on public.t", "constraint t_chk on public.t", "table public.t"],
            ),
            ("CREATE TABLE t2 (a int CONSTRAINT a_pos CHECK (a > 0))", &["column a on public.t2", "constraint a_pos on public.t2", "table public.t2"]),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)", &["constraint t_pkey on public.t"]),
            (
                "ALTER TABLE ONLY public.c ADD CONSTRAINT c_fk FOREIGN KEY (p) REFERENCES public.p(id) NOT VALID",
                &["constraint c_fk on public.c [NOT VALID]"],
            ),
            ("ALTER TABLE public.t ADD COLUMN extra int", &["column extra on public.t"]),
            ("ALTER TABLE public.t ENABLE ROW LEVEL SECURITY", &[]),
            ("CREATE INDEX idx_t ON public.t USING btree (id)", &["index idx_t on public.t"]),
            ("CREATE UNIQUE INDEX u ON s.t (id)", &["index u on s.t"]),
            ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1'", &["function public.f"]),
            ("CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS 'select null::uuid'", &["function auth.uid"]),
            ("CREATE TRIGGER trg BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()", &["trigger trg on public.t"]),
            ("CREATE TYPE public.status AS ENUM ('a', 'b c')", &["enum public.status [a, b c]"]),
            ("CREATE POLICY \"Own rows\" ON public.t FOR SELECT USING (true)", &["policy Own rows on public.t"]),
            ("CREATE VIEW public.v AS SELECT 1", &["view public.v"]),
            ("CREATE MATERIALIZED VIEW public.mv AS SELECT 1", &["view public.mv"]),
            ("GRANT ALL ON TABLE public.t TO app_user", &[]),
            ("CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (1) TO (10)", &["table public.p1"]),
        ];
        for (sql, expected) in cases {
            assert_eq!(keys(&plan(&[sql])), *expected, "{sql}");
        }
    }

    #[test]
    fn compare_reports_missing_unexpected_and_different() {
        let planned_sql: Vec<String> = [
            "CREATE TABLE public.t (id int, a text)",
            "CREATE TABLE public.part PARTITION OF public.parent FOR VALUES IN (1)",
            "CREATE INDEX t_a ON public.t (a)",
            "ALTER TABLE public.t ADD CONSTRAINT t_fk FOREIGN KEY (id) REFERENCES public.u(id)",
            "CREATE TYPE public.e AS ENUM ('x', 'y')",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (plan, inherited) = planned(&planned_sql).unwrap();
        let mut found = plan.clone();
        found.remove(&object("index", "public", "t", "t_a"));
        found.insert(object("index", "public", "t", "t_b"), String::new());
        found.insert(object("column", "public", "part", "id"), String::new());
        found.insert(
            object("constraint", "public", "t", "t_fk"),
            "NOT VALID".into(),
        );
        found.insert(object("enum", "public", "e", ""), String::new());
        found.remove(&object("enum", "public", "", "e"));
        found.insert(object("enum", "public", "", "e"), "x".into());
        let d = compare(&plan, &inherited, &found);
        assert_eq!(d.missing, vec![object("index", "public", "t", "t_a")]);
        assert_eq!(
            d.unexpected,
            vec![
                object("enum", "public", "e", ""),
                object("index", "public", "t", "t_b")
            ]
        );
        assert_eq!(
            d.different,
            vec![
                (
                    object("constraint", "public", "t", "t_fk"),
                    String::new(),
                    "NOT VALID".into()
                ),
                (object("enum", "public", "", "e"), "x, y".into(), "x".into()),
            ]
        );
        assert!(!d.matches());
        assert!(compare(&plan, &inherited, &plan).matches());
    }
}
