//! The copy's workers: each holds a source and a target session, takes the
//! next task, streams it with COPY and commits its rows with its done mark.
//! An index builder overlaps them: a table's keys start once its last task
//! has committed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::SinkExt;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tracing::Instrument;

use super::post_data::Pending;
use crate::connect::raw::RawSession;
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Bar, SharedObserver, Unit};
use crate::failpoint;
use crate::pg::{column_list, import_snapshot_sql, Access, TableName};
use crate::plan::ready::ReadyAction;
use crate::plan::{CopyTask, MigrationPlan, TableMapping};
use crate::retry::{Backoff, RETRY_FOR};

/// What every worker shares.
pub(super) struct Run {
    pub(super) source: ConnInfo,
    pub(super) target: ConnInfo,
    pub(super) snapshot: String,
    pub(super) plan: Arc<MigrationPlan>,
    pub(super) observer: SharedObserver,
    /// Each source table's change signature, read just before the snapshot.
    pub(super) signatures: Arc<super::drift::Signatures>,
    /// The target's foreign keys and triggers may exist already (a copy
    /// started over): rows go in with `session_replication_role = replica`,
    /// as pg_restore's --disable-triggers does, so their order does not
    /// matter.
    pub(super) replica_role: bool,
}

/// One worker's unit of work: one task in its own transaction, or a table
/// whose source changed since its rows were copied: emptied and copied
/// again, all its tasks in one transaction.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) tasks: Vec<CopyTask>,
    pub(super) recopy: bool,
}

impl Job {
    fn label(&self) -> String {
        match (self.recopy, self.tasks.first()) {
            (true, Some(t)) => format!("{} (again, whole)", t.table),
            (false, Some(t)) => t.id.clone(),
            (_, None) => String::new(),
        }
    }
}

struct Shared {
    run: Run,
    queue: Mutex<VecDeque<Job>>,
    failed: AtomicBool,
    overall: Bar,
    signal: TableDone,
    retries: AtomicU32,
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
/// `pending` post-data is given. Returns how many times work was retried
/// after a transient failure.
pub(super) async fn run(
    run: Run,
    todo: VecDeque<Job>,
    remaining: HashMap<TableName, usize>,
    pending: Option<Arc<Mutex<Pending>>>,
    ready: HashMap<TableName, ReadyAction>,
    jobs: usize,
) -> Result<u32> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<TableName>();
    for (table, n) in &remaining {
        if *n == 0 {
            let _ = tx.send(table.clone());
        }
    }
    // Held here: dropping the copy (Ctrl-C) aborts the builder too. While
    // the copy runs the builder has half the jobs; once the copy workers
    // are done (their sessions closed), all of them for the tail.
    let during_copy = (jobs / 2).max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(during_copy));
    let mut builder = JoinSet::new();
    if let Some(p) = pending {
        builder.spawn(index_builder(
            run.target.clone(),
            p,
            ready,
            rx,
            permits.clone(),
        ));
    }
    let signal = TableDone {
        remaining: Mutex::new(remaining),
        tx,
    };
    let copied = if todo.is_empty() {
        drop(signal);
        Ok(0)
    } else {
        let total: i64 = todo
            .iter()
            .flat_map(|j| &j.tasks)
            .map(|t| t.est_bytes.max(1))
            .sum();
        let overall = Bar::new(&run.observer, "copy", total as u64, Unit::Bytes);
        let shared = Arc::new(Shared {
            run,
            queue: Mutex::new(todo),
            failed: AtomicBool::new(false),
            overall,
            signal,
            retries: AtomicU32::new(0),
        });
        run_workers(shared.clone(), jobs)
            .await
            .map(|()| shared.retries.load(Ordering::SeqCst))
    };
    permits.add_permits(jobs.saturating_sub(during_copy));
    let built = match builder.join_next().await {
        Some(j) => j.map_err(|e| Error::internal(format!("the index builder failed: {e}")))?,
        None => Ok(()),
    };
    let retries = copied?;
    built?;
    Ok(retries)
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

/// A source and a target session, tuned for the copy. Text COPY (between
/// majors) reads back what the other side wrote only under the same
/// settings ([`crate::pg::TEXT_FORMS`]: a source role's DateStyle or
/// extra_float_digits must not round or reorder values). The source session
/// reads COPY data in bounded pieces ([`RawSession`]): a row holding a huge
/// value never sits in memory whole.
async fn open_sessions(run: &Run) -> Result<(RawSession, Client)> {
    let mut src = RawSession::connect(&run.source).await?;
    let tgt = connect(&run.target).await?;
    src.execute(crate::pg::TEXT_FORMS)
        .await
        .map_err(|e| e.context("setting the source session's text forms"))?;
    let replica = if run.replica_role {
        " set session_replication_role = replica;"
    } else {
        ""
    };
    tgt.batch_execute(&format!(
        "{} set synchronous_commit = off;{replica}",
        crate::pg::TEXT_FORMS
    ))
    .await
    .map_err(|e| Error::postgres("tuning the target session", e))?;
    Ok((src, tgt))
}

/// Takes jobs until the queue is empty. A job that fails for a transient
/// reason (the target restarted, a connection was reset) is retried on new
/// sessions with backoff, for up to [`RETRY_FOR`].
async fn worker(shared: &Shared, bar: &Bar) -> Result<()> {
    let mut sessions: Option<(RawSession, Client)> = None;
    loop {
        if shared.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(job) = shared.queue.lock().await.pop_front() else {
            return Ok(());
        };
        let mut backoff = Backoff::new(RETRY_FOR);
        loop {
            let result = match sessions.take() {
                Some(s) => Ok(s),
                None => open_sessions(&shared.run).await,
            };
            let result = match result {
                Ok((mut src, tgt)) => {
                    let r = copy_job(&mut src, &tgt, shared, &job, bar).await;
                    if r.is_ok() {
                        sessions = Some((src, tgt));
                    }
                    r
                }
                Err(e) => Err(e),
            };
            let Err(e) = result else { break };
            if !backoff.retry(&e, &format!("copying {}", job.label())).await {
                return Err(e);
            }
            shared.retries.fetch_add(1, Ordering::SeqCst);
            // The commit may have reached the target before the connection broke.
            if committed(&shared.run, &job).await.unwrap_or(false) {
                break;
            }
        }
        for task in &job.tasks {
            if let Some(m) = shared.run.plan.mapping(&task.table) {
                shared.signal.task_done(&m.target).await;
            }
        }
    }
}

/// Whether `job` committed (after a connection broke around its commit).
async fn committed(run: &Run, job: &Job) -> Result<bool> {
    let tgt = connect(&run.target).await?;
    let ids: Vec<&str> = job.tasks.iter().map(|t| t.id.as_str()).collect();
    let done: i64 = tgt
        .query_one(
            "select count(*) from supamigrate.copy_tasks where id = any($1) and done_at is not null",
            &[&ids],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy's progress", e))?
        .get(0);
    if done as usize != job.tasks.len() {
        return Ok(false);
    }
    if !job.recopy {
        return Ok(true);
    }
    // A re-copied table's tasks were done before too: its signature tells.
    let table = &job.tasks[0].table;
    let recorded = super::drift::recorded(&tgt).await?;
    Ok(recorded.get(table) == run.signatures.get(table))
}

/// Copies one job: its rows, the tasks' done marks and the source table's
/// signature commit together.
async fn copy_job(
    src: &mut RawSession,
    tgt: &Client,
    shared: &Shared,
    job: &Job,
    bar: &Bar,
) -> Result<()> {
    src.execute(&import_snapshot_sql(&shared.run.snapshot, Access::ReadOnly))
        .await
        .map_err(|e| {
            e.context("importing the snapshot")
                .with_hint(crate::pg::SNAPSHOT_GONE)
        })?;
    tgt.batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting a target transaction", e))?;
    let result = async {
        if job.recopy {
            empty_for_recopy(tgt, &shared.run.plan, job).await?;
        }
        for task in &job.tasks {
            let mapping =
                shared.run.plan.mapping(&task.table).ok_or_else(|| {
                    Error::internal(format!("task {} has no table mapping", task.id))
                })?;
            bar.message(task.id.clone());
            let started = Instant::now();
            let span = tracing::info_span!("copy", table = %mapping.target, task = %task.id);
            let (rows, bytes) = stream(src, tgt, shared, task, mapping, bar, started)
                .instrument(span)
                .await?;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                task = %task.id,
                rows,
                mb = format!("{:.1}", bytes as f64 / 1e6),
                mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-6)),
                "copied"
            );
        }
        if let Some(t) = job.tasks.first() {
            let signature = shared
                .run
                .signatures
                .get(&t.table)
                .map_or("", String::as_str);
            super::drift::record(tgt, &t.table, signature).await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    match result {
        Ok(()) => {
            failpoint::hit(failpoint::COPY_BEFORE_COMMIT);
            tgt.batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", job.label()), e))?;
            failpoint::hit(failpoint::COPY_TASK_DONE);
            src.execute("commit")
                .await
                .map_err(|e| e.context("ending the source transaction"))?;
            Ok(())
        }
        Err(e) => {
            // The source session is closed by the caller (a COPY may be
            // part-read on it); its transaction ends with it.
            let _ = tgt.batch_execute("rollback").await;
            Err(e)
        }
    }
}

/// Empties a table whose source changed and clears its tasks' done marks,
/// inside the job's transaction: until it commits, the old rows stay.
async fn empty_for_recopy(tgt: &Client, plan: &MigrationPlan, job: &Job) -> Result<()> {
    let Some(first) = job.tasks.first() else {
        return Ok(());
    };
    let mapping = plan
        .mapping(&first.table)
        .ok_or_else(|| Error::internal(format!("task {} has no table mapping", first.id)))?;
    tgt.batch_execute(&format!("truncate only {}", mapping.target.quoted()))
        .await
        .map_err(|e| {
            Error::postgres(format!("emptying {} to copy it again", mapping.target), e)
                .with_hint("a table is copied again before post-data's foreign keys exist; if they do, start over on a fresh target database")
        })?;
    let ids: Vec<&str> = job.tasks.iter().map(|t| t.id.as_str()).collect();
    tgt.execute(
        "update supamigrate.copy_tasks set done_at = null, rows = null, bytes = null, seconds = null where id = any($1)",
        &[&ids],
    )
    .await
    .map_err(|e| Error::postgres("clearing the re-copied table's progress", e))?;
    // Its statistics describe the rows it had: ANALYZE it again.
    tgt.execute(
        "delete from supamigrate.ready_done where target_schema = $1 and target_table = $2",
        &[&mapping.target.schema, &mapping.target.name],
    )
    .await
    .map_err(|e| Error::postgres("clearing the re-copied table's ready mark", e))?;
    Ok(())
}

/// Empties the table in the task's transaction, as `COPY … FREEZE` needs;
/// refuses (nothing is removed) if it holds any row: a whole-table task
/// not done yet committed none, so a row there is someone else's.
async fn empty_for_freeze(tgt: &Client, mapping: &TableMapping) -> Result<()> {
    let t = mapping.target.quoted();
    let rows = tgt
        .query_opt(&format!("select 1 from only {t} limit 1"), &[])
        .await
        .map_err(|e| Error::postgres(format!("checking that {} is empty", mapping.target), e))?;
    if rows.is_some() {
        return Err(Error::new(
            ErrorKind::Database,
            format!(
                "{} holds rows this copy did not write; nothing was removed",
                mapping.target
            ),
        )
        .with_hint("something else writes into the target while the copy runs: stop it, then `supamigrate copy --recopy TABLE` or start over on a fresh target database"));
    }
    tgt.batch_execute(&format!("truncate only {t}"))
        .await
        .map_err(|e| Error::postgres(format!("emptying {} for COPY FREEZE", mapping.target), e))
}

/// The options of the COPY out of the source and into the target; a
/// whole-table task that goes in with FREEZE empties the table first.
async fn copy_options(
    tgt: &Client,
    shared: &Shared,
    task: &CopyTask,
    mapping: &TableMapping,
) -> Result<(&'static str, &'static str)> {
    let format = if mapping.binary {
        " (format binary)"
    } else {
        ""
    };
    // (COPY FREEZE needs the table emptied in the task's transaction, which
    // foreign keys already in place refuse.)
    let freeze = task.range.is_none()
        && !mapping.partitioned
        && !shared.run.replica_role
        && shared.run.plan.ready_for(&mapping.target).copy_freeze();
    if freeze {
        empty_for_freeze(tgt, mapping).await?;
    }
    let into = match (mapping.binary, freeze) {
        (true, true) => " (format binary, freeze)",
        (false, true) => " (freeze)",
        (_, false) => format,
    };
    Ok((format, into))
}

/// Streams the task's rows and marks it done, inside the open transactions.
async fn stream(
    src: &mut RawSession,
    tgt: &Client,
    shared: &Shared,
    task: &CopyTask,
    mapping: &TableMapping,
    bar: &Bar,
    started: Instant,
) -> Result<(u64, u64)> {
    let (format, into) = copy_options(tgt, shared, task, mapping).await?;
    let sink = tgt
        .copy_in::<_, bytes::Bytes>(&format!(
            "copy {} ({}) from stdin{into}",
            mapping.target.quoted(),
            column_list(&mapping.target_columns())
        ))
        .await
        .map_err(|e| Error::postgres(format!("starting COPY into {}", mapping.target), e))?;
    let mut sink = std::pin::pin!(sink);
    let mut source = src
        .copy_out(&format!(
            "copy ({}) to stdout{format}",
            task.source_query(mapping)
        ))
        .await
        .map_err(|e| e.context(format!("starting COPY from the source for {}", task.id)))?;
    let (mut bytes, mut rows_seen) = (0u64, 0u64);
    // Pieces of at most BATCH bytes, many rows each, or part of one huge
    // row: large messages cost both ends far less per byte, and memory
    // stays bounded by BATCH whatever a row holds.
    const BATCH: usize = 256 * 1024;
    let mut next_message = 4096;
    while let Some((piece, rows)) = source
        .next(BATCH)
        .await
        .map_err(|e| e.context(format!("reading {} from the source", task.id)))?
    {
        bytes += piece.len() as u64;
        rows_seen += rows;
        send(&mut sink, piece, shared, mapping).await?;
        failpoint::hit(failpoint::COPY_CHUNK);
        if rows_seen >= next_message {
            next_message = rows_seen + 4096;
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
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| Error::postgres(format!("finishing COPY into {}", mapping.target), e))?;
    mark_done(tgt, task, rows, bytes, started.elapsed().as_secs_f64()).await?;
    Ok((rows, bytes))
}

/// Sends one message of COPY data to the target, counted.
async fn send(
    sink: &mut std::pin::Pin<&mut tokio_postgres::CopyInSink<bytes::Bytes>>,
    data: bytes::Bytes,
    shared: &Shared,
    mapping: &TableMapping,
) -> Result<()> {
    let len = data.len() as u64;
    sink.send(data)
        .await
        .map_err(|e| Error::postgres(format!("writing {} to the target", mapping.target), e))?;
    shared.overall.inc(len);
    Ok(())
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

/// Builds each table's keys and indexes as tables complete, then makes the
/// table ready for traffic (its ANALYZE: `ready`), one statement per permit
/// (the caller gives half the copy's jobs while the copy runs, all of them
/// after).
async fn index_builder(
    target: ConnInfo,
    pending: Arc<Mutex<Pending>>,
    ready: HashMap<TableName, ReadyAction>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<TableName>,
    permits: Arc<tokio::sync::Semaphore>,
) -> Result<()> {
    let mut set = JoinSet::new();
    while let Some(table) = rx.recv().await {
        let (stmts, prelude) = {
            let mut p = pending.lock().await;
            (p.take_keys_for(&table), p.prelude().to_vec())
        };
        let action = ready.get(&table).copied();
        let (target, permits) = (target.clone(), permits.clone());
        set.spawn(async move {
            let mut keys = JoinSet::new();
            for st in stmts {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::internal(format!("index builder: {e}")))?;
                let (target, prelude) = (target.clone(), prelude.clone());
                keys.spawn(async move {
                    let _permit = permit;
                    super::post_data::run_statements(&target, &prelude, VecDeque::from([st]), 1)
                        .await
                });
            }
            while let Some(j) = keys.join_next().await {
                j.map_err(|e| Error::internal(format!("an index build failed: {e}")))??;
            }
            if let Some(action) = action {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::internal(format!("index builder: {e}")))?;
                super::ready::one(&target, &table, action).await?;
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(j) = set.join_next().await {
        j.map_err(|e| Error::internal(format!("an index build failed: {e}")))??;
    }
    Ok(())
}
