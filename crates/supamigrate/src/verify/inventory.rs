//! Schema inventory: the objects the plan created (read from its statements,
//! classified once when the plan was made) against the objects the target's
//! catalog has.
//!
//! Both sides are reduced to the same [`Object`] shape (kind, schema, table,
//! name, detail), so the comparison is a set difference, done without a
//! database ([`planned`] and [`compare`] are pure).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::plan::objects::Object;
use crate::plan::PlannedStatement;

/// Objects with their detail (an enum's labels, a constraint's `NOT VALID`).
pub type Inventory = BTreeMap<Object, String>;

/// Planned against found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryDiff {
    /// Objects the conversion planned.
    pub planned: usize,
    /// Objects found on the target (in the planned schemas).
    pub found: usize,
    /// Planned but not on the target.
    pub missing: Vec<Object>,
    /// On the target but not planned.
    pub unexpected: Vec<Object>,
    /// On both, with a different detail.
    pub different: Vec<Different>,
}

/// An object on both sides whose detail differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Different {
    /// The object.
    pub object: Object,
    /// Its detail as planned.
    pub planned: String,
    /// Its detail as found.
    pub found: String,
}

impl InventoryDiff {
    /// Every planned object is there, as planned, and nothing else.
    pub fn matches(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.different.is_empty()
    }
}

/// The objects `statements` create, and the tables whose columns they do
/// not list (see [`compare`]).
pub fn planned(statements: &[&PlannedStatement]) -> (Inventory, BTreeSet<(String, String)>) {
    let mut out = Inventory::new();
    let mut inherited = BTreeSet::new();
    for st in statements {
        for o in &st.objects {
            if st.inherits && o.object.kind == "table" {
                inherited.insert((o.object.schema.clone(), o.object.name.clone()));
            }
            out.insert(o.object.clone(), o.detail.clone());
        }
    }
    (out, inherited)
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
            Some(d) if d != detail => diff.different.push(Different {
                object: o.clone(),
                planned: detail.clone(),
                found: d.clone(),
            }),
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
    use crate::plan::statements::{added, Section};

    fn object(kind: &str, schema: &str, table: &str, name: &str) -> Object {
        Object::new(kind, schema, table, name)
    }

    #[test]
    fn compare_reports_missing_unexpected_and_different() {
        let stmts: Vec<PlannedStatement> = [
            "CREATE TABLE public.t (id int, a text)",
            "CREATE TABLE public.part PARTITION OF public.parent FOR VALUES IN (1)",
            "CREATE INDEX t_a ON public.t (a)",
            "ALTER TABLE public.t ADD CONSTRAINT t_fk FOREIGN KEY (id) REFERENCES public.u(id)",
            "CREATE TYPE public.e AS ENUM ('x', 'y')",
        ]
        .iter()
        .map(|s| added(s, Section::PreData).unwrap())
        .collect();
        let refs: Vec<&PlannedStatement> = stmts.iter().collect();
        let (plan, inherited) = planned(&refs);
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
        let different: Vec<(Object, &str, &str)> = d
            .different
            .iter()
            .map(|x| (x.object.clone(), x.planned.as_str(), x.found.as_str()))
            .collect();
        assert_eq!(
            different,
            vec![
                (object("constraint", "public", "t", "t_fk"), "", "NOT VALID"),
                (object("enum", "public", "", "e"), "x, y", "x"),
            ]
        );
        assert!(!d.matches());
        assert!(compare(&plan, &inherited, &plan).matches());
    }
}
