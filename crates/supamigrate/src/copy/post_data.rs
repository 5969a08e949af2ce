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

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::apply::{digest, Applied};
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::pg::TableName;
use crate::plan::{MigrationPlan, Phase, Section};
use crate::secrets::{Sql, Vault};
use crate::sql::excerpt;

fn sha(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Post-data not built yet, by phase.
#[derive(Debug)]
pub struct Pending {
    total_sha: String,
    total: usize,
    prelude: Vec<Sql>,
    /// Keys and indexes, with their table.
    keys: Vec<(TableName, Sql)>,
    attach: Vec<Sql>,
    foreign_keys: Vec<Sql>,
    rest: Vec<Sql>,
}

/// The plan's post-data, less what an earlier run built. `None` when the
/// whole section was recorded before. `secrets` fills the placeholders.
pub async fn prepare(
    target: &ConnInfo,
    plan: &MigrationPlan,
    secrets: &Vault,
) -> Result<Option<Pending>> {
    let client = connect(target).await?;
    crate::store::require(&client, "post-data").await?;
    match crate::apply::state(&client, plan, Section::PostData).await? {
        Some(true) => return Ok(None),
        Some(false) => return Err(crate::apply::different_section(Section::PostData)),
        None => {}
    }
    let done: BTreeSet<String> = client
        .query("select sha256 from supamigrate.post_data_done", &[])
        .await
        .map_err(|e| Error::postgres("reading the post-data state", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let statements = plan.statements(Section::PostData);
    let mut p = Pending {
        total_sha: digest(statements.iter().copied()),
        total: statements.len(),
        prelude: Vec::new(),
        keys: Vec::new(),
        attach: Vec::new(),
        foreign_keys: Vec::new(),
        rest: Vec::new(),
    };
    for s in statements {
        if s.phase != Phase::Prelude && done.contains(&sha(&s.sql)) {
            continue;
        }
        let sql = secrets.prepare(&s.sql)?;
        match (s.phase, &s.table) {
            (Phase::Prelude, _) => p.prelude.push(sql),
            (Phase::Keys, Some(t)) => p.keys.push((t.clone(), sql)),
            (Phase::Keys, None) | (Phase::Rest, _) => p.rest.push(sql),
            (Phase::Attach, _) => p.attach.push(sql),
            (Phase::ForeignKeys, _) => p.foreign_keys.push(sql),
        }
    }
    Ok(Some(p))
}

impl Pending {
    /// Statements left to build.
    pub fn remaining(&self) -> usize {
        self.keys.len() + self.attach.len() + self.foreign_keys.len() + self.rest.len()
    }

    /// The session settings every connection runs first.
    pub fn prelude(&self) -> &[Sql] {
        &self.prelude
    }

    /// Takes the keys and indexes of `table` to build now.
    pub fn take_keys_for(&mut self, table: &TableName) -> Vec<Sql> {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|(t, _)| t == table);
        self.keys = others;
        mine.into_iter().map(|(_, s)| s).collect()
    }

    /// Builds what is left (keys, then partitions' indexes attached in
    /// order, then foreign keys in parallel, then the rest in order) and
    /// records the section.
    pub async fn finish(self, target: &ConnInfo, jobs: usize) -> Result<()> {
        let keys: VecDeque<Sql> = self.keys.into_iter().map(|(_, s)| s).collect();
        run_statements(target, &self.prelude, keys, jobs.max(1)).await?;
        run_statements(target, &self.prelude, self.attach.into(), 1).await?;
        run_statements(target, &self.prelude, self.foreign_keys.into(), jobs.max(1)).await?;
        run_statements(target, &self.prelude, self.rest.into(), 1).await?;
        let client = connect(target).await?;
        crate::store::record_section(&client, Section::PostData, &self.total_sha, self.total).await
    }
}

/// Builds the plan's post-data on the target with `jobs` connections, then
/// makes the tables ready for traffic ([`super::ready`]). Returns
/// [`Applied::Earlier`] when the section was recorded before.
pub async fn build(m: &crate::migration::Migration, jobs: usize) -> Result<Applied> {
    let (target, plan, secrets) = (&m.target, &*m.plan, &m.vault);
    let applied = match prepare(target, plan, secrets).await? {
        None => Applied::Earlier,
        Some(p) => {
            let n = p.remaining();
            p.finish(target, jobs).await?;
            Applied::Now(n)
        }
    };
    // The tables' statistics, now that their indexes and extended
    // statistics are there (those made ready before are skipped).
    super::ready::rest(target, plan, jobs).await?;
    Ok(applied)
}

/// Runs `todo` on `parallel` connections (each first running `prelude`).
pub async fn run_statements(
    target: &ConnInfo,
    prelude: &[Sql],
    todo: VecDeque<Sql>,
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
            let mut session: Option<Client> = None;
            loop {
                let Some(sql) = queue.lock().await.pop_front() else {
                    return Ok::<(), Error>(());
                };
                // A transient failure (the target restarted) is retried on a
                // new session, with backoff; the statement's record says
                // whether it committed before the connection broke.
                let mut backoff = crate::retry::Backoff::new(crate::retry::RETRY_FOR);
                loop {
                    let attempt = async {
                        let c = match session.take() {
                            Some(c) => c,
                            None => open_session(&target, &prelude).await?,
                        };
                        let r = run_one(&c, &sql).await;
                        if r.is_ok() {
                            session = Some(c);
                        }
                        r
                    }
                    .await;
                    let Err(e) = attempt else { break };
                    if !backoff
                        .retry(&e, &format!("post-data ({})", excerpt(&sql.shown)))
                        .await
                    {
                        return Err(e);
                    }
                    if is_done(&target, &sql).await.unwrap_or(false) {
                        break;
                    }
                }
            }
        });
    }
    let mut first = None;
    while let Some(j) = set.join_next().await {
        let r = j.map_err(|e| Error::internal(format!("a post-data worker failed: {e}")))?;
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// A session for post-data: tuned, with the prelude run.
async fn open_session(target: &ConnInfo, prelude: &[Sql]) -> Result<Client> {
    let c = connect(target).await?;
    c.batch_execute("set maintenance_work_mem = '512MB'; set synchronous_commit = off")
        .await
        .map_err(|e| Error::postgres("tuning the index build session", e))?;
    for p in prelude {
        c.batch_execute(&p.run).await.map_err(|e| {
            p.mask_error(Error::postgres(
                format!("post-data prelude ({})", excerpt(&p.shown)),
                e,
            ))
        })?;
    }
    Ok(c)
}

/// Whether `sql`'s record committed.
async fn is_done(target: &ConnInfo, sql: &Sql) -> Result<bool> {
    let c = connect(target).await?;
    c.query_one(
        "select exists (select from supamigrate.post_data_done where sha256 = $1)",
        &[&sha(&sql.shown)],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| Error::postgres("reading post-data's progress", e))
}

/// One statement and its record, in one transaction; retried on deadlock
/// (two foreign keys between the same tables lock them in opposite orders).
async fn run_one(c: &Client, sql: &Sql) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            c.batch_execute("begin").await?;
            c.batch_execute(&sql.run).await?;
            failpoint::hit(failpoint::POST_DATA_BEFORE_COMMIT);
            c.execute(
                "insert into supamigrate.post_data_done (sha256) values ($1)",
                &[&sha(&sql.shown)],
            )
            .await?;
            c.batch_execute("commit").await
        }
        .await;
        match result {
            Ok(()) => {
                failpoint::hit(failpoint::POST_DATA_STATEMENT);
                tracing::debug!(statement = %excerpt(&sql.shown), "post-data built");
                return Ok(());
            }
            Err(e) => {
                let _ = c.batch_execute("rollback").await;
                let violation = e.code().is_some_and(|c| c.code().starts_with("23"));
                let mut err = sql.mask_error(Error::postgres(
                    format!("post-data ({})", excerpt(&sql.shown)),
                    e,
                ));
                if violation {
                    // A re-run alone cannot fix rows that break a constraint.
                    err = err.with_hint("the target's rows break this constraint: the source changed while the copy ran across snapshots, or its rows break it there too (a NOT VALID constraint): fix the rows on the source, then `supamigrate copy --recopy TABLE` for the tables involved (run: `--recopy`), or start over on a fresh target database");
                }
                if err.is_retryable() && attempt < 4 {
                    tracing::warn!(error = %err, attempt, "retrying");
                    continue;
                }
                return Err(err);
            }
        }
    }
}
