//! Running a pg_restore script (plain SQL with `COPY … FROM stdin` blocks) on
//! one of our sessions, so it joins the caller's transaction; and reading
//! pg_restore's table of contents.

use std::io::BufRead;

use bytes::Bytes;
use futures_util::SinkExt;
use pg_query::NodeEnum;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::sql::{track_dollar_quotes, Statement};

/// One entry of `pg_restore -l`: `id; catalog oid DESC schema name owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The whole line, as `pg_restore -L` wants it back.
    pub line: String,
    /// `TABLE`, `TABLE DATA`, `FK CONSTRAINT`, `ACL`…
    pub desc: String,
    /// Its schema (`-` for none).
    pub schema: String,
    /// Its name as listed (for constraints, `table name`; for functions, with arguments).
    pub name: String,
    /// Its owner.
    pub owner: String,
}

/// Descriptions pg_restore uses that are more than one word.
const LONG_DESCS: &[&str] = &[
    "TABLE DATA",
    "FK CONSTRAINT",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "DEFAULT ACL",
    "ROW SECURITY",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "EVENT TRIGGER",
    "FOREIGN TABLE",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "LARGE OBJECT",
    "BLOB DATA",
    "INDEX ATTACH",
    "CHECK CONSTRAINT",
];

/// Parses `pg_restore -l` output; comment lines are skipped.
pub fn parse_toc(text: &str) -> Vec<TocEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with(';') {
            continue;
        }
        let Some((_, rest)) = l.split_once(';') else {
            continue;
        };
        // catalog oid, object oid, then the description.
        let mut words = rest.split_whitespace();
        let (Some(_), Some(_)) = (words.next(), words.next()) else {
            continue;
        };
        let tail: Vec<&str> = words.collect();
        let joined = tail.join(" ");
        let desc = LONG_DESCS
            .iter()
            .find(|d| joined.starts_with(&format!("{d} ")))
            .map(|d| d.to_string())
            .unwrap_or_else(|| tail.first().map(|s| s.to_string()).unwrap_or_default());
        let n = desc.split_whitespace().count();
        if tail.len() < n + 2 {
            continue;
        }
        out.push(TocEntry {
            line: line.to_string(),
            desc,
            schema: tail[n].to_string(),
            name: tail[n + 1..tail.len() - 1].join(" "),
            owner: tail[tail.len() - 1].to_string(),
        });
    }
    out
}

/// Rewrites a `COPY … FROM stdin` statement to load into `into` instead.
pub fn retarget_copy(header: &str, into: &str) -> Result<String> {
    let mut st = Statement::parse(header.trim().trim_end_matches(';'))?;
    match st.node_mut() {
        Some(NodeEnum::CopyStmt(c)) => {
            let rv = c
                .relation
                .as_mut()
                .ok_or_else(|| Error::invalid_input(format!("COPY without a table: {header}")))?;
            rv.schemaname = String::new();
            rv.relname = into.to_string();
        }
        _ => {
            return Err(Error::invalid_input(format!(
                "expected a COPY statement: {header}"
            )))
        }
    }
    st.deparse()
}

/// What to do with each `COPY` block of a script.
pub type CopyTarget<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

/// Runs a pg_restore script on `client`, statement batches through the simple
/// query protocol and each `COPY … FROM stdin` block through COPY. `copy_to`
/// may send a block elsewhere (returns the COPY statement to use) or keep it
/// (`None`). psql meta-commands (`\restrict`…) are skipped. Returns the rows
/// loaded.
pub async fn run_script(
    client: &Client,
    script: impl BufRead,
    copy_to: CopyTarget<'_>,
) -> Result<u64> {
    let mut sql = String::new();
    let mut dollar: Option<String> = None;
    let mut lines = script.lines();
    let mut rows = 0u64;
    let io = |e| Error::io("reading the pg_restore script", e);
    while let Some(line) = lines.next() {
        let line = line.map_err(io)?;
        let at_statement_start = dollar.is_none() && ends_statement(&sql);
        if at_statement_start && line.starts_with('\\') {
            continue;
        }
        if at_statement_start && is_copy_from_stdin(&line) {
            flush(client, &mut sql).await?;
            let statement = copy_to(&line)?.unwrap_or_else(|| line.clone());
            let sink = client
                .copy_in::<_, Bytes>(statement.trim_end_matches(';'))
                .await
                .map_err(|e| Error::postgres(format!("starting {}", one_line(&line)), e))?;
            futures_util::pin_mut!(sink);
            let mut buf = Vec::with_capacity(256 * 1024);
            for data in lines.by_ref() {
                let data = data.map_err(io)?;
                if data == "\\." {
                    break;
                }
                buf.extend_from_slice(data.as_bytes());
                buf.push(b'\n');
                if buf.len() >= 256 * 1024 {
                    let chunk = Bytes::from(std::mem::take(&mut buf));
                    sink.send(chunk)
                        .await
                        .map_err(|e| Error::postgres(format!("loading {}", one_line(&line)), e))?;
                }
            }
            if !buf.is_empty() {
                sink.send(Bytes::from(buf))
                    .await
                    .map_err(|e| Error::postgres(format!("loading {}", one_line(&line)), e))?;
            }
            rows += sink
                .finish()
                .await
                .map_err(|e| Error::postgres(format!("loading {}", one_line(&line)), e))?;
            continue;
        }
        track_dollar_quotes(&line, &mut dollar);
        sql.push_str(&line);
        sql.push('\n');
    }
    flush(client, &mut sql).await?;
    Ok(rows)
}

fn one_line(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The text so far is empty or ends with a complete statement.
fn ends_statement(sql: &str) -> bool {
    let code: Vec<&str> = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    code.last().is_none_or(|l| l.ends_with(';'))
}

fn is_copy_from_stdin(line: &str) -> bool {
    line.starts_with("COPY ") && line.trim_end().ends_with("FROM stdin;")
}

async fn flush(client: &Client, sql: &mut String) -> Result<()> {
    if sql.trim().is_empty() {
        sql.clear();
        return Ok(());
    }
    client
        .batch_execute(sql)
        .await
        .map_err(|e| Error::postgres("restoring from the backup", e))?;
    sql.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_lines_parse_into_desc_schema_name_owner() {
        let toc = "\
;
; Archive created at 2026-11-24 05:00:00 UTC
3461; 1259 16400 TABLE public customers postgres
3460; 0 16400 TABLE DATA public customers postgres
3300; 2606 16500 CONSTRAINT public customers customers_pkey postgres
3301; 2606 16501 FK CONSTRAINT public shipments shipments_customer_id_fkey postgres
3302; 1255 16502 FUNCTION public handle_new_user() postgres
3303; 0 0 ACL public TABLE customers postgres
3304; 2620 16503 TRIGGER auth users on_auth_user_created supabase_admin
3305; 826 16504 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES supabase_admin
3306; 2615 2200 SCHEMA - public pg_database_owner
";
        let e = parse_toc(toc);
        let short: Vec<(String, String, String, String)> = e
            .iter()
            .map(|t| {
                (
                    t.desc.clone(),
                    t.schema.clone(),
                    t.name.clone(),
                    t.owner.clone(),
                )
            })
            .collect();
        let want = [
            ("TABLE", "public", "customers", "postgres"),
            ("TABLE DATA", "public", "customers", "postgres"),
            (
                "CONSTRAINT",
                "public",
                "customers customers_pkey",
                "postgres",
            ),
            (
                "FK CONSTRAINT",
                "public",
                "shipments shipments_customer_id_fkey",
                "postgres",
            ),
            ("FUNCTION", "public", "handle_new_user()", "postgres"),
            ("ACL", "public", "TABLE customers", "postgres"),
            (
                "TRIGGER",
                "auth",
                "users on_auth_user_created",
                "supabase_admin",
            ),
            (
                "DEFAULT ACL",
                "public",
                "DEFAULT PRIVILEGES FOR TABLES",
                "supabase_admin",
            ),
            ("SCHEMA", "-", "public", "pg_database_owner"),
        ];
        let want: Vec<(String, String, String, String)> = want
            .iter()
            .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
            .collect();
        assert_eq!(short, want);
        assert_eq!(
            e[0].line,
            "3461; 1259 16400 TABLE public customers postgres"
        );
    }

    #[test]
    fn copy_statements_are_retargeted_through_the_parser() {
        let sql = retarget_copy(
            "COPY auth.users (id, \"Email\", raw_user_meta_data) FROM stdin;",
            "supamigrate_restore_0",
        )
        .unwrap();
        assert_eq!(
            sql,
            "COPY supamigrate_restore_0(id, \"Email\", raw_user_meta_data) FROM STDIN"
        );
        assert!(retarget_copy("SELECT 1", "x").is_err());
    }

    #[test]
    fn copy_headers_count_only_at_a_statement_start() {
        assert!(ends_statement(""));
        assert!(ends_statement("SET x = 1;\n\n-- Data for Name: t\n"));
        assert!(!ends_statement("CREATE FUNCTION f() AS $$\n"));
        assert!(is_copy_from_stdin("COPY public.t (a, b) FROM stdin;"));
        assert!(!is_copy_from_stdin("COPY public.t TO stdout;"));
    }
}
