//! What differs when the target runs a newer PostgreSQL major than the
//! source, decided from the converted schema: each difference that reaches
//! this migration gets a plan line (what, where, what happens, what to do).
//! A target older than the source is refused: a dump does not go back.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{GrantTargetType, ObjectType};
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};

use super::statements::PlannedStatement;
use crate::error::{Error, Result};
use crate::sql::names::Name;
use crate::sql::Statement;

/// One difference between the source's major and the target's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionNote {
    /// The target major that brought it.
    pub since: u32,
    /// What differs.
    pub what: String,
    /// What it means for this migration.
    pub happens: String,
    /// What the user should do ("" when nothing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub todo: String,
}

/// Refuses a target older than the source.
pub fn check_order(source_major: u32, target_major: u32) -> Result<()> {
    if target_major >= source_major || source_major == 0 || target_major == 0 {
        return Ok(());
    }
    Err(Error::invalid_input(format!(
        "the target runs PostgreSQL {target_major}, older than the source's {source_major}: \
         a schema and its data do not move to an older major"
    ))
    .with_hint(format!(
        "create the target on PostgreSQL {source_major} or newer (RDS: --engine-version {source_major} or later)"
    )))
}

/// The differences between `source_major` and `target_major` that reach
/// the converted `statements`.
pub fn differences(
    source_major: u32,
    target_major: u32,
    statements: &[PlannedStatement],
) -> Vec<VersionNote> {
    let mut out = Vec::new();
    if source_major == target_major || source_major == 0 || target_major == 0 {
        return out;
    }
    out.push(VersionNote {
        since: target_major,
        what: format!("PostgreSQL {source_major} → {target_major}"),
        happens: "every table is copied in text form (binary COPY is only stable within a major) \
                  and verify compares rows by their text form"
            .into(),
        todo: String::new(),
    });
    let parsed: Vec<Statement> = statements
        .iter()
        .filter_map(|s| Statement::parse(s.sql.trim_end().trim_end_matches(';')).ok())
        .collect();
    let crosses = |major: u32| source_major < major && target_major >= major;
    if crosses(17) {
        out.extend(maintain(&parsed));
        out.extend(safe_search_path(statements, &parsed));
    }
    out
}

/// 17 adds MAINTAIN to the privileges `GRANT ALL ON TABLE` gives.
fn maintain(parsed: &[Statement]) -> Option<VersionNote> {
    let mut grantees: BTreeMap<String, usize> = BTreeMap::new();
    for st in parsed {
        let Some(NodeEnum::GrantStmt(g)) = st.node() else {
            continue;
        };
        let all_on_tables = g.is_grant
            && g.privileges.is_empty()
            && g.objtype == ObjectType::ObjectTable as i32
            && (g.targtype == GrantTargetType::AclTargetObject as i32
                || g.targtype == GrantTargetType::AclTargetAllInSchema as i32);
        if !all_on_tables {
            continue;
        }
        for r in &g.grantees {
            if let Some(NodeEnum::RoleSpec(spec)) = r.node.as_ref() {
                let name = if spec.rolename.is_empty() {
                    "PUBLIC".to_string()
                } else {
                    spec.rolename.clone()
                };
                *grantees.entry(name).or_default() += 1;
            }
        }
    }
    if grantees.is_empty() {
        return None;
    }
    let list = grantees
        .iter()
        .map(|(r, n)| format!("{r} ({n} tables)"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(VersionNote {
        since: 17,
        what: "GRANT ALL ON TABLE includes MAINTAIN (VACUUM, ANALYZE, REINDEX, CLUSTER, \
               REFRESH MATERIALIZED VIEW, LOCK TABLE)"
            .into(),
        happens: format!("the grants of ALL are applied as written, so these roles may also maintain those tables: {list}"),
        todo: "if they must not, revoke it after the run: REVOKE MAINTAIN ON ALL TABLES IN SCHEMA <schema> FROM <role>".into(),
    })
}

/// 17 runs index builds, REFRESH MATERIALIZED VIEW, VACUUM and ANALYZE with
/// `search_path = pg_catalog, pg_temp`: a function of an index or a
/// materialized view that names objects without their schema and sets no
/// search_path of its own stops resolving them there.
fn safe_search_path(statements: &[PlannedStatement], parsed: &[Statement]) -> Option<VersionNote> {
    let (defined, user_functions) = defined_functions(statements, parsed);
    let users = function_users(parsed, &defined);
    let mut found = Vec::new();
    for (func, used_by) in users {
        let (sets_path, bare) = &defined[&func];
        let bare: Vec<&String> = bare
            .iter()
            .filter(|b| match b.strip_suffix("()") {
                Some(f) => user_functions.contains(f),
                None => true,
            })
            .collect();
        if *sets_path || bare.is_empty() {
            continue;
        }
        found.push(format!(
            "{func} (used by {}; names {} without a schema)",
            used_by.into_iter().collect::<Vec<_>>().join(", "),
            bare.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if found.is_empty() {
        return None;
    }
    Some(VersionNote {
        since: 17,
        what: "index builds, REFRESH MATERIALIZED VIEW, VACUUM and ANALYZE run with search_path pg_catalog, pg_temp".into(),
        happens: format!(
            "these functions are applied as written and may fail to resolve their names there: {}",
            found.join("; ")
        ),
        todo: "give each `SET search_path = …` (ALTER FUNCTION … SET search_path) or qualify the names in its body".into(),
    })
}

/// Each function the schema defines → (whether it sets search_path, the
/// relations and `functions()` its body names without a schema); and the
/// bare names of all of them.
type Defined = BTreeMap<Name, (bool, BTreeSet<String>)>;

fn defined_functions(
    statements: &[PlannedStatement],
    parsed: &[Statement],
) -> (Defined, BTreeSet<String>) {
    let mut defined: Defined = BTreeMap::new();
    let mut user_functions: BTreeSet<String> = BTreeSet::new();
    for (planned, st) in statements.iter().zip(parsed) {
        let Some(NodeEnum::CreateFunctionStmt(f)) = st.node() else {
            continue;
        };
        let Some(name) = Name::from_parts(&crate::sql::parts(&f.funcname)) else {
            continue;
        };
        user_functions.insert(name.name.clone());
        let sets_path = f.options.iter().any(|o| match o.node.as_ref() {
            Some(NodeEnum::DefElem(d)) if d.defname == "set" => matches!(
                d.arg.as_ref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::VariableSetStmt(v)) if v.name == "search_path"
            ),
            _ => false,
        });
        let mut bare = BTreeSet::new();
        if let Some(uses) = &planned.uses {
            bare.extend(
                uses.relations
                    .iter()
                    .filter(|n| n.schema.is_empty())
                    .map(|n| n.name.clone()),
            );
            bare.extend(
                uses.functions
                    .iter()
                    .filter(|n| n.schema.is_empty())
                    .map(|n| format!("{}()", n.name)),
            );
        }
        defined.insert(name, (sets_path, bare));
    }
    (defined, user_functions)
}

/// The schema's functions called by an index or a materialized view, with
/// what calls them. Bare calls count only when they call a function of the
/// schema (a built-in resolves in pg_catalog, which stays on the path).
fn function_users(parsed: &[Statement], defined: &Defined) -> BTreeMap<Name, BTreeSet<String>> {
    let mut users: BTreeMap<Name, BTreeSet<String>> = BTreeMap::new();
    for st in parsed {
        let node = st.node();
        let (what, node) = match &node {
            Some(n @ NodeEnum::IndexStmt(i)) => (format!("index {}", i.idxname), n),
            Some(n @ NodeEnum::CreateTableAsStmt(c))
                if c.objtype == ObjectType::ObjectMatview as i32 =>
            {
                let rel = c.into.as_ref().and_then(|i| i.rel.as_ref());
                (
                    format!(
                        "materialized view {}",
                        rel.map(crate::sql::rangevar_name).unwrap_or_default()
                    ),
                    n,
                )
            }
            _ => continue,
        };
        for f in crate::sql::uses::of_node(node).functions {
            let hit = defined
                .keys()
                .find(|d| d.name == f.name && (f.schema.is_empty() || f.schema == d.schema));
            if let Some(d) = hit {
                users.entry(d.clone()).or_default().insert(what.clone());
            }
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::statements::{classify, Section};

    fn planned(sql: &[&str]) -> Vec<PlannedStatement> {
        sql.iter()
            .map(|s| {
                let st = Statement::parse(s).unwrap();
                classify(&st, Section::PreData, format!("{s};"))
            })
            .collect()
    }

    const SCHEMA: &[&str] = &[
        "CREATE FUNCTION public.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ select lower(t) || (select max(x) from lookup) $$",
        "CREATE FUNCTION public.safe(t text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = public AS $$ select (select max(x) from lookup) $$",
        "CREATE FUNCTION public.builtin_only(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ select lower(t) $$",
        "CREATE INDEX a ON public.t USING btree (public.norm(name))",
        "CREATE INDEX b ON public.t USING btree (public.safe(name))",
        "CREATE INDEX c ON public.t USING btree (public.builtin_only(name))",
        "GRANT ALL ON TABLE public.t TO anon",
        "GRANT ALL ON TABLE public.u TO anon",
        "GRANT SELECT ON TABLE public.t TO reader",
        "GRANT ALL ON TABLE public.t TO authenticated",
    ];

    /// (source, target) → the `what` of each note, in order.
    #[test]
    fn notes_by_version_pair() {
        let statements = planned(SCHEMA);
        let cases: &[(u32, u32, &[&str])] = &[
            (15, 15, &[]),
            (15, 16, &["PostgreSQL 15 → 16"]),
            (
                15,
                17,
                &[
                    "PostgreSQL 15 → 17",
                    "GRANT ALL ON TABLE includes MAINTAIN",
                    "index builds, REFRESH MATERIALIZED VIEW",
                ],
            ),
            (
                15,
                18,
                &[
                    "PostgreSQL 15 → 18",
                    "GRANT ALL ON TABLE includes MAINTAIN",
                    "index builds, REFRESH MATERIALIZED VIEW",
                ],
            ),
            (17, 18, &["PostgreSQL 17 → 18"]),
        ];
        for (s, t, want) in cases {
            let got = differences(*s, *t, &statements);
            assert_eq!(got.len(), want.len(), "{s} → {t}: {got:#?}");
            for (n, w) in got.iter().zip(want.iter()) {
                assert!(n.what.starts_with(w), "{s} → {t}: {} is not {w}", n.what);
            }
        }
    }

    #[test]
    fn notes_name_the_roles_and_the_functions() {
        let got = differences(15, 17, &planned(SCHEMA));
        assert!(
            got[1]
                .happens
                .contains("anon (2 tables), authenticated (1 tables)"),
            "{}",
            got[1].happens
        );
        assert!(!got[1].happens.contains("reader"));
        let f = &got[2].happens;
        assert!(
            f.contains("public.norm (used by index a; names lookup without a schema)"),
            "{f}"
        );
        assert!(
            !f.contains("public.safe") && !f.contains("builtin_only"),
            "{f}"
        );
    }

    #[test]
    fn an_older_target_is_refused() {
        let e = check_order(17, 15).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
        assert!(e
            .message()
            .contains("PostgreSQL 15, older than the source's 17"));
        for (s, t) in [(15, 15), (15, 17), (15, 18)] {
            check_order(s, t).unwrap();
        }
    }
}
