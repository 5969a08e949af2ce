//! The schema objects a planned statement creates, read from its parse tree
//! once, when the plan is made. verify compares them with the target's
//! catalog; nothing parses the statements again.

use pg_query::protobuf::{self, ConstrType, RangeVar};
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};

/// One schema object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

impl Object {
    /// An object from its parts.
    pub fn new(kind: &str, schema: &str, table: &str, name: &str) -> Object {
        Object {
            kind: kind.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            name: name.to_string(),
        }
    }
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

/// An object with its detail (an enum's labels, a constraint's `NOT VALID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedObject {
    /// The object.
    pub object: Object,
    /// Its detail ("" when none).
    pub detail: String,
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

struct Found(Vec<PlannedObject>);

impl Found {
    fn add(&mut self, kind: &str, schema: &str, table: &str, name: &str, detail: &str) {
        self.0.push(PlannedObject {
            object: Object::new(kind, schema, table, name),
            detail: detail.to_string(),
        });
    }

    fn constraint(&mut self, rv: &RangeVar, con: &protobuf::Constraint) {
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
        self.add(
            "constraint",
            &schema_of(rv),
            &rv.relname,
            &con.conname,
            detail,
        );
    }

    fn create_table(&mut self, c: &protobuf::CreateStmt) {
        let Some(rv) = &c.relation else { return };
        let schema = schema_of(rv);
        self.add("table", &schema, "", &rv.relname, "");
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(col)) => {
                    self.add("column", &schema, &rv.relname, &col.colname, "");
                    for k in &col.constraints {
                        if let Some(NodeEnum::Constraint(con)) = k.node.as_ref() {
                            self.constraint(rv, con);
                        }
                    }
                }
                Some(NodeEnum::Constraint(con)) => self.constraint(rv, con),
                _ => {}
            }
        }
    }

    fn alter_table(&mut self, a: &protobuf::AlterTableStmt) {
        let Some(rv) = &a.relation else { return };
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                continue;
            };
            match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(con))
                    if cmd.subtype == protobuf::AlterTableType::AtAddConstraint as i32 =>
                {
                    self.constraint(rv, con)
                }
                Some(NodeEnum::ColumnDef(col))
                    if cmd.subtype == protobuf::AlterTableType::AtAddColumn as i32 =>
                {
                    self.add("column", &schema_of(rv), &rv.relname, &col.colname, "");
                }
                _ => {}
            }
        }
    }

    fn on_table(&mut self, kind: &str, rv: &Option<RangeVar>, name: &str) {
        if let Some(rv) = rv {
            self.add(kind, &schema_of(rv), &rv.relname, name, "");
        }
    }

    fn node(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(c) => self.create_table(c),
            NodeEnum::AlterTableStmt(a) => self.alter_table(a),
            NodeEnum::ViewStmt(v) => {
                if let Some(rv) = &v.view {
                    self.add("view", &schema_of(rv), "", &rv.relname, "");
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rv) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.add("view", &schema_of(rv), "", &rv.relname, "");
                }
            }
            NodeEnum::IndexStmt(i) => self.on_table("index", &i.relation, &i.idxname),
            NodeEnum::CreateFunctionStmt(f) => {
                let (schema, name) = names(&f.funcname);
                self.add("function", &schema, "", &name, "");
            }
            NodeEnum::CreateTrigStmt(t) => self.on_table("trigger", &t.relation, &t.trigname),
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
                self.add("enum", &schema, "", &name, &labels.join(", "));
            }
            NodeEnum::CreatePolicyStmt(p) => self.on_table("policy", &p.table, &p.policy_name),
            _ => {}
        }
    }
}

/// The objects `node` creates, and whether it is a table whose columns come
/// from elsewhere (a partition, an inheritance child, a typed table): its
/// columns are not listed by its statement.
pub fn objects_of(node: &NodeEnum) -> (Vec<PlannedObject>, bool) {
    let mut found = Found(Vec::new());
    found.node(node);
    let inherits = matches!(node, NodeEnum::CreateStmt(c)
        if !c.inh_relations.is_empty() || c.partbound.is_some() || c.of_typename.is_some());
    (found.0, inherits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Statement;

    fn keys(sql: &str) -> Vec<String> {
        let st = Statement::parse(sql).unwrap();
        let mut out: Vec<String> = objects_of(&st.node().unwrap())
            .0
            .into_iter()
            .map(|o| {
                if o.detail.is_empty() {
                    o.object.to_string()
                } else {
                    format!("{} [{}]", o.object, o.detail)
                }
            })
            .collect();
        out.sort();
        out
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
            assert_eq!(keys(sql), *expected, "{sql}");
        }
        let st = Statement::parse("CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES IN (1)")
            .unwrap();
        assert!(
            objects_of(&st.node().unwrap()).1,
            "a partition's columns come from its parent"
        );
    }
}
