//! The apply loop: the source's change stream onto the target, consecutive
//! source transactions grouped into one target transaction (in commit
//! order, for up to 100 ms or 20,000 rows, or until the stream pauses), the
//! last one's position recorded in it, acknowledged to the source only
//! after the target's commit.

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
    /// Until the cutover: compare the changed rows with the source while
    /// following and forget those equal, so the cutover compares only the
    /// rest ([`super::check::compare_while_following`]).
    pub compare_while_following: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            until: Until::Cutover,
            reconnect_for: Duration::from_secs(300),
            compare_while_following: true,
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

/// [`follow`]'s work, run with FORCE ROW LEVEL SECURITY lifted; until the
/// cutover, the changed rows compared alongside.
async fn follow_rows(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: &FollowOptions,
) -> Result<FollowSummary> {
    let apply = apply_rows(source, target, plan, opts);
    if !(opts.compare_while_following && opts.until == Until::Cutover) {
        return apply.await;
    }
    // Once the comparison stops (the cutover has begun), the follow goes
    // on alone.
    let compare = async {
        super::check::compare_while_following(source, target, plan).await;
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::pin!(apply, compare);
    tokio::select! {
        r = &mut apply => r,
        never = &mut compare => match never {},
    }
}

/// Applies the stream until `opts.until`.
async fn apply_rows(
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
    super::flush_wal(&c).await?;
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
        group: None,
        in_source: None,
        source_changes: 0,
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

/// Consecutive source transactions applied in one target transaction, in
/// commit order, with the last one's position recorded in it: the target
/// commits (and the source is acknowledged) once per group, not once per
/// source transaction.
struct Group {
    batch: Vec<Statement>,
    /// Rows changed (statements applied) in the group.
    rows: u64,
    /// What the group did to each target table.
    tables: std::collections::BTreeMap<crate::pg::TableName, TableChanges>,
    /// Source transactions committed into it.
    transactions: u64,
    /// The last one's end position and commit time (µs since 2000).
    end: Option<(Lsn, i64)>,
    /// When its target transaction began.
    began: Instant,
}

impl Group {
    fn new() -> Group {
        Group {
            batch: Vec::new(),
            rows: 0,
            tables: Default::default(),
            transactions: 0,
            end: None,
            began: Instant::now(),
        }
    }

    /// Long or large enough to commit at the next source commit.
    fn full(&self) -> bool {
        self.began.elapsed() >= GROUP_FOR || self.rows >= GROUP_ROWS
    }
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
    /// The open target transaction, once a source transaction began in it.
    group: Option<Group>,
    /// Inside a source transaction: whether it is skipped (applied before).
    in_source: Option<bool>,
    /// Changes in the current source transaction (one with none, such as
    /// our WAL flush, is not counted as applied).
    source_changes: u64,
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

/// A group's target transaction commits once it is this old …
const GROUP_FOR: Duration = Duration::from_millis(100);

/// … or has changed this many rows (at the next source commit), or as soon
/// as the stream has nothing more to give.
const GROUP_ROWS: u64 = 20_000;

impl Apply {
    async fn run(
        &mut self,
        client: &mut ReplicationClient,
        goal: Option<&str>,
        summary: &mut FollowSummary,
    ) -> Result<()> {
        let mut progress = Progress::new();
        loop {
            progress
                .maybe_report(summary, self.applied, &self.source)
                .await;
            if self.heartbeat.elapsed() >= HEARTBEAT_EVERY {
                self.heartbeat = Instant::now();
                emit(&self.source, HEARTBEAT_PREFIX).await?;
            }
            // A group between source transactions waits for more only
            // until its time is up.
            let wait = match (&self.group, self.in_source) {
                (Some(g), None) => GROUP_FOR.saturating_sub(g.began.elapsed()),
                _ => HEARTBEAT_EVERY,
            };
            let ev = match tokio::time::timeout(wait, client.recv()).await {
                Err(_) => {
                    if self.in_source.is_none() {
                        self.commit_group(client, summary, &mut progress).await?;
                    }
                    continue;
                }
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
                if !skip && self.group.is_none() {
                    self.sql("begin").await?;
                    self.group = Some(Group::new());
                }
                self.in_source = Some(skip);
                self.source_changes = 0;
            }
            ReplicationEvent::XLogData { data, .. } => self.change(&data).await?,
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => match self.in_source.take() {
                Some(true) => summary.skipped_transactions += 1,
                Some(false) => {
                    if let Some(g) = self.group.as_mut() {
                        g.transactions += u64::from(self.source_changes > 0);
                        g.end = Some((end_lsn, commit_time_micros));
                        if g.full() {
                            self.commit_group(client, summary, progress).await?;
                        }
                    }
                }
                None => {}
            },
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
                // transactions, after every one committed before them. What
                // the group holds commits first; acknowledging their
                // position then lets the source free WAL the published
                // tables did not write to.
                let ours = prefix == SENTINEL_PREFIX
                    || prefix == CAUGHT_UP_PREFIX
                    || prefix == HEARTBEAT_PREFIX;
                if ours && self.in_source.is_none() {
                    self.commit_group(client, summary, progress).await?;
                    if at > self.applied {
                        client.update_applied_lsn(at);
                    }
                }
                if prefix == SENTINEL_PREFIX && self.sentinel(&content).await? {
                    summary.reached_cutover = true;
                    return Ok(Flow::Stop);
                }
                if prefix == CAUGHT_UP_PREFIX && goal.map(str::as_bytes) == Some(&content[..]) {
                    return Ok(Flow::Stop);
                }
            }
            ReplicationEvent::StoppedAt { .. } => {
                self.commit_group(client, summary, progress).await?;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    async fn change(&mut self, data: &[u8]) -> Result<()> {
        let change = pgoutput::decode(data)?;
        let statements = self.applier.statements(change)?;
        if self.in_source != Some(false) {
            return Ok(());
        }
        self.source_changes += 1;
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        g.batch.extend(statements);
        if g.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the group's statements and checks each touched the rows it
    /// had to: a row missing on the target is an error, not a skip.
    async fn flush(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if g.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut g.batch);
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
            g.rows += 1;
            let t = g.tables.entry(s.table.clone()).or_default();
            t.rows += 1;
            if !s.key_columns.is_empty() {
                t.key_columns.clone_from(&s.key_columns);
            }
            for e in &s.truncated {
                g.tables.entry(e.clone()).or_default().truncated = true;
            }
        }
        Ok(())
    }

    /// Commits the group: its statements, the tables it changed and the
    /// last source transaction's position, in its target transaction; then
    /// the source is acknowledged. A group with no source commit yet (a
    /// large transaction under way) is not touched.
    async fn commit_group(
        &mut self,
        client: &ReplicationClient,
        summary: &mut FollowSummary,
        progress: &mut Progress,
    ) -> Result<()> {
        let Some((end_lsn, commit_micros)) = self.group.as_ref().and_then(|g| g.end) else {
            return Ok(());
        };
        self.flush().await?;
        let Some(g) = self.group.take() else {
            return Ok(());
        };
        failpoint::hit(failpoint::FOLLOW_BEFORE_COMMIT);
        // One round trip: the bookkeeping, then the commit.
        self.tgt
            .batch_execute(&format!("{}commit;", record_sql(&g, end_lsn)))
            .await
            .map_err(|e| Error::postgres("recording the applied position and committing", e))?;
        failpoint::hit(failpoint::FOLLOW_APPLIED);
        self.applied = end_lsn;
        client.update_applied_lsn(end_lsn);
        summary.transactions += g.transactions;
        summary.rows += g.rows;
        summary.applied_lsn = end_lsn.to_string();
        let lag = lag_seconds(commit_micros);
        summary.max_lag_seconds = summary.max_lag_seconds.max(lag);
        if summary.caught_up_after_seconds.is_some() {
            summary.max_lag_caught_up_seconds = summary.max_lag_caught_up_seconds.max(lag);
        } else if lag < CAUGHT_UP_LAG {
            summary.caught_up_after_seconds = Some(self.started.elapsed().as_secs_f64());
        }
        progress.lag = lag;
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

/// The group's bookkeeping, in its transaction: the tables it changed
/// (for the cutover's fast verify) and the applied position.
fn record_sql(g: &Group, end_lsn: Lsn) -> String {
    let mut sql = String::new();
    for (t, c) in &g.tables {
        let key_columns = if c.key_columns.is_empty() {
            "null".to_string()
        } else {
            let cols: Vec<String> = c.key_columns.iter().map(|k| quote_literal(k)).collect();
            format!("array[{}]::text[]", cols.join(", "))
        };
        sql.push_str(&format!(
            "insert into supamigrate.follow_tables (target_schema, target_table, rows, key_columns, truncated) \
             values ({}, {}, {}, {key_columns}, {}) on conflict (target_schema, target_table) \
             do update set rows = follow_tables.rows + excluded.rows, \
             key_columns = coalesce(excluded.key_columns, follow_tables.key_columns), \
             truncated = follow_tables.truncated or excluded.truncated;",
            quote_literal(&t.schema),
            quote_literal(&t.name),
            c.rows,
            c.truncated
        ));
    }
    sql.push_str(&format!(
        "update supamigrate.follow set applied_lsn = {}::pg_lsn, \
         applied_transactions = applied_transactions + {}, \
         applied_rows = applied_rows + {}, updated_at = now();",
        quote_literal(&end_lsn.to_string()),
        g.transactions,
        g.rows
    ));
    sql
}

/// A line every few seconds while following: what was applied, how fast,
/// how far behind the source's current WAL position (read from the source:
/// what the stream has received says nothing of what it has not), and a
/// warning once the backlog has grown for a minute.
struct Progress {
    last: Instant,
    rows_then: u64,
    lag: f64,
    source_end: u64,
    /// The backlog at the last line, bytes.
    behind_then: u64,
    /// Since when the backlog has grown at every line.
    growing_since: Option<Instant>,
    /// A session on the source for its position, opened when first needed.
    status: Option<Client>,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(5);
    const GROWING_FOR: Duration = Duration::from_secs(60);

    fn new() -> Progress {
        Progress {
            last: Instant::now(),
            rows_then: 0,
            lag: 0.0,
            source_end: 0,
            behind_then: 0,
            growing_since: None,
            status: None,
        }
    }

    /// The source's current WAL position (the stream's last known one when
    /// the source cannot be asked).
    async fn source_now(&mut self, source: &ConnInfo) -> u64 {
        if self.status.is_none() {
            self.status = connect(source).await.ok();
        }
        let Some(c) = &self.status else {
            return self.source_end;
        };
        match c
            .query_one("select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
            .await
        {
            Ok(r) => (r.get::<_, i64>(0).max(0) as u64).max(self.source_end),
            Err(_) => {
                self.status = None;
                self.source_end
            }
        }
    }

    async fn maybe_report(&mut self, summary: &FollowSummary, applied: Lsn, source: &ConnInfo) {
        let secs = self.last.elapsed().as_secs_f64();
        if secs < Self::EVERY.as_secs_f64() {
            return;
        }
        let rate = (summary.rows - self.rows_then) as f64 / secs;
        let behind = self
            .source_now(source)
            .await
            .saturating_sub(u64::from(applied));
        tracing::info!(
            "following: {} transactions, {} rows applied ({rate:.0} rows/s); {behind} bytes of the source's WAL not applied yet; the last applied commit was {:.2} s old",
            summary.transactions,
            summary.rows,
            self.lag
        );
        // Growing from line to line (beyond a few transactions' worth).
        if behind > self.behind_then.max(1 << 20) {
            let since = *self.growing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Self::GROWING_FOR {
                tracing::warn!(
                    "the source writes faster than the target applies: {behind} bytes of WAL behind and growing for {:.0} s ({rate:.0} rows/s applied); the cutover cannot come until it catches up",
                    since.elapsed().as_secs_f64()
                );
            }
        } else {
            self.growing_since = None;
        }
        self.behind_then = behind;
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
        "insert into supamigrate.follow_keys (target_schema, target_table, key) values {} \
         on conflict (target_schema, target_table, key) do update set seq = excluded.seq;",
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
