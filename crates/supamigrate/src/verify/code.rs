//! Green means the application works: its code on the target resolves what
//! it uses, and its columns keep their NOT NULL and defaults.
//!
//! - Every function, view, policy and trigger the plan created names
//!   relations and functions (read from its parse tree, plpgsql bodies
//!   included, when the plan was made). Each must exist on the target,
//!   unless it does not exist on the source either (then it is the
//!   project's own loose end, not the migration's).
//! - Where `plpgsql_check` is installed in the target database, it checks
//!   every plpgsql function too (trigger functions against their table).
//! - Every SQL function's body is parsed and analyzed on the target by
//!   PostgreSQL's own validator, as `CREATE FUNCTION` does when
//!   `check_function_bodies` is on (a dump turns it off): a body naming a
//!   column the target lacks fails here, not when the application calls it.
//!   One that fails on the source as well is the project's own loose end.
//! - Every column of a table on both sides has the same NOT NULL and
//!   default (or generation expression), but where the plan changed them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::plan::PlannedStatement;
use crate::sql::uses::Name;

/// A reference an object makes that does not resolve on the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unresolved {
    /// The object (`function public.f`).
    pub object: String,
    /// What it uses that is missing (`relation auth.identities`).
    pub reference: String,
}

/// An error `plpgsql_check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyError {
    /// The function.
    pub function: String,
    /// The line in its body.
    pub line: Option<i32>,
    /// The message.
    pub message: String,
}

/// A column whose NOT NULL or default differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDifference {
    /// `schema.table.column`.
    pub column: String,
    /// `NOT NULL` or `default`.
    pub what: String,
    /// On the source.
    pub source: String,
    /// On the target.
    pub target: String,
}

/// What the code check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeReport {
    /// Objects whose references were checked.
    pub objects: usize,
    /// References that do not resolve on the target.
    pub unresolved: Vec<Unresolved>,
    /// Whether plpgsql_check ran.
    pub plpgsql_check: bool,
    /// Functions it checked.
    pub bodies_checked: usize,
    /// Errors it found.
    pub body_errors: Vec<BodyError>,
    /// SQL functions validated.
    #[serde(default)]
    pub sql_checked: usize,
    /// SQL functions whose body does not compile on the target (and does on
    /// the source).
    #[serde(default)]
    pub sql_errors: Vec<BodyError>,
    /// Columns compared.
    pub columns: usize,
    /// Columns whose NOT NULL or default differ.
    pub column_differences: Vec<ColumnDifference>,
}

impl CodeReport {
    /// Things that do not match.
    pub fn mismatches(&self) -> usize {
        self.unresolved.len()
            + self.body_errors.len()
            + self.sql_errors.len()
            + self.column_differences.len()
    }
}

/// A reference to check: (object, kind, name).
type Reference = (String, &'static str, Name);

/// The references the planned code makes.
fn references(planned: &[PlannedStatement]) -> Vec<Reference> {
    let mut out = Vec::new();
    for st in planned {
        let (Some(uses), Some(first)) = (&st.uses, st.objects.first()) else {
            continue;
        };
        let object = first.object.to_string();
        for r in &uses.relations {
            out.push((object.clone(), "relation", r.clone()));
        }
        for f in &uses.functions {
            out.push((object.clone(), "function", f.clone()));
        }
    }
    out
}

/// Which of `refs` do not resolve on `client`'s database: a qualified name
/// in its schema, an unqualified one in `search` or pg_catalog.
async fn unresolved_on(
    client: &Client,
    refs: &[Reference],
    search: &[String],
) -> Result<BTreeSet<(&'static str, Name)>> {
    let mut out = BTreeSet::new();
    for kind in ["relation", "function"] {
        let (schemas, names): (Vec<String>, Vec<String>) = refs
            .iter()
            .filter(|r| r.1 == kind)
            .map(|r| (r.2.schema.clone(), r.2.name.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .unzip();
        let sql = if kind == "relation" {
            include_str!("sql/unresolved_relations.sql")
        } else {
            include_str!("sql/unresolved_functions.sql")
        };
        let rows = client
            .query(sql, &[&schemas, &names, &search])
            .await
            .map_err(|e| Error::postgres("resolving the code's references", e))?;
        for r in rows {
            out.insert((
                kind,
                Name::new(&r.get::<_, String>(0), &r.get::<_, String>(1)),
            ));
        }
    }
    Ok(out)
}

async fn namespaces(client: &Client) -> Result<BTreeSet<String>> {
    Ok(crate::pg::strings(
        client,
        "select nspname::text from pg_namespace",
        &[],
        "schemas",
    )
    .await?
    .into_iter()
    .collect())
}

/// References that resolve on the source and not on the target.
pub async fn check_references(
    src: &Client,
    tgt: &Client,
    planned: &[PlannedStatement],
    schemas: &[String],
) -> Result<(usize, Vec<Unresolved>)> {
    let objects = planned.iter().filter(|s| s.uses.is_some()).count();
    let known: BTreeSet<String> = namespaces(src)
        .await?
        .into_iter()
        .chain(namespaces(tgt).await?)
        .collect();
    // Qualified names in no schema of either side are a row's fields
    // (`new.id`), not objects.
    let refs: Vec<Reference> = references(planned)
        .into_iter()
        .filter(|r| r.2.schema.is_empty() || known.contains(&r.2.schema))
        .collect();
    let mut search: Vec<String> = schemas.to_vec();
    search.extend(["public".to_string(), "extensions".to_string()]);
    let on_target = unresolved_on(tgt, &refs, &search).await?;
    let on_source = unresolved_on(src, &refs, &search).await?;
    let mut out: BTreeSet<Unresolved> = BTreeSet::new();
    for (object, kind, name) in &refs {
        let key = (*kind, name.clone());
        if on_target.contains(&key) && !on_source.contains(&key) {
            out.insert(Unresolved {
                object: object.clone(),
                reference: format!("{kind} {name}"),
            });
        }
    }
    Ok((objects, out.into_iter().collect()))
}

/// `plpgsql_check` on every plpgsql function of `schemas`, when the target
/// database has it.
pub async fn check_bodies(
    tgt: &Client,
    schemas: &[String],
) -> Result<Option<(usize, Vec<BodyError>)>> {
    let ext: Option<String> = tgt
        .query_opt(
            "select extnamespace::regnamespace::text from pg_extension where extname = 'plpgsql_check'",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("looking for plpgsql_check", e))?
        .map(|r| r.get(0));
    let Some(ext) = ext else {
        return Ok(None);
    };
    let functions = tgt
        .query(include_str!("sql/plpgsql_functions.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing plpgsql functions", e))?;
    let sql = format!(
        "select lineno, message from {}.plpgsql_check_function_tb($1::oid::regprocedure, coalesce($2::oid, 0)::regclass) where level = 'error'",
        crate::pg::quote_ident(&ext)
    );
    let mut errors = Vec::new();
    let mut checked = 0;
    for f in &functions {
        let (oid, name, relid): (u32, String, Option<u32>) = (f.get(0), f.get(1), f.get(2));
        let is_trigger: bool = f.get(3);
        if is_trigger && relid.is_none() {
            continue;
        }
        checked += 1;
        let rows = tgt
            .query(&sql, &[&oid, &relid])
            .await
            .map_err(|e| Error::postgres(format!("plpgsql_check of {name}"), e))?;
        for r in rows {
            errors.push(BodyError {
                function: name.clone(),
                line: r.get(0),
                message: r.get(1),
            });
        }
    }
    Ok(Some((checked, errors)))
}

/// Validates one SQL function on `client` with the search_path it sets for
/// itself (else the session's), in a transaction rolled back: the error
/// PostgreSQL gives, if any.
async fn sql_body_error(
    client: &Client,
    oid: u32,
    search_path: Option<&str>,
) -> Result<Option<String>> {
    let what = |e| Error::postgres("validating a SQL function", e);
    client
        .batch_execute("begin; set local check_function_bodies = on")
        .await
        .map_err(what)?;
    let mut result = Ok(());
    if let Some(path) = search_path {
        result = client
            .execute("select set_config('search_path', $1, true)", &[&path])
            .await
            .map(drop);
    }
    if result.is_ok() {
        result = client
            .execute("select pg_catalog.fmgr_sql_validator($1)", &[&oid])
            .await
            .map(drop);
    }
    client.batch_execute("rollback").await.map_err(what)?;
    Ok(result.err().map(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string())
    }))
}

/// Every SQL function of `schemas` validated on the target; those that fail
/// there are validated on the source, and reported only when they pass
/// there (or the source has no such function the target could mirror).
pub async fn check_sql_bodies(
    src: &Client,
    tgt: &Client,
    schemas: &[String],
) -> Result<(usize, Vec<BodyError>)> {
    let functions = tgt
        .query(include_str!("sql/sql_functions.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing SQL functions", e))?;
    let mut errors = Vec::new();
    for f in &functions {
        let (oid, name, qualified, path): (u32, String, String, Option<String>) =
            (f.get(0), f.get(1), f.get(2), f.get(3));
        let Some(message) = sql_body_error(tgt, oid, path.as_deref()).await? else {
            continue;
        };
        let on_source: Option<u32> = src
            .query_one("select to_regprocedure($1)::oid", &[&qualified])
            .await
            .map_err(|e| Error::postgres(format!("finding {name} on the source"), e))?
            .get(0);
        let source_fails = match on_source {
            Some(o) => sql_body_error(src, o, path.as_deref()).await?.is_some(),
            None => false,
        };
        if !source_fails {
            errors.push(BodyError {
                function: name,
                line: None,
                message,
            });
        }
    }
    Ok((functions.len(), errors))
}

/// (NOT NULL, default or generation) of every column of `schemas`' tables.
/// Read with an empty search_path (expressions written schema-qualified,
/// the same on both sides), the session's put back after.
async fn column_defs(
    client: &Client,
    schemas: &[String],
) -> Result<BTreeMap<String, (bool, String)>> {
    let what = |e| Error::postgres("reading column definitions", e);
    let old: String = client
        .query_one("select current_setting('search_path')", &[])
        .await
        .map_err(what)?
        .get(0);
    client
        .batch_execute("set search_path = ''")
        .await
        .map_err(what)?;
    let rows = client
        .query(include_str!("sql/column_defs.sql"), &[&schemas])
        .await
        .map_err(what);
    client
        .execute("select set_config('search_path', $1, false)", &[&old])
        .await
        .map_err(what)?;
    Ok(rows?
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect())
}

/// Columns on both sides whose NOT NULL or default differ, but those in
/// `expected` (the plan changed them).
pub async fn check_columns(
    src: &Client,
    tgt: &Client,
    schemas: &[String],
    expected: &BTreeSet<String>,
) -> Result<(usize, Vec<ColumnDifference>)> {
    let (a, b) = (
        column_defs(src, schemas).await?,
        column_defs(tgt, schemas).await?,
    );
    let mut out = Vec::new();
    let mut compared = 0;
    for (col, (nn_a, def_a)) in &a {
        let Some((nn_b, def_b)) = b.get(col) else {
            continue;
        };
        compared += 1;
        if expected.contains(col) {
            continue;
        }
        let show = |nn: bool| if nn { "NOT NULL" } else { "nullable" }.to_string();
        if nn_a != nn_b {
            out.push(ColumnDifference {
                column: col.clone(),
                what: "NOT NULL".into(),
                source: show(*nn_a),
                target: show(*nn_b),
            });
        }
        if def_a != def_b {
            out.push(ColumnDifference {
                column: col.clone(),
                what: "default".into(),
                source: def_a.clone(),
                target: def_b.clone(),
            });
        }
    }
    Ok((compared, out))
}
