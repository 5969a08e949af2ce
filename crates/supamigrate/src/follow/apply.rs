//! Turning decoded changes into SQL on the target, through the plan's table
//! mappings: `auth.users` changes land in `app_users` under its column
//! names, columns the plan leaves out stay out, generated columns are never
//! sent by pgoutput, and a TOASTed value an UPDATE did not touch keeps the
//! target's value. A change the plan cannot place (a table it does not copy,
//! a column added or dropped on the source since the plan) stops the follow
//! with the object named: nothing is applied wrongly.

use std::collections::HashMap;

use super::pgoutput::{Change, Relation, Tuple, Value};
use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal, TableName};
use crate::plan::copy::TableMapping;

/// A source relation bound to its target table.
#[derive(Debug, Clone)]
struct Bound {
    source: TableName,
    target: TableName,
    /// Per column of the relation: its target column, `None` when the plan
    /// leaves it out.
    columns: Vec<Option<String>>,
    /// Indices of the replica identity's columns.
    key: Vec<usize>,
    /// Replica identity full: the old row is matched on every column.
    full: bool,
    /// A partitioned table (changes come through its root).
    partitioned: bool,
}

/// One statement of a transaction and how many rows it must touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// Rows it must affect (`None`: any number, as for TRUNCATE).
    pub rows: Option<u64>,
    /// The target table, for messages.
    pub table: TableName,
    /// The target's key columns (empty: no key to record, as under replica
    /// identity full or for TRUNCATE).
    pub key_columns: Vec<String>,
    /// The keys (as text, in `key_columns` order) of the rows it changes:
    /// the cutover compares those rows on both sides.
    pub keys: Vec<Vec<String>>,
    /// The target tables a TRUNCATE empties.
    pub truncated: Vec<TableName>,
}

/// The mappings and the relations seen so far on the stream.
#[derive(Debug)]
pub struct Applier {
    mappings: HashMap<TableName, TableMapping>,
    relations: HashMap<u32, Bound>,
}

impl Applier {
    /// An applier for the plan's tables.
    pub fn new(mappings: &[TableMapping]) -> Applier {
        Applier {
            mappings: mappings
                .iter()
                .map(|m| (m.source.clone(), m.clone()))
                .collect(),
            relations: HashMap::new(),
        }
    }

    /// The statements for one change (none for a Relation, which is
    /// remembered and checked against the plan).
    pub fn statements(&mut self, change: Change) -> Result<Vec<Statement>> {
        match change {
            Change::Relation(rel) => {
                let bound = self.bind(&rel)?;
                self.relations.insert(rel.oid, bound);
                Ok(vec![])
            }
            Change::Insert { rel, new } => self.insert(rel, &new),
            Change::Update { rel, old, new } => self.update(rel, old.as_ref(), &new),
            Change::Delete { rel, old } => {
                let b = self.bound(rel)?;
                let filter = b.filter(&old, true)?;
                Ok(vec![Statement {
                    sql: format!("delete from {} where {filter}", b.target.quoted()),
                    rows: Some(1),
                    table: b.target.clone(),
                    key_columns: b.key_columns(),
                    keys: b.key_of(&old).into_iter().collect(),
                    truncated: Vec::new(),
                }])
            }
            Change::Truncate {
                restart_identity,
                rels,
                ..
            } => self.truncate(&rels, restart_identity),
            Change::Other(_) => Ok(vec![]),
        }
    }

    fn insert(&self, rel: u32, new: &Tuple) -> Result<Vec<Statement>> {
        let b = self.bound(rel)?;
        let (cols, vals): (Vec<String>, Vec<String>) = b
            .columns
            .iter()
            .zip(new)
            .filter_map(|(c, v)| Some((quote_ident(c.as_ref()?), literal(v)?)))
            .unzip();
        Ok(vec![Statement {
            sql: format!(
                "insert into {} ({}) values ({})",
                b.target.quoted(),
                cols.join(", "),
                vals.join(", ")
            ),
            rows: Some(1),
            table: b.target.clone(),
            key_columns: b.key_columns(),
            keys: b.key_of(new).into_iter().collect(),
            truncated: Vec::new(),
        }])
    }

    fn update(&self, rel: u32, old: Option<&Tuple>, new: &Tuple) -> Result<Vec<Statement>> {
        let b = self.bound(rel)?;
        let sets: Vec<String> = b
            .columns
            .iter()
            .zip(new)
            .filter_map(|(c, v)| Some(format!("{} = {}", quote_ident(c.as_ref()?), literal(v)?)))
            .collect();
        let filter = b.filter(old.unwrap_or(new), old.is_some())?;
        if sets.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![Statement {
            sql: format!(
                "update {} set {} where {filter}",
                b.target.quoted(),
                sets.join(", ")
            ),
            rows: Some(1),
            table: b.target.clone(),
            key_columns: b.key_columns(),
            keys: old
                .and_then(|o| b.key_of(o))
                .into_iter()
                .chain(b.key_of(new))
                .collect(),
            truncated: Vec::new(),
        }])
    }

    fn truncate(&self, rels: &[u32], restart_identity: bool) -> Result<Vec<Statement>> {
        let targets = rels
            .iter()
            .map(|r| self.bound(*r).map(|b| (b.target.clone(), b.partitioned)))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = targets.first().map(|t| t.0.clone()) else {
            return Ok(vec![]);
        };
        let list: Vec<String> = targets
            .iter()
            .map(|(t, partitioned)| {
                let only = if *partitioned { "" } else { "only " };
                format!("{only}{}", t.quoted())
            })
            .collect();
        let restart = if restart_identity {
            " restart identity"
        } else {
            ""
        };
        Ok(vec![Statement {
            sql: format!("truncate {}{restart}", list.join(", ")),
            rows: None,
            table: first,
            key_columns: Vec::new(),
            keys: Vec::new(),
            truncated: targets.into_iter().map(|t| t.0).collect(),
        }])
    }

    fn bound(&self, rel: u32) -> Result<&Bound> {
        self.relations.get(&rel).ok_or_else(|| {
            Error::internal(format!(
                "the change stream sent a change of relation {rel} before describing it"
            ))
        })
    }

    /// Checks a Relation against the plan: the table must be one the plan
    /// copies, with the columns it had when planned.
    fn bind(&self, rel: &Relation) -> Result<Bound> {
        let source = TableName::new(&rel.schema, &rel.name);
        let Some(m) = self.mappings.get(&source) else {
            return Err(changed(format!(
                "{source} is in the change stream but not in the plan"
            )));
        };
        let mut columns = Vec::with_capacity(rel.columns.len());
        for c in &rel.columns {
            let pair = m.columns.iter().find(|p| p.source == c.name);
            let left_out = m.left_out.iter().any(|l| l.column == c.name);
            match (pair, left_out) {
                (Some(p), _) => columns.push(Some(p.target.clone())),
                (None, true) => columns.push(None),
                (None, false) => {
                    return Err(changed(format!(
                        "column {:?} of {source} is not in the plan (added on the source since it was planned)",
                        c.name
                    )))
                }
            }
        }
        for p in &m.columns {
            if !rel.columns.iter().any(|c| c.name == p.source) {
                return Err(changed(format!(
                    "column {:?} of {source} is no longer sent (dropped or renamed on the source since the plan)",
                    p.source
                )));
            }
        }
        let full = rel.replica_identity == b'f';
        let key: Vec<usize> = if full {
            (0..rel.columns.len())
                .filter(|i| columns[*i].is_some())
                .collect()
        } else {
            (0..rel.columns.len())
                .filter(|i| rel.columns[*i].key)
                .collect()
        };
        if key.is_empty() || key.iter().any(|i| columns[*i].is_none()) {
            return Err(changed(format!(
                "{source} has no replica identity the target can match rows on"
            ))
            .with_hint(
                "give it a primary key (or REPLICA IDENTITY FULL) and start over with a fresh copy",
            ));
        }
        Ok(Bound {
            source,
            target: m.target.clone(),
            columns,
            key,
            full,
            partitioned: m.partitioned,
        })
    }
}

impl Bound {
    /// The target's key columns; none under replica identity full.
    fn key_columns(&self) -> Vec<String> {
        if self.full {
            return Vec::new();
        }
        self.key
            .iter()
            .filter_map(|&i| self.columns[i].clone())
            .collect()
    }

    /// The key of `row` as text (`None` under replica identity full, or when
    /// the tuple holds no value for a key column, as an old tuple that only
    /// carries the key when it changed).
    fn key_of(&self, row: &Tuple) -> Option<Vec<String>> {
        if self.full {
            return None;
        }
        self.key
            .iter()
            .map(|&i| match row.get(i) {
                Some(Value::Text(t)) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// The WHERE condition that finds the row `old` (or the key part of it)
    /// on the target.
    fn filter(&self, old: &Tuple, has_old: bool) -> Result<String> {
        let mut parts = Vec::with_capacity(self.key.len());
        for &i in &self.key {
            let Some(col) = self.columns[i].as_ref() else {
                continue;
            };
            let v = old.get(i).ok_or_else(|| {
                Error::internal(format!("a change of {} has too few columns", self.source))
            })?;
            let col = quote_ident(col);
            parts.push(match v {
                Value::Null if self.full => format!("{col} is null"),
                Value::Text(t) if self.full => format!("{col}::text = {}", quote_literal(t)),
                Value::Text(t) => format!("{col} = {}", quote_literal(t)),
                // Replica identity full with a TOASTed value left unsent
                // (an UPDATE without the old row): the other columns decide.
                Value::Unchanged if self.full && has_old => continue,
                _ => {
                    return Err(Error::internal(format!(
                        "a change of {} has no value for its key column {col}",
                        self.source
                    )))
                }
            });
        }
        if self.full {
            Ok(format!(
                "ctid = (select ctid from {} where {} limit 1)",
                self.target.quoted(),
                parts.join(" and ")
            ))
        } else {
            Ok(parts.join(" and "))
        }
    }
}

fn literal(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Unchanged => None,
        Value::Text(t) => Some(quote_literal(t)),
    }
}

fn changed(what: String) -> Error {
    Error::invalid_input(format!(
        "the source's schema changed while following: {what}; the follow stopped before applying it, and nothing of that transaction reached the target"
    ))
    .with_hint("the follow cannot go past that transaction: give the source's schema time to settle, then start over on a fresh target database with a plan made after the change (`supamigrate plan`, then `copy --follow`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::pgoutput::RelColumn;
    use crate::plan::copy::LeftOut;
    use crate::plan::users::ColumnPair;

    fn mapping() -> TableMapping {
        TableMapping {
            source: TableName::new("auth", "users"),
            target: TableName::new("public", "app_users"),
            columns: vec![
                ColumnPair {
                    source: "id".into(),
                    target: "id".into(),
                },
                ColumnPair {
                    source: "raw_user_meta_data".into(),
                    target: "profile".into(),
                },
            ],
            left_out: vec![LeftOut {
                column: "secret".into(),
                reason: "test".into(),
            }],
            binary: false,
            partitioned: false,
            bytes: 0,
            pages: 0,
            est_rows: 0,
        }
    }

    fn rel(cols: &[(&str, bool)], identity: u8) -> Change {
        Change::Relation(Relation {
            oid: 9,
            schema: "auth".into(),
            name: "users".into(),
            replica_identity: identity,
            columns: cols
                .iter()
                .map(|(n, k)| RelColumn {
                    key: *k,
                    name: n.to_string(),
                    type_oid: 25,
                })
                .collect(),
        })
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn changes_go_through_the_mapping() {
        let mut a = Applier::new(&[mapping()]);
        let cols = [
            ("id", true),
            ("raw_user_meta_data", false),
            ("secret", false),
        ];
        assert!(a.statements(rel(&cols, b'd')).unwrap().is_empty());
        let cases: Vec<(Change, &str, &[&[&str]])> = vec![
            (
                Change::Insert {
                    rel: 9,
                    new: vec![t("1"), t("{\"a\": \"it's\"}"), t("s")],
                },
                r#"insert into "public"."app_users" ("id", "profile") values ('1', '{"a": "it''s"}')"#,
                &[&["1"]],
            ),
            (
                Change::Update {
                    rel: 9,
                    old: None,
                    new: vec![t("1"), Value::Unchanged, t("s")],
                },
                // The TOASTed value left alone keeps the target's; the
                // left-out column stays out.
                r#"update "public"."app_users" set "id" = '1' where "id" = '1'"#,
                &[&["1"]],
            ),
            (
                Change::Update {
                    rel: 9,
                    old: Some(vec![t("1"), Value::Null, Value::Null]),
                    new: vec![t("2"), Value::Unchanged, Value::Null],
                },
                r#"update "public"."app_users" set "id" = '2' where "id" = '1'"#,
                // A changed key: both rows are compared at cutover.
                &[&["1"], &["2"]],
            ),
            (
                Change::Delete {
                    rel: 9,
                    old: vec![t("2"), Value::Null, Value::Null],
                },
                r#"delete from "public"."app_users" where "id" = '2'"#,
                &[&["2"]],
            ),
            (
                Change::Truncate {
                    cascade: false,
                    restart_identity: true,
                    rels: vec![9],
                },
                r#"truncate only "public"."app_users" restart identity"#,
                &[],
            ),
        ];
        for (change, want, keys) in cases {
            let got = a.statements(change).unwrap();
            let sql: Vec<&str> = got.iter().map(|s| s.sql.as_str()).collect();
            assert_eq!(sql.join(";"), want);
            let got_keys: Vec<Vec<String>> = got.iter().flat_map(|s| s.keys.clone()).collect();
            let want_keys: Vec<Vec<String>> = keys
                .iter()
                .map(|k| k.iter().map(|v| v.to_string()).collect())
                .collect();
            assert_eq!(got_keys, want_keys, "{want}");
        }
    }

    #[test]
    fn replica_identity_full_matches_the_whole_row() {
        let mut a = Applier::new(&[mapping()]);
        a.statements(rel(
            &[
                ("id", false),
                ("raw_user_meta_data", false),
                ("secret", false),
            ],
            b'f',
        ))
        .unwrap();
        let s = a
            .statements(Change::Delete {
                rel: 9,
                old: vec![t("5"), Value::Null, t("x")],
            })
            .unwrap();
        assert_eq!(
            s[0].sql,
            r#"delete from "public"."app_users" where ctid = (select ctid from "public"."app_users" where "id"::text = '5' and "profile" is null limit 1)"#
        );
        // No key to record: the cutover counts such a table instead.
        assert!(s[0].keys.is_empty() && s[0].key_columns.is_empty());
    }

    #[test]
    fn schema_changes_stop_with_the_object_named() {
        for (cols, named) in [
            (
                vec![
                    ("id", true),
                    ("raw_user_meta_data", false),
                    ("secret", false),
                    ("nickname", false),
                ],
                "nickname",
            ),
            (vec![("id", true), ("secret", false)], "raw_user_meta_data"),
        ] {
            let mut a = Applier::new(&[mapping()]);
            let e = a.statements(rel(&cols, b'd')).unwrap_err().to_string();
            assert!(e.contains(named) && e.contains("auth.users"), "{e}");
        }
        let mut a = Applier::new(&[]);
        let e = a
            .statements(rel(&[("id", true)], b'd'))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the plan"), "{e}");
        let mut a = Applier::new(&[mapping()]);
        let e = a
            .statements(rel(
                &[
                    ("id", false),
                    ("raw_user_meta_data", false),
                    ("secret", false),
                ],
                b'n',
            ))
            .unwrap_err()
            .to_string();
        assert!(e.contains("replica identity"), "{e}");
    }
}
