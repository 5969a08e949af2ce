//! The data copy (seed Phases 4.1–4.3 and 5.3): every table, and `auth.users`
//! into `app_users`, streamed source → target with COPY, in parallel, from one
//! consistent snapshot, resumable after a kill at any moment.
//!
//! - [`plan`] decides the tasks (pure); they are stored on the target in
//!   `supamigrate.copy_tasks` before any row moves, and reused by a resumed run.
//! - A coordinator session on the source exports a snapshot; every worker
//!   imports it, so all tasks read the same instant of the source.
//! - Each task's rows and its "done" mark commit in one target transaction: a
//!   kill leaves either both or neither, so a re-run copies every row exactly once.
//! - Tables have no indexes, constraints or triggers yet (pre-data only): no
//!   `DISABLE TRIGGER` (RDS refuses it) and `handle_new_user` cannot fire.
//! - Then sequences take the source's exact state, and [`post_data`] builds
//!   indexes and constraints in parallel.

pub mod plan;
pub mod post_data;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::{quote_ident, TableName};
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
pub use plan::{PlanOptions, TableInfo, Task};

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Schemas whose tables are copied.
    pub schemas: Vec<String>,
    /// Concurrent workers (source + target connection each).
    pub jobs: usize,
    /// Splitting of large tables.
    pub plan: PlanOptions,
    /// Copy `auth.users` into `app_users`.
    pub users: bool,
    /// Show progress bars (on a terminal).
    pub progress: bool,
    /// Post-data to build: each table's keys and indexes as soon as its data
    /// is in (overlapping the copy), then foreign keys and the rest. `None`
    /// leaves post-data to `schema apply --section post-data`.
    pub post_data: Option<Vec<String>>,
}

/// One table's totals.
#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    /// Target table.
    pub table: String,
    /// Rows copied.
    pub rows: i64,
    /// Bytes of COPY data.
    pub bytes: i64,
    /// Seconds spent (summed over its tasks).
    pub seconds: f64,
}

/// What the copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySummary {
    /// Per target table.
    pub tables: Vec<TableSummary>,
    /// Tasks done by this run (the rest were done by an earlier one).
    pub tasks_now: usize,
    /// Tasks done earlier.
    pub tasks_earlier: usize,
    /// Sequences set to the source's state.
    pub sequences: usize,
    /// Password hash formats in auth.users: (format, users).
    pub password_hashes: Vec<(String, i64)>,
    /// Post-data statements built by this run (`None`: not asked for).
    pub post_data_built: Option<usize>,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
}

const STATE_SQL: &str = "create schema if not exists supamigrate; \
    create table if not exists supamigrate.copy_tasks ( \
        id text primary key, \
        target_schema text not null, \
        target_table text not null, \
        columns text[] not null, \
        source_sql text not null, \
        est_bytes bigint not null, \
        binary_format boolean not null default false, \
        rows bigint, \
        bytes bigint, \
        seconds double precision, \
        done_at timestamptz)";

/// Reads what the planner needs from the source catalog.
pub async fn source_tables(client: &Client, schemas: &[String]) -> Result<Vec<TableInfo>> {
    let rows = client
        .query(include_str!("../catalog/sql/copy_tables.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("listing tables to copy", e))?;
    let mut out = Vec::new();
    for r in rows {
        let name = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let cols = client
            .query(
                include_str!("../catalog/sql/copy_columns.sql"),
                &[&name.schema, &name.name],
            )
            .await
            .map_err(|e| Error::postgres(format!("listing columns of {name}"), e))?;
        out.push(TableInfo {
            binary_safe: cols.iter().all(|c| c.get::<_, bool>(1)),
            columns: cols.iter().map(|c| c.get(0)).collect(),
            kind: r.get(2),
            pages: r.get(3),
            bytes: r.get(5),
            name,
        });
    }
    Ok(out)
}

/// Loads the stored plan, or plans now and stores it (one transaction).
async fn load_or_plan(
    source: &Client,
    target: &mut Client,
    opts: &CopyOptions,
) -> Result<Vec<(Task, bool)>> {
    let rows = target
        .query(
            "select id, target_schema, target_table, columns, source_sql, est_bytes, done_at is not null, binary_format \
             from supamigrate.copy_tasks order by est_bytes desc, id",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy plan", e))?;
    if !rows.is_empty() {
        return Ok(rows
            .iter()
            .map(|r| {
                (
                    Task {
                        id: r.get(0),
                        target: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                        columns: r.get(3),
                        source_sql: r.get(4),
                        est_bytes: r.get(5),
                        binary: r.get(7),
                    },
                    r.get(6),
                )
            })
            .collect());
    }
    let tables = source_tables(source, &opts.schemas).await?;
    let mut tasks = plan::plan(&tables, opts.users, opts.plan);
    // Binary COPY is only certain to read back the same within one major version.
    let same_major =
        crate::catalog::server_major(source).await? == crate::catalog::server_major(target).await?;
    if !same_major {
        for t in &mut tasks {
            t.binary = false;
        }
    }
    let tx = target
        .transaction()
        .await
        .map_err(|e| Error::postgres("storing the copy plan", e))?;
    for t in &tasks {
        tx.execute(
            "insert into supamigrate.copy_tasks (id, target_schema, target_table, columns, source_sql, est_bytes, binary_format) \
             values ($1, $2, $3, $4, $5, $6, $7)",
            &[&t.id, &t.target.schema, &t.target.name, &t.columns, &t.source_sql, &t.est_bytes, &t.binary],
        )
        .await
        .map_err(|e| Error::postgres("storing the copy plan", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| Error::postgres("storing the copy plan", e))?;
    Ok(tasks.into_iter().map(|t| (t, false)).collect())
}

/// Copies the data. The target must have pre-data applied.
pub async fn copy(source: &ConnInfo, target: &ConnInfo, opts: &CopyOptions) -> Result<CopySummary> {
    let started = Instant::now();
    let mut tgt = connect(target).await?;
    let pre_done: bool = tgt
        .query_one(
            "select to_regclass('supamigrate.schema_sections') is not null \
             and exists (select 1 from supamigrate.schema_sections where section = 'pre-data')",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the schema state", e))?
        .get(0);
    if !pre_done {
        return Err(Error::invalid_input("the target has no schema yet; nothing was copied")
            .with_hint("run `supamigrate provision` and `supamigrate schema apply --section pre-data` first"));
    }
    tgt.batch_execute(STATE_SQL)
        .await
        .map_err(|e| Error::postgres("creating the copy state tables", e))?;

    // The coordinator's snapshot: every worker reads this instant of the source.
    let coordinator = connect(source).await?;
    coordinator
        .batch_execute("begin isolation level repeatable read read only")
        .await
        .map_err(|e| Error::postgres("opening the source snapshot", e))?;
    let snapshot: String = coordinator
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::postgres("exporting the source snapshot", e))?
        .get(0);

    let all = load_or_plan(&coordinator, &mut tgt, opts).await?;
    let mut summary = CopySummary {
        tasks_earlier: all.iter().filter(|(_, done)| *done).count(),
        ..CopySummary::default()
    };
    let todo: VecDeque<Task> = all
        .iter()
        .filter(|(_, done)| !done)
        .map(|(t, _)| t.clone())
        .collect();
    summary.tasks_now = todo.len();

    // Index builds overlap the copy: a table's keys start once its last task commits.
    let pending = match &opts.post_data {
        Some(stmts) => post_data::prepare(target, stmts).await?,
        None => None,
    };
    summary.post_data_built = opts
        .post_data
        .as_ref()
        .map(|_| pending.as_ref().map_or(0, |p| p.remaining()));
    let pending = pending.map(|p| Arc::new(Mutex::new(p)));
    let mut remaining: HashMap<String, usize> = HashMap::new();
    for (t, done) in &all {
        let n = remaining.entry(t.target.to_string()).or_insert(0);
        if !done {
            *n += 1;
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (table, n) in &remaining {
        if *n == 0 {
            let _ = tx.send(table.clone());
        }
    }
    let builder = pending
        .clone()
        .map(|p| tokio::spawn(index_builder(target.clone(), p, rx, (opts.jobs / 2).max(1))));
    let signal = TableDone {
        remaining: Arc::new(Mutex::new(remaining)),
        tx,
    };
    let copied = if todo.is_empty() {
        drop(signal);
        Ok(())
    } else {
        let total: i64 = todo.iter().map(|t| t.est_bytes.max(1)).sum();
        run_workers(source, target, &snapshot, todo, opts, total, signal).await
    };
    let built = match builder {
        Some(b) => b
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("index builder crashed: {e}")))?,
        None => Ok(()),
    };
    copied?;
    built?;

    summary.sequences = copy_sequences(&coordinator, &tgt, &opts.schemas).await?;
    if opts.users {
        summary.password_hashes = password_hash_formats(&coordinator).await?;
    }
    coordinator
        .batch_execute("commit")
        .await
        .map_err(|e| Error::postgres("closing the source snapshot", e))?;

    let rows = tgt
        .query(
            "select target_schema || '.' || target_table, sum(rows)::bigint, sum(bytes)::bigint, sum(seconds) \
             from supamigrate.copy_tasks group by 1 order by 1",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("summarizing the copy", e))?;
    summary.tables = rows
        .iter()
        .map(|r| TableSummary {
            table: r.get(0),
            rows: r.get::<_, Option<i64>>(1).unwrap_or(0),
            bytes: r.get::<_, Option<i64>>(2).unwrap_or(0),
            seconds: r.get::<_, Option<f64>>(3).unwrap_or(0.0),
        })
        .collect();
    if let Some(p) = pending {
        let p = Arc::try_unwrap(p)
            .map_err(|_| Error::new(ErrorKind::Io, "post-data still in use"))?
            .into_inner();
        p.finish(target, opts.jobs).await?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Tells the index builder when a table's last task has committed.
struct TableDone {
    remaining: Arc<Mutex<HashMap<String, usize>>>,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl TableDone {
    async fn task_done(&self, table: &TableName) {
        let key = table.to_string();
        let mut rem = self.remaining.lock().await;
        if let Some(n) = rem.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                let _ = self.tx.send(key);
            }
        }
    }
}

/// Builds each table's keys and indexes as tables complete, `jobs` at a time
/// (the caller passes half the copy's jobs: the copy workers keep the rest).
async fn index_builder(
    target: ConnInfo,
    pending: Arc<Mutex<post_data::Pending>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    jobs: usize,
) -> Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
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
                .map_err(|e| Error::new(ErrorKind::Io, format!("index builder: {e}")))?;
            let (target, prelude) = (target.clone(), prelude.clone());
            set.spawn(async move {
                let _permit = permit;
                post_data::run_statements(&target, &prelude, VecDeque::from([st]), 1).await
            });
        }
    }
    while let Some(j) = set.join_next().await {
        j.map_err(|e| Error::new(ErrorKind::Io, format!("index build crashed: {e}")))??;
    }
    Ok(())
}

/// What every copy worker shares.
struct Shared {
    source: ConnInfo,
    target: ConnInfo,
    snapshot: String,
    queue: Mutex<VecDeque<Task>>,
    failed: std::sync::atomic::AtomicBool,
    overall: indicatif::ProgressBar,
    signal: TableDone,
}

async fn run_workers(
    source: &ConnInfo,
    target: &ConnInfo,
    snapshot: &str,
    todo: VecDeque<Task>,
    opts: &CopyOptions,
    total_bytes: i64,
    signal: TableDone,
) -> Result<()> {
    let jobs = opts.jobs.clamp(1, todo.len().max(1));
    let multi = indicatif::MultiProgress::new();
    if !opts.progress {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = multi.add(indicatif::ProgressBar::new(total_bytes as u64));
    overall.set_style(
        indicatif::ProgressStyle::with_template(
            "copy [{bar:30}] {percent}% {bytes}/{total_bytes} (estimated) {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let shared = Arc::new(Shared {
        source: source.clone(),
        target: target.clone(),
        snapshot: snapshot.to_string(),
        queue: Mutex::new(todo),
        failed: std::sync::atomic::AtomicBool::new(false),
        overall: overall.clone(),
        signal,
    });
    let mut set = tokio::task::JoinSet::new();
    for w in 0..jobs {
        let shared = shared.clone();
        let bar = multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("  worker {prefix}: {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(w.to_string());
        set.spawn(async move {
            let result = worker(&shared, &bar).await;
            bar.finish_and_clear();
            if result.is_err() {
                shared
                    .failed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            result
        });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let result =
            joined.map_err(|e| Error::new(ErrorKind::Io, format!("copy worker crashed: {e}")))?;
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    overall.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn worker(shared: &Shared, bar: &indicatif::ProgressBar) -> Result<()> {
    let src = connect(&shared.source).await?;
    let tgt = connect(&shared.target).await?;
    tgt.batch_execute("set synchronous_commit = off")
        .await
        .map_err(|e| Error::postgres("tuning the target session", e))?;
    loop {
        if shared.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let Some(task) = shared.queue.lock().await.pop_front() else {
            return Ok(());
        };
        bar.set_message(task.id.clone());
        let started = Instant::now();
        let (rows, bytes) =
            copy_task(&src, &tgt, &shared.snapshot, &task, &shared.overall, bar).await?;
        let secs = started.elapsed().as_secs_f64();
        shared.signal.task_done(&task.target).await;
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
    snapshot: &str,
    task: &Task,
    overall: &indicatif::ProgressBar,
    bar: &indicatif::ProgressBar,
) -> Result<(u64, u64)> {
    let started = Instant::now();
    src.batch_execute("begin isolation level repeatable read read only")
        .await
        .map_err(|e| Error::postgres("starting a source transaction", e))?;
    src.batch_execute(&format!(
        "set transaction snapshot {}",
        crate::sandbox::quote_literal(snapshot)
    ))
    .await
    .map_err(|e| {
        Error::postgres("importing the source snapshot", e)
            .with_hint("the coordinator session ended early; re-run copy to resume")
    })?;
    tgt.batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting a target transaction", e))?;
    let result = async {
        let cols = task.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let format = if task.binary { " (format binary)" } else { "" };
        let sink = tgt
            .copy_in::<_, bytes::Bytes>(&format!("copy {} ({cols}) from stdin{format}", task.target.quoted()))
            .await
            .map_err(|e| Error::postgres(format!("starting COPY into {}", task.target), e))?;
        let mut sink = std::pin::pin!(sink);
        let stream = src
            .copy_out(&format!("copy ({}) to stdout{format}", task.source_sql))
            .await
            .map_err(|e| Error::postgres(format!("starting COPY from the source for {}", task.id), e))?;
        let mut stream = std::pin::pin!(stream);
        let mut bytes = 0u64;
        // Text COPY sends one message per row: batch them into large messages,
        // which costs both ends far less per byte. Memory stays bounded by BATCH.
        const BATCH: usize = 256 * 1024;
        let mut batch = bytes::BytesMut::with_capacity(BATCH + 64 * 1024);
        let mut rows_seen = 0u64;
        loop {
            let next = stream.next().await;
            let done = next.is_none();
            if let Some(chunk) = next {
                let chunk = chunk.map_err(|e| Error::postgres(format!("reading {} from the source", task.id), e))?;
                bytes += chunk.len() as u64;
                rows_seen += 1;
                batch.extend_from_slice(&chunk);
                if rows_seen % 4096 == 0 {
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    bar.set_message(format!(
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
                sink.send(batch.split().freeze())
                    .await
                    .map_err(|e| Error::postgres(format!("writing {} to the target", task.target), e))?;
                overall.inc(len);
                crate::failpoint::hit("copy-chunk");
            }
            if done {
                break;
            }
        }
        let rows = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| Error::postgres(format!("finishing COPY into {}", task.target), e))?;
        let secs = started.elapsed().as_secs_f64();
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
                format!("task {} was already done by another run; rolled back", task.id),
            )
            .with_hint("run one copy at a time against a target"));
        }
        Ok((rows, bytes))
    }
    .await;
    match result {
        Ok(r) => {
            crate::failpoint::hit("copy-before-commit");
            tgt.batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", task.id), e))?;
            crate::failpoint::hit("copy-task-done");
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

/// Sets every target sequence of `schemas` to the source's `last_value` and
/// `is_called`, read in the coordinator's snapshot.
async fn copy_sequences(coordinator: &Client, tgt: &Client, schemas: &[String]) -> Result<usize> {
    let seqs = coordinator
        .query(
            include_str!("../catalog/sql/list_sequences.sql"),
            &[&schemas],
        )
        .await
        .map_err(|e| Error::postgres("listing sequences", e))?;
    for s in &seqs {
        let name = TableName::new(s.get::<_, String>(0), s.get::<_, String>(1));
        let row = coordinator
            .query_one(
                &format!("select last_value, is_called from {}", name.quoted()),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading sequence {name}"), e))?;
        let (last, called): (i64, bool) = (row.get(0), row.get(1));
        tgt.execute(
            "select setval($1::text::regclass, $2, $3)",
            &[&name.quoted(), &last, &called],
        )
        .await
        .map_err(|e| Error::postgres(format!("setting sequence {name}"), e))?;
    }
    Ok(seqs.len())
}

/// Sets every target sequence of `schemas` to the source's current state
/// (the run's own step after post-data; `copy` also does it at its end).
pub async fn sync_sequences(
    source: &ConnInfo,
    target: &ConnInfo,
    schemas: &[String],
) -> Result<usize> {
    let (src, tgt) = tokio::try_join!(connect(source), connect(target))?;
    copy_sequences(&src, &tgt, schemas).await
}

/// Counts `auth.users` rows by password hash format.
pub async fn password_hash_formats(client: &Client) -> Result<Vec<(String, i64)>> {
    let rows = client
        .query(
            "select case \
                 when coalesce(encrypted_password, '') = '' then 'none (OAuth, magic link, SSO)' \
                 when encrypted_password ~ '^\\$2[aby]\\$' then 'bcrypt ($' || substr(encrypted_password, 2, 2) || '$)' \
                 when encrypted_password like '$argon2%' then 'argon2' \
                 when encrypted_password like '$fbscrypt$%' then 'firebase scrypt' \
                 when encrypted_password like '{%' then 'encrypted JSON (needs the GoTrue key)' \
                 else 'other' end, count(*) \
             from auth.users group by 1 order by 2 desc, 1",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("counting password hash formats", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
