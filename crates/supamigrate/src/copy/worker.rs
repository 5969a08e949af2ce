//! The copy's workers: each holds a source and a target session, takes the
//! next task, streams it with COPY and commits its rows with its done mark.
//! An index builder overlaps them: a table's keys start once its last task
//! has committed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tracing::Instrument;

use super::post_data::Pending;
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Bar, SharedObserver, Unit};
use crate::failpoint;
use crate::pg::{column_list, import_snapshot, Access, TableName};
use crate::plan::{CopyTask, MigrationPlan, TableMapping};

/// What every worker shares.
pub(super) struct Run {
    pub(super) source: ConnInfo,
    pub(super) target: ConnInfo,
    pub(super) snapshot: String,
    pub(super) plan: Arc<MigrationPlan>,
    pub(super) observer: SharedObserver,
}

struct Shared {
    run: Run,
    queue: Mutex<VecDeque<CopyTask>>,
    failed: AtomicBool,
    overall: Bar,
    signal: TableDone,
}

/// Tells the index builder when a table's last task has committed.
struct TableDone {
    remaining: Mutex<HashMap<TableName, usize>>,
    tx: tokio::sync::mpsc::UnboundedSender<TableName>,
}

impl TableDone {
    async fn task_done(&self, table: &TableName) {
        let mut rem = self.remaining.lock().await;
        if let Some(n) = rem.get_mut(table) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                let _ = self.tx.send(table.clone());
            }
        }
    }
}

/// Copies `todo` with `jobs` workers; builds keys as tables complete when
/// `pending` post-data is given.
pub(super) async fn run(
    run: Run,
    todo: VecDeque<CopyTask>,
    remaining: HashMap<TableName, usize>,
    pending: Option<Arc<Mutex<Pending>>>,
    jobs: usize,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<TableName>();
    for (table, n) in &remaining {
        if *n == 0 {
            let _ = tx.send(table.clone());
        }
    }
    // Held here: dropping the copy (Ctrl-C) aborts the builder too.
    let mut builder = JoinSet::new();
    if let Some(p) = pending {
        builder.spawn(index_builder(run.target.clone(), p, rx, (jobs / 2).max(1)));
    }
    let signal = TableDone {
        remaining: Mutex::new(remaining),
        tx,
    };
    let copied = if todo.is_empty() {
        drop(signal);
        Ok(())
    } else {
        let total: i64 = todo.iter().map(|t| t.est_bytes.max(1)).sum();
        let overall = Bar::new(&run.observer, "copy", total as u64, Unit::Bytes);
        let shared = Arc::new(Shared {
            run,
            queue: Mutex::new(todo),
            failed: AtomicBool::new(false),
            overall,
            signal,
        });
        run_workers(shared, jobs).await
    };
    let built = match builder.join_next().await {
        Some(j) => j.map_err(|e| Error::internal(format!("the index builder failed: {e}")))?,
        None => Ok(()),
    };
    copied?;
    built
}

async fn run_workers(shared: Arc<Shared>, jobs: usize) -> Result<()> {
    let jobs = jobs.clamp(1, shared.queue.lock().await.len().max(1));
    let mut set = JoinSet::new();
    for w in 0..jobs {
        let shared = shared.clone();
        set.spawn(async move {
            let bar = Bar::new(
                &shared.run.observer,
                format!("worker {w}"),
                0,
                Unit::Spinner,
            );
            let result = worker(&shared, &bar).await;
            if result.is_err() {
                shared.failed.store(true, Ordering::SeqCst);
            }
            result
        });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(|e| Error::internal(format!("a copy worker failed: {e}")))?;
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn worker(shared: &Shared, bar: &Bar) -> Result<()> {
    let src = connect(&shared.run.source).await?;
    let tgt = connect(&shared.run.target).await?;
    tgt.batch_execute("set synchronous_commit = off")
        .await
        .map_err(|e| Error::postgres("tuning the target session", e))?;
    loop {
        if shared.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(task) = shared.queue.lock().await.pop_front() else {
            return Ok(());
        };
        let mapping = shared
            .run
            .plan
            .mapping(&task.table)
            .ok_or_else(|| Error::internal(format!("task {} has no table mapping", task.id)))?;
        bar.message(task.id.clone());
        let started = Instant::now();
        let span = tracing::info_span!("copy", table = %mapping.target, task = %task.id);
        let (rows, bytes) = copy_task(&src, &tgt, shared, &task, mapping, bar)
            .instrument(span)
            .await?;
        let secs = started.elapsed().as_secs_f64();
        shared.signal.task_done(&mapping.target).await;
        tracing::info!(
            task = %task.id,
            rows,
            mb = format!("{:.1}", bytes as f64 / 1e6),
            mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-6)),
            "copied"
        );
    }
}

/// Copies one task: the rows and the done mark commit together.
async fn copy_task(
    src: &Client,
    tgt: &Client,
    shared: &Shared,
    task: &CopyTask,
    mapping: &TableMapping,
    bar: &Bar,
) -> Result<(u64, u64)> {
    let started = Instant::now();
    import_snapshot(src, &shared.run.snapshot, Access::ReadOnly).await?;
    tgt.batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting a target transaction", e))?;
    let result = stream(src, tgt, shared, task, mapping, bar, started).await;
    match result {
        Ok(r) => {
            failpoint::hit(failpoint::COPY_BEFORE_COMMIT);
            tgt.batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", task.id), e))?;
            failpoint::hit(failpoint::COPY_TASK_DONE);
            src.batch_execute("commit")
                .await
                .map_err(|e| Error::postgres("ending the source transaction", e))?;
            Ok(r)
        }
        Err(e) => {
            let _ = tgt.batch_execute("rollback").await;
            let _ = src.batch_execute("rollback").await;
            Err(e)
        }
    }
}

/// Streams the task's rows and marks it done, inside the open transactions.
async fn stream(
    src: &Client,
    tgt: &Client,
    shared: &Shared,
    task: &CopyTask,
    mapping: &TableMapping,
    bar: &Bar,
    started: Instant,
) -> Result<(u64, u64)> {
    let format = if mapping.binary {
        " (format binary)"
    } else {
        ""
    };
    let sink = tgt
        .copy_in::<_, bytes::Bytes>(&format!(
            "copy {} ({}) from stdin{format}",
            mapping.target.quoted(),
            column_list(&mapping.target_columns())
        ))
        .await
        .map_err(|e| Error::postgres(format!("starting COPY into {}", mapping.target), e))?;
    let mut sink = std::pin::pin!(sink);
    let source = src
        .copy_out(&format!(
            "copy ({}) to stdout{format}",
            task.source_query(mapping)
        ))
        .await
        .map_err(|e| {
            Error::postgres(format!("starting COPY from the source for {}", task.id), e)
        })?;
    let mut source = std::pin::pin!(source);
    let (mut bytes, mut rows_seen) = (0u64, 0u64);
    // Text COPY sends one message per row: batch them into large messages,
    // which costs both ends far less per byte. Memory stays bounded by BATCH.
    const BATCH: usize = 256 * 1024;
    let mut batch = bytes::BytesMut::with_capacity(BATCH + 64 * 1024);
    loop {
        let next = source.next().await;
        let done = next.is_none();
        if let Some(chunk) = next {
            let chunk = chunk
                .map_err(|e| Error::postgres(format!("reading {} from the source", task.id), e))?;
            bytes += chunk.len() as u64;
            rows_seen += 1;
            batch.extend_from_slice(&chunk);
            if rows_seen % 4096 == 0 {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.message(format!(
                    "{} {rows_seen} rows, {:.1} MB ({:.0} rows/s, {:.1} MB/s)",
                    task.id,
                    bytes as f64 / 1e6,
                    rows_seen as f64 / secs,
                    bytes as f64 / 1e6 / secs
                ));
            }
        }
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            let len = batch.len() as u64;
            sink.send(batch.split().freeze()).await.map_err(|e| {
                Error::postgres(format!("writing {} to the target", mapping.target), e)
            })?;
            shared.overall.inc(len);
            failpoint::hit(failpoint::COPY_CHUNK);
        }
        if done {
            break;
        }
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| Error::postgres(format!("finishing COPY into {}", mapping.target), e))?;
    mark_done(tgt, task, rows, bytes, started.elapsed().as_secs_f64()).await?;
    Ok((rows, bytes))
}

async fn mark_done(tgt: &Client, task: &CopyTask, rows: u64, bytes: u64, secs: f64) -> Result<()> {
    let marked = tgt
        .execute(
            "update supamigrate.copy_tasks set done_at = now(), rows = $2, bytes = $3, seconds = $4 \
             where id = $1 and done_at is null",
            &[&task.id, &(rows as i64), &(bytes as i64), &secs],
        )
        .await
        .map_err(|e| Error::postgres("recording the copied task", e))?;
    if marked != 1 {
        return Err(Error::new(
            ErrorKind::Database,
            format!(
                "task {} was already done by another run; rolled back",
                task.id
            ),
        )
        .with_hint("run one copy at a time against a target"));
    }
    Ok(())
}

/// Builds each table's keys and indexes as tables complete, `jobs` at a time
/// (the caller passes half the copy's jobs: the copy workers keep the rest).
async fn index_builder(
    target: ConnInfo,
    pending: Arc<Mutex<Pending>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<TableName>,
    jobs: usize,
) -> Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut set = JoinSet::new();
    while let Some(table) = rx.recv().await {
        let (stmts, prelude) = {
            let mut p = pending.lock().await;
            (p.take_keys_for(&table), p.prelude().to_vec())
        };
        for st in stmts {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| Error::internal(format!("index builder: {e}")))?;
            let (target, prelude) = (target.clone(), prelude.clone());
            set.spawn(async move {
                let _permit = permit;
                super::post_data::run_statements(&target, &prelude, VecDeque::from([st]), 1).await
            });
        }
    }
    while let Some(j) = set.join_next().await {
        j.map_err(|e| Error::internal(format!("an index build failed: {e}")))??;
    }
    Ok(())
}
