//! Query plans: the source's most expensive read-only statements (from
//! `pg_stat_statements`), their generic plans on both sides compared. An
//! index scan on the source that became a sequential scan of a large table
//! on the target, or a large rise in estimated cost, is a finding naming
//! the query, the table and the likely cause. Nothing is executed.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// A table is large (its sequential scan matters) from this many rows.
pub const LARGE_TABLE_ROWS: f64 = 10_000.0;

/// A plan regressed when its estimated cost grew this many times (and the
/// target's cost is above [`COST_FLOOR`]).
pub const COST_RATIO: f64 = 10.0;

/// Costs under this are cheap whatever their ratio.
pub const COST_FLOOR: f64 = 1_000.0;

/// A statement whose plan is worse on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFinding {
    /// The statement (as `pg_stat_statements` normalized it; no values).
    pub query: String,
    /// The table concerned, when one is.
    pub table: Option<String>,
    /// What changed.
    pub what: String,
    /// The likely cause.
    pub cause: String,
    /// Estimated total cost on each side.
    pub source_cost: f64,
    /// On the target.
    pub target_cost: f64,
}

/// The statements compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plans {
    /// Statements whose plans were compared.
    pub compared: usize,
    /// Those statements (their first 120 characters, as
    /// `pg_stat_statements` normalized them).
    #[serde(default)]
    pub statements: Vec<String>,
    /// Statements that could not be planned on one side (with why), not
    /// findings.
    pub skipped: Vec<String>,
    /// The findings.
    pub findings: Vec<PlanFinding>,
    /// Why nothing was compared (no `pg_stat_statements` on the source).
    pub not_checked: Option<String>,
}

/// The top `n` read-only statements by total time, from the source's
/// `pg_stat_statements`, that read at least one of `schemas`' tables.
async fn top_statements(
    src: &Client,
    n: usize,
    schemas: &[String],
) -> Result<std::result::Result<Vec<String>, String>> {
    let schema: Option<String> = src
        .query_opt(
            "select n.nspname::text from pg_extension e join pg_namespace n on n.oid = e.extnamespace \
             where e.extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("looking for pg_stat_statements", e))?
        .map(|r| r.get(0));
    let Some(schema) = schema else {
        return Ok(Err("pg_stat_statements is not installed on the source: no query plans compared (hosted Supabase has it; `create extension pg_stat_statements` and run the application for a while)".into()));
    };
    let sql = format!(
        "select query from {}.pg_stat_statements s where s.dbid = (select oid from pg_database where datname = current_database()) \
         order by s.total_exec_time desc limit 2000",
        quote(&schema)
    );
    let rows = match src.query(&sql, &[]).await {
        Ok(r) => r,
        Err(e) => {
            let why = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            return Ok(Err(format!(
                "pg_stat_statements cannot be read on the source ({why}): no query plans compared"
            )));
        }
    };
    let reads: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|q| crate::sql::reads::reads_only(q, schemas))
        .collect();
    // Reads of sequences (pg_dump's `select last_value …`) are not the
    // application's queries.
    let names: Vec<String> = reads
        .iter()
        .flat_map(|q| crate::sql::reads::relations(q))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let sequences: std::collections::BTreeSet<String> = src
        .query(
            "select t from unnest($1::text[]) t where (select relkind from pg_class where oid = to_regclass(t)) = 'S'",
            &[&names],
        )
        .await
        .map_err(|e| Error::postgres("telling sequences from tables", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Ok(reads
        .into_iter()
        .filter(|q| {
            !crate::sql::reads::relations(q)
                .iter()
                .any(|t| sequences.contains(t))
        })
        .take(n)
        .collect()))
}

fn quote(s: &str) -> String {
    crate::pg::quote_ident(s)
}

/// A node of `EXPLAIN (FORMAT JSON)`'s plan: what is compared of it.
#[derive(Debug, Clone, Default, Deserialize)]
struct PlanNode {
    #[serde(rename = "Node Type", default)]
    node_type: String,
    #[serde(rename = "Relation Name")]
    relation: Option<String>,
    #[serde(rename = "Schema")]
    schema: Option<String>,
    #[serde(rename = "Index Name")]
    index: Option<String>,
    #[serde(rename = "Total Cost", default)]
    total_cost: f64,
    #[serde(rename = "Plans", default)]
    plans: Vec<PlanNode>,
}

/// One statement of `EXPLAIN (FORMAT JSON)`'s answer.
#[derive(Debug, Deserialize)]
struct Explained {
    #[serde(rename = "Plan")]
    plan: PlanNode,
}

/// The root of `EXPLAIN (FORMAT JSON)`'s text.
fn parse_explain(text: &str) -> Option<PlanNode> {
    serde_json::from_str::<Vec<Explained>>(text)
        .ok()?
        .into_iter()
        .next()
        .map(|e| e.plan)
}

/// The generic plan of `query` (EXPLAIN EXECUTE of a prepared statement
/// with NULLs under `plan_cache_mode = force_generic_plan`: works from
/// PostgreSQL 12 on), inside a savepoint.
async fn generic_plan(c: &Client, query: &str) -> std::result::Result<PlanNode, String> {
    let n = crate::sql::reads::parameters(query);
    let execute = if n == 0 {
        "explain (format json) execute supamigrate_plan".to_string()
    } else {
        format!(
            "explain (format json) execute supamigrate_plan({})",
            vec!["null"; n].join(", ")
        )
    };
    let setup = format!(
        "savepoint supamigrate_plan; set local plan_cache_mode = force_generic_plan; prepare supamigrate_plan as {query}"
    );
    let result = match c.batch_execute(&setup).await {
        Ok(()) => c.simple_query(&execute).await.map(|m| {
            m.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(parse_explain),
                _ => None,
            })
        }),
        Err(e) => Err(e),
    };
    // PREPARE is not undone by the rollback: deallocated after it (a failed
    // PREPARE left nothing, which `deallocate all` does not mind).
    let _ = c
        .batch_execute(
            "rollback to savepoint supamigrate_plan; release savepoint supamigrate_plan; deallocate all",
        )
        .await;
    match result {
        Ok(Some(plan)) => Ok(plan),
        Ok(None) => Err("EXPLAIN gave no plan".into()),
        Err(e) => Err(super::server_error(&e)),
    }
}

/// A scan in a plan.
#[derive(Debug, Clone, PartialEq)]
struct Scan {
    node: String,
    relation: String,
    index: Option<String>,
}

fn scans(plan: &PlanNode, out: &mut Vec<Scan>) {
    if let Some(rel) = &plan.relation {
        // A bitmap heap scan names its index on the bitmap index scan below.
        let index = plan.index.clone().or_else(|| {
            (plan.node_type == "Bitmap Heap Scan")
                .then(|| first_index(plan))
                .flatten()
        });
        out.push(Scan {
            node: plan.node_type.clone(),
            relation: match plan.schema.as_deref() {
                Some(schema) if !schema.is_empty() => format!("{schema}.{rel}"),
                _ => rel.clone(),
            },
            index,
        });
    }
    for c in &plan.plans {
        scans(c, out);
    }
}

/// The first index named under a plan node.
fn first_index(plan: &PlanNode) -> Option<String> {
    plan.plans
        .iter()
        .find_map(|c| c.index.clone().or_else(|| first_index(c)))
}

/// What the target knows of a table: rows by its statistics, whether it
/// was ever analyzed, its indexes.
async fn table_facts(tgt: &Client, relation: &str) -> Option<(f64, bool, Vec<String>)> {
    let r = tgt
        .query_opt(
            "select c.reltuples::float8, coalesce(s.last_analyze, s.last_autoanalyze) is not null, \
             coalesce((select array_agg(i.relname::text) from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = c.oid), '{}') \
             from pg_class c left join pg_stat_all_tables s on s.relid = c.oid where c.oid = to_regclass($1)",
            &[&relation],
        )
        .await
        .ok()??;
    Some((r.get(0), r.get(1), r.get(2)))
}

/// Compares the generic plans of the source's top `n` statements.
pub async fn compare(src: &Client, tgt: &Client, n: usize, schemas: &[String]) -> Result<Plans> {
    let statements = match top_statements(src, n, schemas).await? {
        Ok(s) => s,
        Err(why) => {
            return Ok(Plans {
                not_checked: Some(why),
                ..Plans::default()
            })
        }
    };
    let mut out = Plans::default();
    for q in statements {
        let (s, t) = tokio::join!(generic_plan(src, &q), generic_plan(tgt, &q));
        let (s, t) = match (s, t) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) => {
                out.skipped
                    .push(format!("{}: not planned on the source ({e})", short(&q)));
                continue;
            }
            (_, Err(e)) => {
                out.skipped
                    .push(format!("{}: not planned on the target ({e})", short(&q)));
                continue;
            }
        };
        out.compared += 1;
        out.statements.push(short(&q));
        if let Some(f) = finding(tgt, &q, &s, &t).await {
            out.findings.push(f);
        }
    }
    Ok(out)
}

/// The first line of a statement, at most 120 characters.
fn short(q: &str) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}…", one.chars().take(120).collect::<String>())
    } else {
        one
    }
}

async fn finding(tgt: &Client, q: &str, s: &PlanNode, t: &PlanNode) -> Option<PlanFinding> {
    let (mut src_scans, mut tgt_scans) = (Vec::new(), Vec::new());
    scans(s, &mut src_scans);
    scans(t, &mut tgt_scans);
    let (sc, tc) = (s.total_cost, t.total_cost);
    for a in &src_scans {
        let Some(index) = &a.index else {
            continue;
        };
        let now_seq = tgt_scans
            .iter()
            .any(|b| b.relation == a.relation && b.node == "Seq Scan");
        if !now_seq {
            continue;
        }
        let (rows, analyzed, indexes) = table_facts(tgt, &a.relation).await?;
        if rows < LARGE_TABLE_ROWS && analyzed {
            continue;
        }
        let cause = if !indexes.iter().any(|i| i == index) {
            format!("missing index: {index} is not on the target")
        } else if !analyzed || rows < 0.0 {
            format!(
                "missing statistics: {} was never analyzed on the target (run ANALYZE)",
                a.relation
            )
        } else {
            "a setting: compare random_page_cost, effective_cache_size, work_mem and the enable_* settings with the source's".into()
        };
        return Some(PlanFinding {
            query: short(q),
            table: Some(a.relation.clone()),
            what: format!("{} by {index} on the source became a sequential scan on the target ({rows:.0} rows)", a.node),
            cause,
            source_cost: sc,
            target_cost: tc,
        });
    }
    if tc > COST_FLOOR && tc > sc * COST_RATIO {
        return Some(PlanFinding {
            query: short(q),
            table: None,
            what: format!("estimated cost rose from {sc:.0} to {tc:.0}"),
            cause: "missing indexes or statistics, or a setting: compare the plans with EXPLAIN on both sides".into(),
            source_cost: sc,
            target_cost: tc,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_are_found_in_nested_plans() {
        let v = parse_explain(
            r#"[{"Plan": {"Node Type": "Nested Loop", "Total Cost": 10.5, "Plans": [
                {"Node Type": "Index Scan", "Relation Name": "notes", "Schema": "public", "Index Name": "notes_owner_idx"},
                {"Node Type": "Seq Scan", "Relation Name": "teams", "Schema": "public"},
                {"Node Type": "Bitmap Heap Scan", "Relation Name": "readings", "Schema": "public", "Plans": [
                    {"Node Type": "Bitmap Index Scan", "Index Name": "readings_device"}]}]}}]"#,
        )
        .unwrap();
        let mut out = Vec::new();
        scans(&v, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].index.as_deref(), Some("readings_device"));
        assert_eq!(out[0].index.as_deref(), Some("notes_owner_idx"));
        assert_eq!(out[1].relation, "public.teams");
        assert_eq!(v.total_cost, 10.5);
    }
}
