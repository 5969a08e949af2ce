//! The apply loop: the source's change stream onto the target, one source
//! transaction per target transaction, the applied position recorded in
//! it, acknowledged to the source only after the target's commit.

use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::apply::{Applier, Statement};
use super::pgoutput;
use super::{lsn, replication_config, replication_error, state, FollowState, SENTINEL_PREFIX};
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::failpoint;
use crate::pg::quote_literal;
use crate::plan::MigrationPlan;

/// When the follow stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At the cutover's sentinel (`supamigrate cutover` sends it).
    Cutover,
    /// Once everything the source had written when the follow started is
    /// applied.
    CaughtUp,
}

/// Options of [`follow`].
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// When to stop.
    pub until: Until,
    /// Give up after the source has been unreachable this long.
    pub reconnect_for: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            until: Until::Cutover,
            reconnect_for: Duration::from_secs(300),
        }
    }
}

/// What a follow did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowSummary {
    /// Source transactions applied by this run.
    pub transactions: u64,
    /// Rows inserted, updated or deleted by this run.
    pub rows: u64,
    /// Transactions the stream sent again that were applied before (after a
    /// kill or a reconnect), skipped.
    pub skipped_transactions: u64,
    /// The applied position at the end.
    pub applied_lsn: String,
    /// Times the stream was reconnected after the source went away.
    pub reconnects: u64,
    /// Largest lag seen, seconds (commit time on the source to commit on
    /// the target), the backlog of changes made before the follow started
    /// (during the copy) included.
    pub max_lag_seconds: f64,
    /// Seconds from the start until the follow first caught up (a
    /// transaction applied under [`CAUGHT_UP_LAG`] after its commit): the
    /// backlog's apply time. `None` when it never did.
    pub caught_up_after_seconds: Option<f64>,
    /// Largest lag once caught up: how far behind the target stays while it
    /// follows.
    pub max_lag_caught_up_seconds: f64,
    /// Seconds.
    pub seconds: f64,
    /// Stopped at the cutover's sentinel.
    pub reached_cutover: bool,
}

/// Applies the stream until `opts.until`, reconnecting while the source is
/// away (a restart) for up to `opts.reconnect_for`.
///
/// With FORCE ROW LEVEL SECURITY lifted meanwhile ([`crate::rls`]).
pub async fn follow(
    m: &crate::migration::Migration,
    opts: &FollowOptions,
) -> Result<FollowSummary> {
    follow_between(&m.source, &m.target, &m.plan, opts).await
}

/// [`follow`] between two sides (the cutover's catch-up has them apart).
pub(crate) async fn follow_between(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: &FollowOptions,
) -> Result<FollowSummary> {
    crate::rls::unforced(target, follow_rows(source, target, plan, opts)).await
}

/// [`follow`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn follow_rows(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: &FollowOptions,
) -> Result<FollowSummary> {
    let started = Instant::now();
    let mut summary = FollowSummary::default();
    // "Caught up" is a message sent down the stream now: everything the
    // source committed before it arrives before it (the stream is in WAL
    // order), which no position a keepalive reports promises.
    let goal = match opts.until {
        Until::CaughtUp => Some(emit(source, CAUGHT_UP_PREFIX).await?),
        Until::Cutover => None,
    };
    let mut down_since: Option<Instant> = None;
    loop {
        match session(
            source,
            target,
            plan,
            (goal.as_deref(), started),
            &mut summary,
        )
        .await
        {
            Ok(()) => break,
            Err(e) if e.is_retryable() => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() > opts.reconnect_for {
                    return Err(e);
                }
                tracing::warn!("the change stream broke ({e}); reconnecting");
                summary.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
        down_since = None;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Message prefixes of our own on the stream: the end of a
/// `--until-caught-up`, and the heartbeat that lets the slot advance while
/// the published tables are quiet.
const CAUGHT_UP_PREFIX: &str = "supamigrate.caught-up";
const HEARTBEAT_PREFIX: &str = "supamigrate.heartbeat";
/// How often a heartbeat is sent.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// Sends a non-transactional logical message with a fresh token as its
/// content; returns the token.
async fn emit(source: &ConnInfo, prefix: &str) -> Result<String> {
    let c = connect(source).await?;
    let token = crate::connect::random_hex(8)?;
    c.batch_execute("set default_transaction_read_only = off")
        .await
        .map_err(|e| Error::postgres("opening a session on the source", e))?;
    c.execute(
        "select pg_logical_emit_message(false, $1, $2)",
        &[&prefix, &token],
    )
    .await
    .map_err(|e| Error::postgres("sending a message down the change stream", e))?;
    Ok(token)
}

/// The follow's row, which must say the copy is done.
async fn ready_state(tgt: &Client) -> Result<FollowState> {
    let st = state(tgt).await?.ok_or_else(|| {
        Error::invalid_input("there is no follow on this target; nothing was changed")
            .with_hint("start one with `supamigrate copy --follow` (or `run --follow`)")
    })?;
    if !st.copy_done {
        return Err(Error::invalid_input(format!(
            "the copy under slot {} has not finished; nothing was changed",
            st.slot
        ))
        .with_hint(
            "run `supamigrate copy --follow` again: it starts the copy over under a new slot",
        ));
    }
    if st.state.is_over() {
        return Err(Error::invalid_input(format!(
            "the follow is over ({}); nothing was changed",
            st.state
        )));
    }
    Ok(st)
}

/// The slot must still exist and hold its WAL: otherwise changes are lost
/// and only a fresh copy is correct.
pub(super) async fn check_slot(source: &ConnInfo, slot: &str) -> Result<()> {
    let c = connect(source).await?;
    let row = c
        .query_opt(
            "select coalesce(wal_status, '') from pg_replication_slots where slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| Error::postgres("reading the replication slot", e))?;
    let lost = match row {
        None => "no longer exists",
        Some(r) if r.get::<_, String>(0) == "lost" => {
            "has lost WAL it needed (max_slot_wal_keep_size)"
        }
        Some(_) => return Ok(()),
    };
    Err(Error::invalid_input(format!(
        "the replication slot {slot} {lost}: changes made on the source since the copy cannot be followed; nothing more was applied"
    ))
    .with_hint("start over with a fresh copy: `supamigrate copy --follow` (it recopies every table under a new slot)"))
}

/// The target session changes are applied on.
async fn apply_session(target: &ConnInfo) -> Result<Client> {
    let tgt = connect(target).await?;
    tgt.batch_execute(&format!(
        "set session_replication_role = replica; set standard_conforming_strings = on; \
         set synchronous_commit = on; {}",
        crate::pg::TEXT_FORMS
    ))
    .await
    .map_err(|e| {
        Error::postgres("preparing the target session for changes", e).with_hint(
            "the target user must be allowed to set session_replication_role (RDS's master is)",
        )
    })?;
    Ok(tgt)
}

/// One replication connection, until the goal, the sentinel, or an error.
async fn session(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    (goal, started): (Option<&str>, Instant),
    summary: &mut FollowSummary,
) -> Result<()> {
    let tgt = apply_session(target).await?;
    let st = ready_state(&tgt).await?;
    check_slot(source, &st.slot).await?;
    let applied = lsn(&st.applied_lsn)?;
    summary.applied_lsn = st.applied_lsn.clone();
    let cfg = replication_config(source, &st.slot, &st.publication)?
        .with_start_lsn(applied)
        .with_ack_lsn(applied);
    let mut client = ReplicationClient::connect(cfg)
        .await
        .map_err(|e| replication_error("starting the change stream", &e))?;
    if let Err(e) = client.wait_started().await {
        // A slot dropped since the check above answers with a server error:
        // say what it means.
        check_slot(source, &st.slot).await?;
        return Err(replication_error("starting the change stream", &e));
    }
    let mut apply = Apply {
        tgt,
        applier: Applier::new(&plan.tables),
        applied,
        open: None,
        source: source.clone(),
        heartbeat: Instant::now(),
        started,
    };
    let r = apply.run(&mut client, goal, summary).await;
    if tokio::time::timeout(Duration::from_secs(2), client.shutdown())
        .await
        .is_err()
    {
        client.abort();
    }
    r
}

/// An open source transaction on the target.
struct Open {
    skip: bool,
    batch: Vec<Statement>,
    rows: u64,
    /// What this transaction did to each target table.
    tables: std::collections::BTreeMap<crate::pg::TableName, TableChanges>,
}

/// What one transaction did to one target table.
#[derive(Debug, Clone, Default)]
struct TableChanges {
    rows: i64,
    /// The key columns its changed rows were recorded under.
    key_columns: Vec<String>,
    /// A TRUNCATE emptied it.
    truncated: bool,
}

struct Apply {
    tgt: Client,
    applier: Applier,
    applied: Lsn,
    open: Option<Open>,
    source: ConnInfo,
    /// When the last heartbeat was sent.
    heartbeat: Instant,
    /// When the follow started (before any reconnect).
    started: Instant,
}

/// Whether the apply loop goes on.
enum Flow {
    Continue,
    Stop,
}

/// A transaction applied within this long of its commit on the source
/// marks the follow as caught up with the backlog, seconds.
pub const CAUGHT_UP_LAG: f64 = 0.5;

/// Statements sent to the target at a time inside a transaction: bounded
/// memory for a large source transaction.
const BATCH: usize = 500;

impl Apply {
    async fn run(
        &mut self,
        client: &mut ReplicationClient,
        goal: Option<&str>,
        summary: &mut FollowSummary,
    ) -> Result<()> {
        let mut progress = Progress::new();
        loop {
            progress.maybe_report(summary, self.applied);
            if self.heartbeat.elapsed() >= HEARTBEAT_EVERY {
                self.heartbeat = Instant::now();
                emit(&self.source, HEARTBEAT_PREFIX).await?;
            }
            let ev = match tokio::time::timeout(HEARTBEAT_EVERY, client.recv()).await {
                Err(_) => continue,
                Ok(r) => r.map_err(|e| replication_error("reading the change stream", &e))?,
            };
            let Some(ev) = ev else {
                return Err(Error::new(
                    ErrorKind::Connection,
                    "the source ended the change stream",
                ));
            };
            if let Flow::Stop = self.event(ev, client, goal, summary, &mut progress).await? {
                return Ok(());
            }
        }
    }

    async fn event(
        &mut self,
        ev: ReplicationEvent,
        client: &ReplicationClient,
        goal: Option<&str>,
        summary: &mut FollowSummary,
        progress: &mut Progress,
    ) -> Result<Flow> {
        match ev {
            ReplicationEvent::Begin { final_lsn, .. } => {
                let skip = final_lsn < self.applied;
                if !skip {
                    self.sql("begin").await?;
                }
                self.open = Some(Open {
                    skip,
                    batch: Vec::new(),
                    rows: 0,
                    tables: Default::default(),
                });
            }
            ReplicationEvent::XLogData { data, .. } => self.change(&data).await?,
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                self.commit(client, end_lsn, summary).await?;
                let lag = lag_seconds(commit_time_micros);
                summary.max_lag_seconds = summary.max_lag_seconds.max(lag);
                if summary.caught_up_after_seconds.is_some() {
                    summary.max_lag_caught_up_seconds = summary.max_lag_caught_up_seconds.max(lag);
                } else if lag < CAUGHT_UP_LAG {
                    summary.caught_up_after_seconds = Some(self.started.elapsed().as_secs_f64());
                }
                progress.lag = lag;
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                progress.source_end = progress.source_end.max(u64::from(wal_end));
            }
            ReplicationEvent::Message {
                prefix,
                lsn: at,
                content,
                ..
            } => {
                // Our messages are non-transactional: they arrive between
                // transactions, after every one committed before them.
                // Acknowledging their position lets the source free WAL the
                // published tables did not write to.
                let ours = prefix == SENTINEL_PREFIX
                    || prefix == CAUGHT_UP_PREFIX
                    || prefix == HEARTBEAT_PREFIX;
                if ours && self.open.is_none() && at > self.applied {
                    client.update_applied_lsn(at);
                }
                if prefix == SENTINEL_PREFIX && self.sentinel(&content).await? {
                    summary.reached_cutover = true;
                    return Ok(Flow::Stop);
                }
                if prefix == CAUGHT_UP_PREFIX && goal.map(str::as_bytes) == Some(&content[..]) {
                    return Ok(Flow::Stop);
                }
            }
            ReplicationEvent::StoppedAt { .. } => return Ok(Flow::Stop),
        }
        Ok(Flow::Continue)
    }

    async fn change(&mut self, data: &[u8]) -> Result<()> {
        let change = pgoutput::decode(data)?;
        let statements = self.applier.statements(change)?;
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.skip {
            return Ok(());
        }
        open.batch.extend(statements);
        if open.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the open transaction's statements and checks each touched the
    /// rows it had to: a row missing on the target is an error, not a skip.
    async fn flush(&mut self) -> Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut open.batch);
        let mut sql: String = batch.iter().map(|s| format!("{};", s.sql)).collect();
        // The changed rows' keys, in the same transaction (after the
        // changes, so the statements' row counts come first).
        sql.push_str(&record_keys(&batch));
        let msgs = self.tgt.simple_query(&sql).await.map_err(|e| {
            let first = batch
                .first()
                .map(|s| s.table.to_string())
                .unwrap_or_default();
            Error::postgres(
                format!("applying a source transaction to the target (from {first} on)"),
                e,
            )
        })?;
        let counts = msgs.iter().filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        for (s, n) in batch.iter().zip(counts) {
            if let Some(want) = s.rows {
                if n != want {
                    let _ = self.tgt.batch_execute("rollback").await;
                    return Err(Error::new(
                        ErrorKind::Mismatch,
                        format!(
                            "a change of {} found {n} rows on the target instead of {want}: the target differs from the source; the transaction was not applied",
                            s.table
                        ),
                    )
                    .with_hint("the target was changed outside supamigrate; start over with a fresh copy (`supamigrate copy --follow`)"));
                }
            }
            open.rows += 1;
            let t = open.tables.entry(s.table.clone()).or_default();
            t.rows += 1;
            if !s.key_columns.is_empty() {
                t.key_columns.clone_from(&s.key_columns);
            }
            for e in &s.truncated {
                open.tables.entry(e.clone()).or_default().truncated = true;
            }
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        client: &ReplicationClient,
        end_lsn: Lsn,
        summary: &mut FollowSummary,
    ) -> Result<()> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        if open.skip {
            self.open = None;
            summary.skipped_transactions += 1;
            return Ok(());
        }
        self.flush().await?;
        let rows = self.open.as_ref().map_or(0, |o| o.rows);
        let tables = self
            .open
            .as_ref()
            .map(|o| o.tables.clone())
            .unwrap_or_default();
        for (t, c) in &tables {
            let key_columns = (!c.key_columns.is_empty()).then_some(&c.key_columns);
            self.tgt
                .execute(
                    "insert into supamigrate.follow_tables (target_schema, target_table, rows, key_columns, truncated) \
                     values ($1, $2, $3, $4, $5) on conflict (target_schema, target_table) \
                     do update set rows = follow_tables.rows + excluded.rows, \
                     key_columns = coalesce(excluded.key_columns, follow_tables.key_columns), \
                     truncated = follow_tables.truncated or excluded.truncated",
                    &[&t.schema, &t.name, &c.rows, &key_columns, &c.truncated],
                )
                .await
                .map_err(|e| Error::postgres("recording the tables the follow changed", e))?;
        }
        self.tgt
            .execute(
                "update supamigrate.follow set applied_lsn = $1::text::pg_lsn, \
                 applied_transactions = applied_transactions + 1, \
                 applied_rows = applied_rows + $2, updated_at = now()",
                &[&end_lsn.to_string(), &(rows as i64)],
            )
            .await
            .map_err(|e| Error::postgres("recording the applied position", e))?;
        failpoint::hit(failpoint::FOLLOW_BEFORE_COMMIT);
        self.sql("commit").await?;
        failpoint::hit(failpoint::FOLLOW_APPLIED);
        self.open = None;
        self.applied = end_lsn;
        client.update_applied_lsn(end_lsn);
        summary.transactions += 1;
        summary.rows += rows;
        summary.applied_lsn = end_lsn.to_string();
        Ok(())
    }

    /// The cutover's sentinel: the follow stops there if it carries the
    /// token the store records (one from an aborted cutover does not).
    async fn sentinel(&mut self, content: &[u8]) -> Result<bool> {
        let token = state(&self.tgt).await?.and_then(|s| s.cutover_token);
        if token.as_deref().map(str::as_bytes) != Some(content) {
            return Ok(false);
        }
        self.tgt
            .execute(
                "update supamigrate.follow set caught_up_at = now(), updated_at = now()",
                &[],
            )
            .await
            .map_err(|e| Error::postgres("recording the cutover's position", e))?;
        Ok(true)
    }

    async fn sql(&self, sql: &str) -> Result<()> {
        self.tgt
            .batch_execute(sql)
            .await
            .map_err(|e| Error::postgres(format!("applying changes ({sql})"), e))
    }
}

/// A line every few seconds while following: what was applied, how fast,
/// how far behind.
struct Progress {
    last: Instant,
    rows_then: u64,
    lag: f64,
    source_end: u64,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(5);

    fn new() -> Progress {
        Progress {
            last: Instant::now(),
            rows_then: 0,
            lag: 0.0,
            source_end: 0,
        }
    }

    fn maybe_report(&mut self, summary: &FollowSummary, applied: Lsn) {
        let secs = self.last.elapsed().as_secs_f64();
        if secs < Self::EVERY.as_secs_f64() {
            return;
        }
        let rate = (summary.rows - self.rows_then) as f64 / secs;
        let behind = self.source_end.saturating_sub(u64::from(applied));
        tracing::info!(
            "following: {} transactions, {} rows applied ({rate:.0} rows/s); lag {:.2} s, {behind} bytes of WAL behind",
            summary.transactions,
            summary.rows,
            self.lag
        );
        self.last = Instant::now();
        self.rows_then = summary.rows;
    }
}

/// Seconds from a source commit (µs since 2000-01-01) to now.
/// One INSERT recording the keys of the rows `batch` changed (empty when it
/// changed none with a key).
fn record_keys(batch: &[Statement]) -> String {
    let keys: std::collections::BTreeSet<(&crate::pg::TableName, &Vec<String>)> = batch
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (&s.table, k)))
        .collect();
    if keys.is_empty() {
        return String::new();
    }
    let rows: Vec<String> = keys
        .iter()
        .map(|(t, k)| {
            let vals: Vec<String> = k.iter().map(|v| quote_literal(v)).collect();
            format!(
                "({}, {}, array[{}]::text[])",
                quote_literal(&t.schema),
                quote_literal(&t.name),
                vals.join(", ")
            )
        })
        .collect();
    format!(
        "insert into supamigrate.follow_keys (target_schema, target_table, key) values {} on conflict do nothing;",
        rows.join(", ")
    )
}

fn lag_seconds(commit_micros: i64) -> f64 {
    const EPOCH_2000: i64 = 946_684_800;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    ((now - EPOCH_2000 * 1_000_000 - commit_micros) as f64 / 1e6).max(0.0)
}
