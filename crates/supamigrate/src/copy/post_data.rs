//! Building post-data (indexes, constraints, triggers, policies) after the
//! load, in parallel, resumably.
//!
//! Phase 1 builds primary keys, unique and check constraints and indexes
//! concurrently; phase 2 adds foreign keys (validated) concurrently; phase 3
//! runs the rest (triggers, policies, grants…) in order. Each statement commits
//! with a row in `supamigrate.post_data_done`, so a killed run resumes at the
//! first statement not done. When all are done the section is recorded like
//! `schema apply` records it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::apply::{digest, recorded, Applied, Section, MARKER};
use crate::schema::sql::{excerpt, rangevar_name, Statement};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Session settings every connection runs first.
    Prelude,
    /// Keys, checks, indexes: parallel.
    Keys,
    /// Foreign keys: parallel, after the keys they reference.
    ForeignKeys,
    /// Everything else, in order.
    Rest,
}

/// The phase of a statement, and for keys and indexes the table they are on.
fn phase(sql: &str) -> Result<(Phase, Option<String>)> {
    let st = Statement::parse(sql.trim_end_matches(';'))?;
    Ok(match st.node() {
        Some(NodeEnum::VariableSetStmt(_)) | Some(NodeEnum::SelectStmt(_)) => {
            (Phase::Prelude, None)
        }
        Some(NodeEnum::IndexStmt(i)) => (Phase::Keys, i.relation.as_ref().map(rangevar_name)),
        Some(NodeEnum::AlterTableStmt(a)) => {
            let mut p = Phase::Rest;
            for c in &a.cmds {
                if let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() {
                    if cmd.subtype == AlterTableType::AtAddConstraint as i32 {
                        if let Some(NodeEnum::Constraint(con)) =
                            cmd.def.as_ref().and_then(|d| d.node.as_ref())
                        {
                            p = if con.contype == ConstrType::ConstrForeign as i32 {
                                Phase::ForeignKeys
                            } else {
                                Phase::Keys
                            };
                        }
                    }
                }
            }
            (p, a.relation.as_ref().map(rangevar_name))
        }
        _ => (Phase::Rest, None),
    })
}

fn sha(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Post-data not built yet, by phase.
#[derive(Debug)]
pub struct Pending {
    total_sha: String,
    total: usize,
    prelude: Vec<String>,
    /// (table, statement) of keys and indexes.
    keys: Vec<(String, String)>,
    foreign_keys: Vec<String>,
    rest: Vec<String>,
}

/// Classifies `statements` and leaves out those built by an earlier run.
/// `None` when the whole section was recorded before.
pub async fn prepare(target: &ConnInfo, statements: &[String]) -> Result<Option<Pending>> {
    let client = connect(target).await?;
    let total_sha = digest(statements);
    if let Some(done) = recorded(&client, Section::PostData).await? {
        if done == total_sha {
            return Ok(None);
        }
        return Err(Error::invalid_input(
            "the target already has a different post-data applied; nothing was changed",
        )
        .with_hint("convert with the same options as before"));
    }
    client
        .batch_execute(&format!(
            "{MARKER}; create table if not exists supamigrate.post_data_done (sha256 text primary key, done_at timestamptz not null default now())"
        ))
        .await
        .map_err(|e| Error::postgres("creating the post-data state table", e))?;
    let done: BTreeSet<String> = client
        .query("select sha256 from supamigrate.post_data_done", &[])
        .await
        .map_err(|e| Error::postgres("reading the post-data state", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut p = Pending {
        total_sha,
        total: statements.len(),
        prelude: Vec::new(),
        keys: Vec::new(),
        foreign_keys: Vec::new(),
        rest: Vec::new(),
    };
    for s in statements {
        let (ph, table) = phase(s)?;
        if ph != Phase::Prelude && done.contains(&sha(s)) {
            continue;
        }
        match ph {
            Phase::Prelude => p.prelude.push(s.clone()),
            Phase::Keys => p.keys.push((table.unwrap_or_default(), s.clone())),
            Phase::ForeignKeys => p.foreign_keys.push(s.clone()),
            Phase::Rest => p.rest.push(s.clone()),
        }
    }
    Ok(Some(p))
}

impl Pending {
    /// Statements left to build.
    pub fn remaining(&self) -> usize {
        self.keys.len() + self.foreign_keys.len() + self.rest.len()
    }

    /// The session settings every connection runs first.
    pub fn prelude(&self) -> &[String] {
        &self.prelude
    }

    /// Takes the keys and indexes of `table` (`schema.name`) to build now.
    pub fn take_keys_for(&mut self, table: &str) -> Vec<String> {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|(t, _)| t == table);
        self.keys = others;
        mine.into_iter().map(|(_, s)| s).collect()
    }

    /// Builds what is left (keys, then foreign keys in parallel, then the rest
    /// in order) and records the section.
    pub async fn finish(self, target: &ConnInfo, jobs: usize) -> Result<()> {
        let keys: VecDeque<String> = self.keys.into_iter().map(|(_, s)| s).collect();
        run_statements(target, &self.prelude, keys, jobs.max(1)).await?;
        run_statements(target, &self.prelude, self.foreign_keys.into(), jobs.max(1)).await?;
        run_statements(target, &self.prelude, self.rest.into(), 1).await?;
        connect(target)
            .await?
            .execute(
                "insert into supamigrate.schema_sections (section, sha256, statements) values ('post-data', $1, $2)",
                &[&self.total_sha, &(self.total as i32)],
            )
            .await
            .map_err(|e| Error::postgres("recording post-data", e))?;
        Ok(())
    }
}

/// Builds `statements` (a conversion's post-data) on `target` with `jobs`
/// connections. Returns [`Applied::Earlier`] when the section was recorded before.
pub async fn build(target: &ConnInfo, statements: &[String], jobs: usize) -> Result<Applied> {
    match prepare(target, statements).await? {
        None => Ok(Applied::Earlier),
        Some(p) => {
            let n = p.remaining();
            p.finish(target, jobs).await?;
            Ok(Applied::Now(n))
        }
    }
}

/// Runs `todo` on `parallel` connections (each first running `prelude`).
pub async fn run_statements(
    target: &ConnInfo,
    prelude: &[String],
    todo: VecDeque<String>,
    parallel: usize,
) -> Result<()> {
    if todo.is_empty() {
        return Ok(());
    }
    let queue = Arc::new(Mutex::new(todo));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (target, prelude, queue) = (target.clone(), prelude.to_vec(), queue.clone());
        set.spawn(async move {
            let c = connect(&target).await?;
            c.batch_execute("set maintenance_work_mem = '512MB'; set synchronous_commit = off")
                .await
                .map_err(|e| Error::postgres("tuning the index build session", e))?;
            for p in &prelude {
                c.batch_execute(p).await.map_err(|e| {
                    Error::postgres(format!("post-data prelude ({})", excerpt(p)), e)
                })?;
            }
            loop {
                let Some(sql) = queue.lock().await.pop_front() else {
                    return Ok::<(), Error>(());
                };
                run_one(&c, &sql).await?;
            }
        });
    }
    let mut first = None;
    while let Some(j) = set.join_next().await {
        let r =
            j.map_err(|e| Error::new(ErrorKind::Io, format!("post-data worker crashed: {e}")))?;
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// One statement and its record, in one transaction; retried on deadlock
/// (two foreign keys between the same tables lock them in opposite orders).
async fn run_one(c: &Client, sql: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            c.batch_execute("begin").await?;
            c.batch_execute(sql).await?;
            crate::failpoint::hit("post-data-before-commit");
            c.execute(
                "insert into supamigrate.post_data_done (sha256) values ($1)",
                &[&sha(sql)],
            )
            .await?;
            c.batch_execute("commit").await
        }
        .await;
        match result {
            Ok(()) => {
                crate::failpoint::hit("post-data-statement");
                tracing::debug!(statement = %excerpt(sql), "post-data built");
                return Ok(());
            }
            Err(e) => {
                let _ = c.batch_execute("rollback").await;
                let err = Error::postgres(format!("post-data ({})", excerpt(sql)), e);
                if err.is_retryable() && attempt < 4 {
                    tracing::warn!(error = %err, attempt, "retrying");
                    continue;
                }
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_know_their_table() {
        assert_eq!(
            phase("CREATE INDEX i ON public.\"T t\" USING btree (k);")
                .unwrap()
                .1
                .as_deref(),
            Some("public.T t")
        );
        assert_eq!(
            phase("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);")
                .unwrap()
                .1
                .as_deref(),
            Some("public.t")
        );
    }

    #[test]
    fn statements_are_phased() {
        let cases = [
            ("SELECT pg_catalog.set_config('search_path', '', false);", Phase::Prelude),
            ("SET statement_timeout = 0;", Phase::Prelude),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);", Phase::Keys),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_k UNIQUE (k);", Phase::Keys),
            ("CREATE INDEX i ON public.t USING btree (k);", Phase::Keys),
            ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_fk FOREIGN KEY (p) REFERENCES public.p(id);", Phase::ForeignKeys),
            ("CREATE TRIGGER tr BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();", Phase::Rest),
            ("ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;", Phase::Rest),
            ("CREATE POLICY p ON public.t USING (true);", Phase::Rest),
        ];
        for (sql, want) in cases {
            assert_eq!(phase(sql).unwrap().0, want, "{sql}");
        }
    }
}
