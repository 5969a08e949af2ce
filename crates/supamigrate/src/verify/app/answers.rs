//! Views and functions answer the same: every view and materialized view of
//! the migrated schemas, and every function of the application that takes
//! no argument and is STABLE or IMMUTABLE, evaluated on both sides (in the
//! verify snapshot, read-only) as an anonymous and as a signed-up user.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::access::{as_principal, refused, seen, Principal, Seen};
use crate::error::{Error, Result};
use crate::pg::quote_ident;

/// A view or function that answers differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerDiff {
    /// `view public.x` or `function public.f()`.
    pub object: String,
    /// Who asked.
    pub principal: String,
    /// On the source.
    pub source: Seen,
    /// On the target.
    pub target: Seen,
}

/// The views' and functions' answers compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answers {
    /// Views and materialized views compared.
    pub views: Vec<String>,
    /// Functions compared.
    pub functions: Vec<String>,
    /// Who asked.
    pub principals: Vec<String>,
    /// The differences.
    pub differences: Vec<AnswerDiff>,
}

/// What is asked: `view s.v` / `function s.f()` and its FROM item.
#[derive(Debug, Clone)]
struct Question {
    object: String,
    from: String,
}

/// The views and zero-argument STABLE/IMMUTABLE functions of `schemas` on
/// one side (not those of extensions).
async fn questions(c: &Client, schemas: &[String]) -> Result<Vec<Question>> {
    let rows = c
        .query(
            "select 'view', n.nspname::text, c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('v', 'm') and n.nspname = any($1) \
               and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e') \
             union all \
             select 'function', n.nspname::text, p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where p.prokind = 'f' and p.pronargs = 0 and p.provolatile in ('s', 'i') and n.nspname = any($1) \
               and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype, 'void'::regtype, 'internal'::regtype) \
               and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e') \
             order by 1 desc, 2, 3",
            &[&schemas],
        )
        .await
        .map_err(|e| Error::postgres("listing the views and functions", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (kind, schema, name): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let q = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
            if kind == "view" {
                Question {
                    object: format!("view {schema}.{name}"),
                    from: q,
                }
            } else {
                Question {
                    object: format!("function {schema}.{name}()"),
                    from: format!("{q}()"),
                }
            }
        })
        .collect())
}

/// Compares the answers of what both sides have, as each of `principals`.
pub async fn compare(
    src: &Client,
    tgt: &Client,
    schemas: &[String],
    principals: &[Principal],
) -> Result<Answers> {
    let on_target: std::collections::BTreeSet<String> = questions(tgt, schemas)
        .await?
        .into_iter()
        .map(|q| q.object)
        .collect();
    let asked: Vec<Question> = questions(src, schemas)
        .await?
        .into_iter()
        .filter(|q| on_target.contains(&q.object))
        .collect();
    let mut out = Answers {
        views: asked
            .iter()
            .filter(|q| q.object.starts_with("view "))
            .map(|q| q.object.clone())
            .collect(),
        functions: asked
            .iter()
            .filter(|q| q.object.starts_with("function "))
            .map(|q| q.object.clone())
            .collect(),
        principals: principals.iter().map(|p| p.name.clone()).collect(),
        differences: Vec::new(),
    };
    for p in principals {
        let s = as_principal(src, p, ask(src, &asked))
            .await?
            .unwrap_or_else(|why| refused(asked.len(), why));
        let t = as_principal(tgt, p, ask(tgt, &asked))
            .await?
            .unwrap_or_else(|why| refused(asked.len(), why));
        for ((q, s), t) in asked.iter().zip(s).zip(t) {
            if !s.same(&t) {
                out.differences.push(AnswerDiff {
                    object: q.object.clone(),
                    principal: p.name.clone(),
                    source: s,
                    target: t,
                });
            }
        }
    }
    Ok(out)
}

async fn ask(c: &Client, asked: &[Question]) -> Result<Vec<Seen>> {
    let mut out = Vec::with_capacity(asked.len());
    for q in asked {
        out.push(seen(c, &q.from).await?);
    }
    Ok(out)
}
