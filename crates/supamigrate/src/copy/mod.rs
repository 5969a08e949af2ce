//! The data copy (seed Phases 4.1–4.3 and 5.3): every table of the plan,
//! and `auth.users` into `app_users`, streamed source → target with COPY, in
//! parallel, from one consistent snapshot, resumable after a kill at any
//! moment.
//!
//! - The plan's tasks are stored on the target in `supamigrate.copy_tasks`
//!   before any row moves; a resumed run finds them there.
//! - A coordinator session on the source exports a snapshot; every worker
//!   imports it, so all tasks read the same instant of the source.
//! - Each task's rows and its "done" mark commit in one target transaction: a
//!   kill leaves either both or neither, so a re-run copies every row exactly once.
//! - Tables have no indexes, constraints or triggers yet (pre-data only): no
//!   `DISABLE TRIGGER` (RDS refuses it) and `handle_new_user` cannot fire.
//! - Then sequences take the source's exact state, and [`post_data`] builds
//!   indexes and constraints in parallel, each table's as soon as its data is in.

pub mod post_data;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::events::SharedObserver;
use crate::pg::{export_snapshot, read_sequence, set_sequence, Access, TableName};
use crate::plan::{CopyTask, MigrationPlan, Section};

/// How to copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Concurrent workers (source + target connection each).
    pub jobs: usize,
    /// Build post-data too: each table's keys and indexes as soon as its data
    /// is in (overlapping the copy), then foreign keys and the rest. `false`
    /// leaves post-data to `schema apply --section post-data`.
    pub post_data: bool,
}

/// One table's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// How many users' passwords are stored in one format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashCount {
    /// The format (`bcrypt ($2a$)`, `argon2`, `none (OAuth, magic link, SSO)`…).
    pub format: String,
    /// Users.
    pub users: i64,
}

/// What the copy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopySummary {
    /// Per target table.
    pub tables: Vec<TableSummary>,
    /// Tasks done by this run (the rest were done by an earlier one).
    pub tasks_now: usize,
    /// Tasks done earlier.
    pub tasks_earlier: usize,
    /// Sequences set to the source's state.
    pub sequences: usize,
    /// Password hash formats in auth.users.
    pub password_hashes: Vec<HashCount>,
    /// Post-data statements built by this run (`None`: not asked for).
    pub post_data_built: Option<usize>,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
}

impl CopySummary {
    /// Rows copied, all tables.
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Stores the plan's tasks on the target (first run) or reads which are
/// done (a resumed run). Refuses tasks stored by another plan.
async fn load_or_store_tasks(
    target: &mut Client,
    plan: &MigrationPlan,
) -> Result<Vec<(CopyTask, bool)>> {
    let rows = target
        .query(
            "select id, done_at is not null from supamigrate.copy_tasks",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy's progress", e))?;
    let done: HashMap<String, bool> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if !done.is_empty() {
        if done.len() != plan.copy_tasks.len()
            || plan.copy_tasks.iter().any(|t| !done.contains_key(&t.id))
        {
            return Err(Error::invalid_input(
                "the target's copy tasks were stored by another plan; nothing was copied",
            )
            .with_hint("resume with the plan that started the copy, or copy into a freshly provisioned database"));
        }
        return Ok(plan
            .copy_tasks
            .iter()
            .map(|t| (t.clone(), done[&t.id]))
            .collect());
    }
    let tx = target
        .transaction()
        .await
        .map_err(|e| Error::postgres("storing the copy tasks", e))?;
    for t in &plan.copy_tasks {
        let target_table = plan
            .mapping(&t.table)
            .map(|m| m.target.clone())
            .unwrap_or_else(|| t.table.clone());
        tx.execute(
            "insert into supamigrate.copy_tasks (id, target_schema, target_table, est_bytes) values ($1, $2, $3, $4)",
            &[&t.id, &target_table.schema, &target_table.name, &t.est_bytes],
        )
        .await
        .map_err(|e| Error::postgres("storing the copy tasks", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| Error::postgres("storing the copy tasks", e))?;
    Ok(plan.copy_tasks.iter().map(|t| (t.clone(), false)).collect())
}

/// Refuses a target whose schema is not there yet.
async fn require_pre_data(target: &Client, plan: &MigrationPlan) -> Result<()> {
    crate::store::require(target, "copy").await?;
    match crate::apply::state(target, plan, Section::PreData).await? {
        Some(true) => Ok(()),
        Some(false) => Err(crate::apply::different_section(Section::PreData)),
        None => Err(
            Error::invalid_input("the target has no schema yet; nothing was copied")
                .with_hint("run `supamigrate schema apply --section pre-data` first"),
        ),
    }
}

/// Copies the plan's data. The target must have pre-data applied.
pub async fn copy(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: CopyOptions,
    secrets: &crate::secrets::Vault,
    observer: &SharedObserver,
) -> Result<CopySummary> {
    let started = Instant::now();
    let mut tgt = connect(target).await?;
    require_pre_data(&tgt, plan).await?;
    // The coordinator's snapshot: every worker reads this instant of the source.
    let coordinator = connect(source).await?;
    let snapshot = export_snapshot(&coordinator, Access::ReadOnly).await?;
    let all = load_or_store_tasks(&mut tgt, plan).await?;
    let mut summary = CopySummary {
        tasks_earlier: all.iter().filter(|(_, done)| *done).count(),
        ..CopySummary::default()
    };
    let todo: VecDeque<CopyTask> = all
        .iter()
        .filter(|(_, done)| !done)
        .map(|(t, _)| t.clone())
        .collect();
    summary.tasks_now = todo.len();
    let pending = if opts.post_data {
        post_data::prepare(target, plan, secrets).await?
    } else {
        None
    };
    summary.post_data_built = opts
        .post_data
        .then(|| pending.as_ref().map_or(0, |p| p.remaining()));
    let pending = pending.map(|p| Arc::new(Mutex::new(p)));
    let remaining = remaining_per_table(plan, &all);
    let run = worker::Run {
        source: source.clone(),
        target: target.clone(),
        snapshot,
        plan: Arc::new(plan.clone()),
        observer: observer.clone(),
    };
    worker::run(run, todo, remaining, pending.clone(), opts.jobs).await?;
    summary.sequences = copy_sequences(&coordinator, &tgt, &plan.sequences).await?;
    if plan.users().is_some() {
        summary.password_hashes = password_hash_formats(&coordinator).await?;
    }
    coordinator
        .batch_execute("commit")
        .await
        .map_err(|e| Error::postgres("closing the source snapshot", e))?;
    summary.tables = table_summaries(&tgt).await?;
    if let Some(p) = pending {
        let p = Arc::try_unwrap(p)
            .map_err(|_| Error::internal("post-data is still shared after the copy"))?
            .into_inner();
        p.finish(target, opts.jobs).await?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// For each target table, how many of its tasks are not done yet.
fn remaining_per_table(
    plan: &MigrationPlan,
    all: &[(CopyTask, bool)],
) -> HashMap<TableName, usize> {
    let mut remaining: HashMap<TableName, usize> = HashMap::new();
    for (t, done) in all {
        let target = plan
            .mapping(&t.table)
            .map(|m| m.target.clone())
            .unwrap_or_else(|| t.table.clone());
        let n = remaining.entry(target).or_insert(0);
        if !done {
            *n += 1;
        }
    }
    remaining
}

async fn table_summaries(tgt: &Client) -> Result<Vec<TableSummary>> {
    let rows = tgt
        .query(
            "select target_schema || '.' || target_table, sum(rows)::bigint, sum(bytes)::bigint, sum(seconds) \
             from supamigrate.copy_tasks group by 1 order by 1",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("summarizing the copy", e))?;
    Ok(rows
        .iter()
        .map(|r| TableSummary {
            table: r.get(0),
            rows: r.get::<_, Option<i64>>(1).unwrap_or(0),
            bytes: r.get::<_, Option<i64>>(2).unwrap_or(0),
            seconds: r.get::<_, Option<f64>>(3).unwrap_or(0.0),
        })
        .collect())
}

/// Sets every sequence to the source's `last_value` and `is_called`, read
/// in `from`'s snapshot.
async fn copy_sequences(from: &Client, to: &Client, sequences: &[TableName]) -> Result<usize> {
    for s in sequences {
        let state = read_sequence(from, s).await?;
        set_sequence(to, s, state).await?;
    }
    Ok(sequences.len())
}

/// Sets every planned sequence to the source's current state (the run's
/// own step after post-data; `copy` also does it at its end).
pub async fn sync_sequences(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
) -> Result<usize> {
    let (src, tgt) = tokio::try_join!(connect(source), connect(target))?;
    copy_sequences(&src, &tgt, &plan.sequences).await
}

/// Counts `auth.users` rows by password hash format.
pub async fn password_hash_formats(client: &Client) -> Result<Vec<HashCount>> {
    let rows = client
        .query(include_str!("sql/password_hash_formats.sql"), &[])
        .await
        .map_err(|e| Error::postgres("counting password hash formats", e))?;
    Ok(rows
        .iter()
        .map(|r| HashCount {
            format: r.get(0),
            users: r.get(1),
        })
        .collect())
}
