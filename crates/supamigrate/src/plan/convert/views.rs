//! Views that read `auth.users` with their owner's rights. On Supabase the
//! owner (postgres) bypasses row level security, so such a view shows every
//! user to whoever may read the view. On the target `auth.users` is a
//! `security_invoker` view over `app_users`: read through another view it
//! checks the reader, not the outer view's owner, and the view would show
//! nothing (or be refused). Such a view reads `app_users` directly instead,
//! through a subquery giving `auth.users`' column names: its owner (the
//! master, owner of `app_users`) reads it, as postgres read `auth.users`.
//! Views marked `security_invoker` themselves are left as they are.
//!
//! Whether the owner bypassed row level security is read from the source
//! ([`RowSecurityFacts`]): a view whose owner did not (and where auth.users
//! has row level security) showed no user, or only those auth.users'
//! policies let its owner see; it reads `app_users` with `WHERE false` on
//! the target, never more than before.

use pg_query::protobuf::{self, node::Node as N, Alias, RangeSubselect};
use pg_query::NodeEnum;

use crate::catalog::data::{OwnerSees, RowSecurityFacts};
use crate::error::Result;
use crate::pg::quote_ident;
use crate::plan::users::{UserColumn, APP_USERS};
use crate::sql::Statement;

/// Rewrites `st` (CREATE VIEW / CREATE MATERIALIZED VIEW) when it reads
/// `auth.users` with its owner's rights; what the owner saw of auth.users
/// on the source when it did (every user when `facts` were not read:
/// Supabase's views belong to postgres, which bypasses row level security).
pub(super) fn read_app_users(
    st: &mut Statement,
    columns: &[UserColumn],
    facts: Option<&RowSecurityFacts>,
) -> Result<Option<OwnerSees>> {
    if columns.is_empty() {
        return Ok(None);
    }
    let Some(node) = st.node_mut() else {
        return Ok(None);
    };
    let (query, rel) = match node {
        NodeEnum::ViewStmt(v) if !invoker(&v.options) => (v.query.as_deref_mut(), v.view.as_ref()),
        NodeEnum::CreateTableAsStmt(c)
            if c.objtype == protobuf::ObjectType::ObjectMatview as i32 =>
        {
            (
                c.query.as_deref_mut(),
                c.into.as_ref().and_then(|i| i.rel.as_ref()),
            )
        }
        _ => (None, None),
    };
    let Some(query) = query else {
        return Ok(None);
    };
    let name = rel.map_or_else(String::new, |rv| {
        let schema = if rv.schemaname.is_empty() {
            "public"
        } else {
            rv.schemaname.as_str()
        };
        format!("{schema}.{}", rv.relname)
    });
    let sees = facts.map_or(OwnerSees::Every, |f| f.owner_sees_users(&name));
    let subquery = app_users_select(columns, sees != OwnerSees::Every)?;
    let mut changed = false;
    walk(query, &subquery, &mut changed);
    Ok(changed.then_some(sees))
}

/// `WITH (security_invoker = true)` (or `on`, `1`).
fn invoker(options: &[protobuf::Node]) -> bool {
    options.iter().any(|o| match &o.node {
        Some(N::DefElem(d)) if d.defname == "security_invoker" => {
            let v = d
                .arg
                .as_ref()
                .and_then(|a| a.node.as_ref())
                .map(|n| match n {
                    N::String(s) => s.sval.to_ascii_lowercase(),
                    N::Boolean(b) => b.boolval.to_string(),
                    N::Integer(i) => i.ival.to_string(),
                    _ => String::new(),
                })
                .unwrap_or_else(|| "true".into());
            matches!(v.as_str(), "true" | "on" | "1")
        }
        _ => false,
    })
}

/// `SELECT app_users' columns AS auth.users' names FROM public.app_users`
/// (`WHERE false` when `none`).
fn app_users_select(columns: &[UserColumn], none: bool) -> Result<protobuf::Node> {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("{} AS {}", quote_ident(&c.target), quote_ident(&c.source)))
        .collect();
    let st = Statement::parse(&format!(
        "SELECT {} FROM {APP_USERS}{}",
        cols.join(", "),
        if none { " WHERE false" } else { "" }
    ))?;
    let node = st
        .node()
        .ok_or_else(|| crate::error::Error::internal("the app_users subquery did not parse"))?;
    Ok(protobuf::Node { node: Some(node) })
}

fn is_auth_users(rv: &protobuf::RangeVar) -> bool {
    rv.schemaname == "auth" && rv.relname == "users"
}

/// Replaces every `auth.users` in a FROM position under `n`.
fn walk(n: &mut protobuf::Node, sub: &protobuf::Node, changed: &mut bool) {
    let replace = match &n.node {
        Some(N::RangeVar(rv)) if is_auth_users(rv) => Some(Alias {
            aliasname: rv
                .alias
                .as_ref()
                .map_or_else(|| "users".to_string(), |a| a.aliasname.clone()),
            colnames: rv
                .alias
                .as_ref()
                .map(|a| a.colnames.clone())
                .unwrap_or_default(),
        }),
        _ => None,
    };
    if let Some(alias) = replace {
        n.node = Some(N::RangeSubselect(Box::new(RangeSubselect {
            lateral: false,
            subquery: Some(Box::new(sub.clone())),
            alias: Some(alias),
        })));
        *changed = true;
        return;
    }
    match n.node.as_mut() {
        Some(N::SelectStmt(s)) => walk_select(s, sub, changed),
        Some(node) => {
            for child in children(node) {
                walk(child, sub, changed);
            }
        }
        None => {}
    }
}

/// A SELECT: its lists and clauses, and both sides of a UNION.
fn walk_select(s: &mut protobuf::SelectStmt, sub: &protobuf::Node, changed: &mut bool) {
    let mut nodes: Vec<&mut protobuf::Node> = s.from_clause.iter_mut().collect();
    nodes.extend(s.target_list.iter_mut());
    nodes.extend(s.where_clause.as_deref_mut());
    nodes.extend(s.having_clause.as_deref_mut());
    if let Some(w) = s.with_clause.as_mut() {
        nodes.extend(w.ctes.iter_mut());
    }
    for n in nodes {
        walk(n, sub, changed);
    }
    for side in [s.larg.as_deref_mut(), s.rarg.as_deref_mut()]
        .into_iter()
        .flatten()
    {
        walk_select(side, sub, changed);
    }
}

/// The child nodes a FROM item can hide under, in the shapes views take.
fn children(node: &mut N) -> Vec<&mut protobuf::Node> {
    fn one(b: &mut Option<Box<protobuf::Node>>) -> Option<&mut protobuf::Node> {
        b.as_deref_mut()
    }
    match node {
        N::JoinExpr(j) => [one(&mut j.larg), one(&mut j.rarg), one(&mut j.quals)]
            .into_iter()
            .flatten()
            .collect(),
        N::RangeSubselect(r) => one(&mut r.subquery).into_iter().collect(),
        N::SubLink(l) => [one(&mut l.subselect), one(&mut l.testexpr)]
            .into_iter()
            .flatten()
            .collect(),
        N::CommonTableExpr(c) => one(&mut c.ctequery).into_iter().collect(),
        N::ResTarget(r) => one(&mut r.val).into_iter().collect(),
        N::AExpr(a) => [one(&mut a.lexpr), one(&mut a.rexpr)]
            .into_iter()
            .flatten()
            .collect(),
        N::BoolExpr(b) => b.args.iter_mut().collect(),
        N::FuncCall(f) => f.args.iter_mut().collect(),
        N::CoalesceExpr(c) => c.args.iter_mut().collect(),
        N::CaseExpr(c) => {
            let mut v: Vec<&mut protobuf::Node> = c.args.iter_mut().collect();
            v.extend(one(&mut c.defresult));
            v
        }
        N::CaseWhen(w) => [one(&mut w.expr), one(&mut w.result)]
            .into_iter()
            .flatten()
            .collect(),
        N::NullTest(t) => one(&mut t.arg).into_iter().collect(),
        N::TypeCast(t) => one(&mut t.arg).into_iter().collect(),
        _ => Vec::new(),
    }
}
