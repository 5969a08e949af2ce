//! `COMMENT ON …` statements follow what they comment on: a comment on an
//! object the conversion leaves out (a dropped policy, a table of a gone
//! extension, a column left behind) is left out with it, and says why.
//!
//! pg_dump writes each comment right after the statement that creates its
//! object, so one pass in dump order sees the object's fate first.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, ObjectType};
use pg_query::NodeEnum;

use crate::sql::{parts, rangevar_name, Statement};

/// What the statements seen so far created or left out, by object key
/// (`relation public.t`, `policy p on public.t`…).
#[derive(Debug, Default)]
pub(super) struct Fates {
    left_out: BTreeMap<String, String>,
}

impl Fates {
    /// Records the fate of what `st` creates, `key` being
    /// [`created_key`]`(st)` taken before it was converted: left out for
    /// `why`, or kept (`None`: an object left out earlier under the same
    /// name, an overload, is there after all).
    pub(super) fn record(&mut self, key: Option<String>, why: Option<&str>) {
        let Some(key) = key else { return };
        match why {
            Some(why) => {
                self.left_out.insert(key, why.to_string());
            }
            None => {
                self.left_out.remove(&key);
            }
        }
    }

    /// Why comment `st` must be left out, when it must: its object is, or
    /// (for a column) the column is.
    pub(super) fn comment_left_out(
        &self,
        st: &Statement,
        dropped_columns: &BTreeSet<String>,
    ) -> Option<String> {
        let Some(NodeEnum::CommentStmt(c)) = st.node() else {
            return None;
        };
        let (key, column) = comment_target(&c)?;
        if let Some(column) = column {
            if dropped_columns.contains(&column) {
                return Some(format!(
                    "comments on column {column}, which is left out with its extension"
                ));
            }
        }
        self.left_out
            .get(&key)
            .map(|why| format!("comments on {key}, which is left out ({why})"))
    }
}

/// The key of the object `st` creates, in the form comments name it.
pub(super) fn created_key(st: &Statement) -> Option<String> {
    let relation = |rv: &Option<protobuf::RangeVar>| {
        rv.as_ref()
            .map(|r| format!("relation {}", rangevar_name(r)))
    };
    let on = |kind: &str, name: &str, rv: &Option<protobuf::RangeVar>| {
        rv.as_ref()
            .map(|r| format!("{kind} {name} on {}", rangevar_name(r)))
    };
    match st.node()? {
        NodeEnum::CreateStmt(c) => relation(&c.relation),
        NodeEnum::ViewStmt(v) => relation(&v.view),
        NodeEnum::CreateSeqStmt(s) => relation(&s.sequence),
        NodeEnum::CreateTableAsStmt(c) => relation(&c.into.as_ref().and_then(|i| i.rel.clone())),
        NodeEnum::CreateForeignTableStmt(f) => {
            relation(&f.base_stmt.as_ref().and_then(|b| b.relation.clone()))
        }
        NodeEnum::CreateFunctionStmt(f) => {
            Some(format!("function {}", parts(&f.funcname).join(".")))
        }
        NodeEnum::CreatePolicyStmt(p) => on("policy", &p.policy_name, &p.table),
        NodeEnum::CreateTrigStmt(t) => on("trigger", &t.trigname, &t.relation),
        NodeEnum::RuleStmt(r) => on("rule", &r.rulename, &r.relation),
        NodeEnum::IndexStmt(i) => i.relation.as_ref().map(|r| {
            let schema = if r.schemaname.is_empty() {
                String::new()
            } else {
                format!("{}.", r.schemaname)
            };
            format!("index {schema}{}", i.idxname)
        }),
        NodeEnum::AlterTableStmt(a) => a.cmds.iter().find_map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd)) => {
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::Constraint(con)) if !con.conname.is_empty() => {
                        on("constraint", &con.conname, &a.relation)
                    }
                    _ => None,
                }
            }
            _ => None,
        }),
        NodeEnum::CreateEnumStmt(e) => Some(format!("type {}", parts(&e.type_name).join("."))),
        NodeEnum::CreateDomainStmt(d) => Some(format!("type {}", parts(&d.domainname).join("."))),
        NodeEnum::CreateRangeStmt(r) => Some(format!("type {}", parts(&r.type_name).join("."))),
        NodeEnum::CompositeTypeStmt(c) => c
            .typevar
            .as_ref()
            .map(|r| format!("type {}", rangevar_name(r))),
        NodeEnum::CreatePublicationStmt(p) => Some(format!("publication {}", p.pubname)),
        NodeEnum::CreateEventTrigStmt(e) => Some(format!("event trigger {}", e.trigname)),
        NodeEnum::CreateSchemaStmt(s) => Some(format!("schema {}", s.schemaname)),
        _ => None,
    }
}

/// The key of what comment `c` is on, and for a column comment the column
/// (`schema.table.column`).
fn comment_target(c: &protobuf::CommentStmt) -> Option<(String, Option<String>)> {
    let object = c.object.as_ref()?.node.as_ref()?;
    let names = |n: &NodeEnum| match n {
        NodeEnum::List(l) => parts(&l.items),
        NodeEnum::String(s) => vec![s.sval.clone()],
        _ => Vec::new(),
    };
    let kind = ObjectType::try_from(c.objtype).ok()?;
    use ObjectType as O;
    let key = match kind {
        O::ObjectTable
        | O::ObjectView
        | O::ObjectMatview
        | O::ObjectForeignTable
        | O::ObjectSequence => {
            format!("relation {}", names(object).join("."))
        }
        O::ObjectColumn => {
            let n = names(object);
            let (table, _) = n.split_at(n.len().checked_sub(1)?);
            return Some((format!("relation {}", table.join(".")), Some(n.join("."))));
        }
        O::ObjectPolicy | O::ObjectTrigger | O::ObjectRule | O::ObjectTabconstraint => {
            let n = names(object);
            let (table, name) = n.split_at(n.len().checked_sub(1)?);
            let what = match kind {
                O::ObjectPolicy => "policy",
                O::ObjectTrigger => "trigger",
                O::ObjectRule => "rule",
                _ => "constraint",
            };
            format!("{what} {} on {}", name.first()?, table.join("."))
        }
        O::ObjectIndex => format!("index {}", names(object).join(".")),
        O::ObjectFunction | O::ObjectProcedure | O::ObjectRoutine | O::ObjectAggregate => {
            let NodeEnum::ObjectWithArgs(o) = object else {
                return None;
            };
            format!("function {}", parts(&o.objname).join("."))
        }
        O::ObjectType | O::ObjectDomain => {
            let NodeEnum::TypeName(t) = object else {
                return None;
            };
            format!("type {}", parts(&t.names).join("."))
        }
        O::ObjectPublication => format!("publication {}", names(object).join(".")),
        O::ObjectEventTrigger => format!("event trigger {}", names(object).join(".")),
        O::ObjectSchema => format!("schema {}", names(object).join(".")),
        _ => return None,
    };
    Some((key, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(sql: &str) -> Statement {
        crate::sql::split(sql).expect("parses").0.remove(0)
    }

    /// (statements before, the comment, left out?): each object kind whose
    /// creating statement was left out takes its comment with it.
    #[test]
    fn comments_follow_their_objects() {
        let cases: &[(&str, &str, bool)] = &[
            ("CREATE TABLE public.t (a int)", "COMMENT ON TABLE public.t IS 'x'", true),
            ("CREATE TABLE public.t (a int)", "COMMENT ON COLUMN public.t.a IS 'x'", true),
            ("CREATE TABLE public.t (a int)", "COMMENT ON TABLE public.u IS 'x'", false),
            ("CREATE VIEW public.v AS SELECT 1", "COMMENT ON VIEW public.v IS 'x'", true),
            ("CREATE MATERIALIZED VIEW public.m AS SELECT 1", "COMMENT ON MATERIALIZED VIEW public.m IS 'x'", true),
            ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1'", "COMMENT ON FUNCTION public.f() IS 'x'", true),
            ("CREATE POLICY p ON public.t USING (true)", "COMMENT ON POLICY p ON public.t IS 'x'", true),
            ("CREATE POLICY p ON public.t USING (true)", "COMMENT ON POLICY q ON public.t IS 'x'", false),
            ("CREATE TRIGGER tr AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()", "COMMENT ON TRIGGER tr ON public.t IS 'x'", true),
            ("CREATE INDEX i ON public.t (a)", "COMMENT ON INDEX public.i IS 'x'", true),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (a > 0)", "COMMENT ON CONSTRAINT c ON public.t IS 'x'", true),
            ("CREATE TYPE public.e AS ENUM ('a')", "COMMENT ON TYPE public.e IS 'x'", true),
            ("CREATE DOMAIN public.d AS int", "COMMENT ON DOMAIN public.d IS 'x'", true),
            ("CREATE PUBLICATION feed FOR ALL TABLES", "COMMENT ON PUBLICATION feed IS 'x'", true),
            ("CREATE SCHEMA app", "COMMENT ON SCHEMA app IS 'x'", true),
        ];
        for (object, comment, left_out) in cases {
            let mut fates = Fates::default();
            fates.record(created_key(&st(object)), Some("a reason"));
            let got = fates.comment_left_out(&st(comment), &BTreeSet::new());
            assert_eq!(got.is_some(), *left_out, "{object} / {comment}: {got:?}");
            if let Some(why) = got {
                assert!(why.ends_with("(a reason)"), "{why}");
            }
        }
    }

    #[test]
    fn a_kept_object_keeps_its_comment_and_a_dropped_column_loses_its_own() {
        let mut fates = Fates::default();
        let table = st("CREATE TABLE public.t (a int, v public.vector(3))");
        fates.record(created_key(&table), Some("first"));
        fates.record(created_key(&table), None);
        assert_eq!(
            fates.comment_left_out(&st("COMMENT ON TABLE public.t IS 'x'"), &BTreeSet::new()),
            None
        );
        let dropped: BTreeSet<String> = ["public.t.v".to_string()].into();
        let why = fates
            .comment_left_out(&st("COMMENT ON COLUMN public.t.v IS 'x'"), &dropped)
            .expect("left out");
        assert!(why.contains("column public.t.v"), "{why}");
        assert_eq!(
            fates.comment_left_out(&st("COMMENT ON COLUMN public.t.a IS 'x'"), &dropped),
            None
        );
    }
}
