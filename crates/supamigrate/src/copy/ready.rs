//! Makes copied tables ready for traffic as the plan decided
//! ([`crate::plan::ready`]): their ANALYZE, recorded in
//! `supamigrate.ready_done` in the same transaction, so a resumed copy
//! skips the finished tables.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::pg::TableName;
use crate::plan::ready::ReadyAction;
use crate::plan::MigrationPlan;
use crate::retry::{Backoff, RETRY_FOR};

/// The tables made ready earlier.
pub async fn done(tgt: &Client) -> Result<BTreeSet<TableName>> {
    Ok(tgt
        .query(
            "select target_schema, target_table from supamigrate.ready_done",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading which tables are ready", e))?
        .iter()
        .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// The plan's tables with work left: (target table, action).
pub fn todo(plan: &MigrationPlan, done: &BTreeSet<TableName>) -> Vec<(TableName, ReadyAction)> {
    plan.ready
        .iter()
        .filter(|r| r.action.statement(&r.table).is_some() && !done.contains(&r.table))
        .map(|r| (r.table.clone(), r.action))
        .collect()
}

/// Makes `table` ready, retrying a transient failure on a new session.
pub async fn one(target: &ConnInfo, table: &TableName, action: ReadyAction) -> Result<()> {
    let Some(sql) = action.statement(table) else {
        return Ok(());
    };
    let mut backoff = Backoff::new(RETRY_FOR);
    loop {
        let attempt = async {
            let c = connect(target).await?;
            run(&c, table, action, &sql).await
        }
        .await;
        let Err(e) = attempt else { return Ok(()) };
        if !backoff.retry(&e, &sql).await {
            return Err(e);
        }
    }
}

async fn run(c: &Client, table: &TableName, action: ReadyAction, sql: &str) -> Result<()> {
    let started = Instant::now();
    let what = |e| Error::postgres(format!("making {table} ready ({sql})"), e);
    let record = "insert into supamigrate.ready_done (target_schema, target_table, action, seconds) \
                  values ($1, $2, $3, $4) on conflict (target_schema, target_table) \
                  do update set action = excluded.action, seconds = excluded.seconds, done_at = now()";
    let name = action.name();
    c.batch_execute("set maintenance_work_mem = '256MB'")
        .await
        .map_err(what)?;
    c.batch_execute("begin").await.map_err(what)?;
    let r = async {
        c.batch_execute(sql).await?;
        let secs = started.elapsed().as_secs_f64();
        c.execute(record, &[&table.schema, &table.name, &name, &secs])
            .await?;
        c.batch_execute("commit").await
    }
    .await;
    if let Err(e) = r {
        let _ = c.batch_execute("rollback").await;
        return Err(what(e));
    }
    failpoint::hit(failpoint::READY_TABLE);
    tracing::debug!(
        table = %table,
        action = action.describe(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "ready"
    );
    Ok(())
}

/// Makes every table of the plan not made ready yet ready (after
/// post-data).
pub async fn rest(target: &ConnInfo, plan: &MigrationPlan, jobs: usize) -> Result<()> {
    let tgt = connect(target).await?;
    let left = todo(plan, &done(&tgt).await?);
    drop(tgt);
    all(target, left, jobs).await
}

/// Makes every table of `todo` ready, `jobs` at a time.
pub async fn all(
    target: &ConnInfo,
    todo: Vec<(TableName, ReadyAction)>,
    jobs: usize,
) -> Result<()> {
    let queue = Arc::new(Mutex::new(VecDeque::from(todo)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..jobs.max(1) {
        let (target, queue) = (target.clone(), queue.clone());
        set.spawn(async move {
            loop {
                let Some((table, action)) = queue.lock().await.pop_front() else {
                    return Ok::<(), Error>(());
                };
                one(&target, &table, action).await?;
            }
        });
    }
    let mut first = None;
    while let Some(j) = set.join_next().await {
        let r = j.map_err(|e| Error::internal(format!("a ready worker failed: {e}")))?;
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
