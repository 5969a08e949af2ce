//! The application's own integrity queries (the runbook's Step 5.2 is one
//! such set), run on both databases and compared row for row. They come from
//! a file of `-- check: <name>` blocks (`verify --checks FILE`).

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, Result};
use crate::sql::Statement;

/// A named query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Its name.
    pub name: String,
    /// The query.
    pub sql: String,
    /// The tables it reads (`schema.table`).
    pub tables: Vec<String>,
}

/// Parses `-- check: <name>` blocks, one query each; the tables each reads
/// come from its parse tree.
pub fn parse(text: &str) -> Result<Vec<Check>> {
    let mut out: Vec<Check> = Vec::new();
    let mut current: Option<(String, String)> = None;
    let finish = |c: Option<(String, String)>, out: &mut Vec<Check>| -> Result<()> {
        if let Some((name, sql)) = c {
            let sql = sql.trim().trim_end_matches(';').to_string();
            let st = Statement::parse(&sql)?;
            let tables = pg_query::parse(&st.text, pg_query::ParserOptions::DEFAULT)
                .map_err(|e| Error::invalid_input(format!("check {name}: {e}")))?
                .tables();
            out.push(Check { name, sql, tables });
        }
        Ok(())
    };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- check:") {
            finish(current.take(), &mut out)?;
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = current.as_mut() {
            if !line.trim_start().starts_with("--") {
                sql.push_str(line);
                sql.push('\n');
            }
        }
    }
    finish(current.take(), &mut out)?;
    Ok(out)
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check.
    pub name: String,
    /// Why it did not run (a table it reads is missing on a side).
    pub skipped: Option<String>,
    /// Rows on the source, each as `col=value` text.
    pub source: Vec<String>,
    /// Rows on the target.
    pub target: Vec<String>,
}

impl CheckResult {
    /// Both sides returned the same rows (or it was skipped).
    pub fn matches(&self) -> bool {
        self.skipped.is_some() || self.source == self.target
    }
}

async fn missing_table(client: &Client, tables: &[String]) -> Result<Option<String>> {
    for t in tables {
        let exists: bool = client
            .query_one("select to_regclass($1) is not null", &[t])
            .await
            .map_err(|e| Error::postgres("looking up a table", e))?
            .get(0);
        if !exists {
            return Ok(Some(t.clone()));
        }
    }
    Ok(None)
}

async fn rows(client: &Client, sql: &str, what: &str) -> Result<Vec<String>> {
    let msgs = client
        .simple_query(sql)
        .await
        .map_err(|e| Error::postgres(what.to_string(), e))?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}={}", c.name(), r.get(i).unwrap_or("NULL")))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect())
}

/// Runs `checks` on both sides.
pub async fn run(source: &Client, target: &Client, checks: &[Check]) -> Result<Vec<CheckResult>> {
    let mut out = Vec::new();
    for c in checks {
        let missing = match missing_table(source, &c.tables).await? {
            Some(t) => Some(format!("{t} does not exist on the source")),
            None => missing_table(target, &c.tables)
                .await?
                .map(|t| format!("{t} does not exist on the target")),
        };
        let mut r = CheckResult {
            name: c.name.clone(),
            skipped: missing,
            source: Vec::new(),
            target: Vec::new(),
        };
        if r.skipped.is_none() {
            let what = format!("running check {}", c.name);
            r.source = rows(source, &c.sql, &format!("{what} on the source")).await?;
            r.target = rows(target, &c.sql, &format!("{what} on the target")).await?;
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_parse_with_their_tables() {
        let checks = parse(
            "-- a file of checks\n\n-- check: orders_per_customer\n-- comment\nselect c.id, count(o.id) from public.customers c\nleft join public.orders o on o.customer_id = c.id group by c.id order by 1;\n\n-- check: total\nselect sum(amount) from app.invoices;\n",
        )
        .unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["orders_per_customer", "total"]);
        let mut t = checks[0].tables.clone();
        t.sort();
        assert_eq!(t, ["public.customers", "public.orders"]);
        assert_eq!(checks[1].tables, ["app.invoices"]);
        assert!(checks.iter().all(|c| !c.sql.ends_with(';')));
        assert!(parse("-- check: bad\nselect from where;").is_err());
    }
}
