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

mod drift;
pub mod extension_config;
pub mod post_data;
pub mod ready;
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
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Concurrent workers (source + target connection each).
    pub jobs: usize,
    /// Build post-data too: each table's keys and indexes as soon as its data
    /// is in (overlapping the copy), then foreign keys and the rest. `false`
    /// leaves post-data to `schema apply --section post-data`.
    pub post_data: bool,
    /// Tables to copy again whole although their source did not change
    /// (`--recopy`; source or target names, `schema.table`).
    pub recopy: Vec<String>,
    /// Copy every table again whole (a copy under a new follow snapshot).
    pub recopy_all: bool,
    /// Read the source at this exported snapshot (a replication slot's,
    /// for `--follow`) instead of one of the copy's own.
    pub snapshot: Option<String>,
}

impl CopyOptions {
    /// `jobs` workers, post-data or not, nothing asked to be copied again.
    pub fn new(jobs: usize, post_data: bool) -> CopyOptions {
        CopyOptions {
            jobs,
            post_data,
            recopy: Vec::new(),
            recopy_all: false,
            snapshot: None,
        }
    }
}

/// A table copied again, whole, by this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recopied {
    /// The target table.
    pub table: String,
    /// Why.
    pub reason: String,
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
    /// What made it ready for traffic (`freeze-analyze`, `analyze`), when
    /// something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Seconds that took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_seconds: Option<f64>,
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
    /// Tables copied again whole: their source changed since an earlier,
    /// interrupted run copied them, or `--recopy` asked.
    #[serde(default)]
    pub recopied: Vec<Recopied>,
    /// Work retried after a transient failure (a target restart, a reset
    /// connection).
    #[serde(default)]
    pub retries: u32,
    /// Kept extensions' configuration tables and sequences carried (or
    /// refused by the target) before the data.
    #[serde(default)]
    pub extension_config: Vec<extension_config::ConfigCopied>,
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
    done: &HashMap<String, bool>,
) -> Result<Vec<(CopyTask, bool)>> {
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

/// Which stored tasks are done (empty: no task stored yet).
async fn stored_progress(target: &Client) -> Result<HashMap<String, bool>> {
    let rows = target
        .query(
            "select id, done_at is not null from supamigrate.copy_tasks",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy's progress", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The tables `--recopy` names, as the plan's source tables; an unknown
/// name is refused before anything is written.
fn resolve_recopy(plan: &MigrationPlan, names: &[String]) -> Result<Vec<TableName>> {
    names
        .iter()
        .map(|n| {
            let (schema, name) = n.split_once('.').unwrap_or(("public", n.as_str()));
            plan.tables
                .iter()
                .find(|m| {
                    [&m.source, &m.target]
                        .iter()
                        .any(|t| t.schema == schema && t.name == name)
                })
                .map(|m| m.source.clone())
                .ok_or_else(|| {
                    Error::invalid_input(format!(
                        "--recopy {n}: the plan copies no such table; nothing was copied"
                    ))
                    .with_hint("name a table as schema.table, as `supamigrate plan` lists them")
                })
        })
        .collect()
}

/// Refuses to write into target tables that hold rows the copy did not
/// write: a table with no task done must be empty. Reads only.
async fn require_empty_or_ours(
    target: &Client,
    plan: &MigrationPlan,
    done: &HashMap<String, bool>,
) -> Result<()> {
    let mut foreign = Vec::new();
    for m in &plan.tables {
        let ours = plan
            .copy_tasks
            .iter()
            .any(|t| t.table == m.source && done.get(&t.id).copied().unwrap_or(false));
        if ours {
            continue;
        }
        let sql = format!("select exists (select from only {})", m.target.quoted());
        let has_rows: bool = target
            .query_one(&sql, &[])
            .await
            .map_err(|e| Error::postgres(format!("checking that {} is empty", m.target), e))?
            .get(0);
        if has_rows {
            foreign.push(m.target.to_string());
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::invalid_input(format!(
        "target table(s) already hold rows this migration did not copy: {}; nothing was copied",
        foreign.join(", ")
    ))
    .with_hint("copy into a freshly provisioned database, or empty those tables on the target if their rows are not needed"))
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
///
/// With FORCE ROW LEVEL SECURITY lifted meanwhile ([`crate::rls`]).
pub async fn copy(m: &crate::migration::Migration, opts: CopyOptions) -> Result<CopySummary> {
    copy_between(&m.source, &m.target, &m.plan, opts, &m.vault, &m.observer).await
}

async fn copy_between(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: CopyOptions,
    secrets: &crate::secrets::Vault,
    observer: &SharedObserver,
) -> Result<CopySummary> {
    crate::rls::unforced(
        target,
        copy_rows(source, target, plan, opts, secrets, observer),
    )
    .await
}

/// [`copy`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn copy_rows(
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
    let asked = resolve_recopy(plan, &opts.recopy)?;
    if opts.recopy_all {
        start_over(&mut tgt, plan).await?;
    }
    let done = stored_progress(&tgt).await?;
    require_empty_or_ours(&tgt, plan, &done).await?;
    // Signatures first, then the snapshot: a write in between only makes a
    // later run copy a table again.
    let coordinator = connect(source).await?;
    let sources: Vec<TableName> = plan.tables.iter().map(|m| m.source.clone()).collect();
    let signatures = drift::signatures(&coordinator, &sources).await?;
    // The coordinator's snapshot: every worker reads this instant of the source.
    let snapshot = match &opts.snapshot {
        None => export_snapshot(&coordinator, Access::ReadOnly).await?,
        Some(slot_snapshot) => reexport(&coordinator, slot_snapshot).await?,
    };
    let extension_config = extension_config::copy(&coordinator, &mut tgt, plan).await?;
    let all = load_or_store_tasks(&mut tgt, plan, &done).await?;
    let copied: Vec<TableName> = sources
        .into_iter()
        .filter(|t| all.iter().any(|(task, d)| *d && task.table == *t))
        .collect();
    let again = drift::drifted(&copied, &signatures, &drift::recorded(&tgt).await?, &asked);
    let (todo, recopied) = jobs(plan, &all, &again);
    let mut summary = CopySummary {
        tasks_earlier: all
            .iter()
            .filter(|(t, d)| *d && !again.contains_key(&t.table))
            .count(),
        tasks_now: todo.iter().map(|j| j.tasks.len()).sum(),
        recopied,
        extension_config,
        ..CopySummary::default()
    };
    let pending = if opts.post_data {
        post_data::prepare(target, plan, secrets).await?
    } else {
        None
    };
    summary.post_data_built = opts
        .post_data
        .then(|| pending.as_ref().map_or(0, |p| p.remaining()));
    let pending = pending.map(|p| Arc::new(Mutex::new(p)));
    let ready_done = ready::done(&tgt).await?;
    let ready_todo: HashMap<TableName, crate::plan::ready::ReadyAction> =
        ready::todo(plan, &ready_done).into_iter().collect();
    let remaining = remaining_per_table(plan, &all, &again);
    let run = worker::Run {
        source: source.clone(),
        target: target.clone(),
        snapshot,
        plan: Arc::new(plan.clone()),
        observer: observer.clone(),
        signatures: Arc::new(signatures),
        replica_role: opts.recopy_all,
    };
    summary.retries =
        worker::run(run, todo, remaining, pending.clone(), ready_todo, opts.jobs).await?;
    drop(tgt);
    finish(coordinator, target, plan, &opts, pending, &mut summary).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Empties every planned table at once (so foreign keys between them do
/// not stand in the way) and forgets the copy's progress, in one
/// transaction: the copy then runs as a first one.
async fn start_over(tgt: &mut Client, plan: &MigrationPlan) -> Result<()> {
    let what = |e| Error::postgres("emptying the target's tables to copy them again", e);
    let list: Vec<String> = plan
        .tables
        .iter()
        .map(|m| {
            let only = if m.partitioned { "" } else { "only " };
            format!("{only}{}", m.target.quoted())
        })
        .collect();
    if list.is_empty() {
        return Ok(());
    }
    let tx = tgt.transaction().await.map_err(what)?;
    tx.batch_execute(&format!(
        "truncate {}; update supamigrate.copy_tasks set done_at = null, rows = null, bytes = null, seconds = null; delete from supamigrate.ready_done",
        list.join(", ")
    ))
    .await
    .map_err(what)?;
    tx.commit().await.map_err(what)?;
    tracing::warn!(
        tables = list.len(),
        "every table is copied again under the new snapshot"
    );
    Ok(())
}

/// Imports `snapshot` (a replication slot's) on the coordinator and exports
/// it again for the workers: the slot's session can end once this returns.
async fn reexport(coordinator: &Client, snapshot: &str) -> Result<String> {
    crate::pg::import_snapshot(coordinator, snapshot, Access::ReadOnly).await?;
    let row = coordinator
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::postgres("exporting the slot's snapshot to the workers", e))?;
    Ok(row.get(0))
}

/// After the workers, on the source session that holds the copy's
/// snapshot: sequences and password formats (read in the copy's
/// snapshot), the snapshot closed, the rest of post-data and of the
/// ready-for-traffic work.
async fn finish(
    coordinator: Client,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: &CopyOptions,
    pending: Option<Arc<Mutex<post_data::Pending>>>,
    summary: &mut CopySummary,
) -> Result<()> {
    // A new session: the first one may not have outlived a target restart
    // the workers rode out.
    let tgt = connect(target).await?;
    summary.sequences = copy_sequences(&coordinator, &tgt, &plan.sequences).await?;
    if plan.users().is_some() {
        summary.password_hashes = password_hash_formats(&coordinator).await?;
    }
    coordinator
        .batch_execute("commit")
        .await
        .map_err(|e| Error::postgres("closing the source snapshot", e))?;
    if let Some(p) = pending {
        let p = Arc::try_unwrap(p)
            .map_err(|_| Error::internal("post-data is still shared after the copy"))?
            .into_inner();
        p.finish(target, opts.jobs).await?;
    }
    // What the index builder did not get to (a table whose keys were built
    // before): made ready now. Without post-data, the step that
    // builds it does this after it (its indexes and extended statistics
    // must be there for ANALYZE to fill them).
    if opts.post_data {
        ready::rest(target, plan, opts.jobs).await?;
    }
    summary.tables = table_summaries(&tgt).await?;
    Ok(())
}

/// The work of this run: each changed (or asked-for) table as one job that
/// copies it again whole, then every task not done yet; with what is copied
/// again and why.
fn jobs(
    plan: &MigrationPlan,
    all: &[(CopyTask, bool)],
    again: &std::collections::BTreeMap<TableName, drift::Why>,
) -> (VecDeque<worker::Job>, Vec<Recopied>) {
    let mut recopied = Vec::new();
    let mut todo: VecDeque<worker::Job> = VecDeque::new();
    for (table, why) in again {
        let tasks: Vec<CopyTask> = all
            .iter()
            .filter(|(t, _)| t.table == *table)
            .map(|(t, _)| t.clone())
            .collect();
        let target_table = plan
            .mapping(table)
            .map_or(table.clone(), |m| m.target.clone());
        let reason = match why {
            drift::Why::Changed => "the source table changed since an earlier run copied it",
            drift::Why::Unrecorded => "copied by an earlier run that recorded no change counters",
            drift::Why::Asked => "--recopy",
        };
        tracing::warn!(table = %target_table, reason, "copying the table again, whole");
        recopied.push(Recopied {
            table: target_table.to_string(),
            reason: reason.to_string(),
        });
        todo.push_back(worker::Job {
            tasks,
            recopy: true,
        });
    }
    todo.extend(
        all.iter()
            .filter(|(t, d)| !d && !again.contains_key(&t.table))
            .map(|(t, _)| worker::Job {
                tasks: vec![t.clone()],
                recopy: false,
            }),
    );
    (todo, recopied)
}

/// For each target table, how many of its tasks are not done yet.
fn remaining_per_table(
    plan: &MigrationPlan,
    all: &[(CopyTask, bool)],
    again: &std::collections::BTreeMap<TableName, drift::Why>,
) -> HashMap<TableName, usize> {
    let mut remaining: HashMap<TableName, usize> = HashMap::new();
    for (t, done) in all {
        let target = plan
            .mapping(&t.table)
            .map(|m| m.target.clone())
            .unwrap_or_else(|| t.table.clone());
        let n = remaining.entry(target).or_insert(0);
        if !done || again.contains_key(&t.table) {
            *n += 1;
        }
    }
    remaining
}

async fn table_summaries(tgt: &Client) -> Result<Vec<TableSummary>> {
    let rows = tgt
        .query(
            "select t.target_schema || '.' || t.target_table, sum(t.rows)::bigint, sum(t.bytes)::bigint, sum(t.seconds), \
                    min(r.action), min(r.seconds) \
             from supamigrate.copy_tasks t left join supamigrate.ready_done r \
               on r.target_schema = t.target_schema and r.target_table = t.target_table \
             group by 1 order by 1",
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
            ready: r.get(4),
            ready_seconds: r.get(5),
        })
        .collect())
}

/// Sets every sequence to the source's `last_value` and `is_called`, read
/// in `from`'s snapshot.
pub(crate) async fn copy_sequences(
    from: &Client,
    to: &Client,
    sequences: &[TableName],
) -> Result<usize> {
    for s in sequences {
        let state = read_sequence(from, s).await?;
        set_sequence(to, s, state).await?;
    }
    Ok(sequences.len())
}

/// Sets every planned sequence to the source's current state (the run's
/// own step after post-data; `copy` also does it at its end).
pub async fn sync_sequences(m: &crate::migration::Migration) -> Result<usize> {
    let (src, tgt) = tokio::try_join!(connect(&m.source), connect(&m.target))?;
    copy_sequences(&src, &tgt, &m.plan.sequences).await
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
