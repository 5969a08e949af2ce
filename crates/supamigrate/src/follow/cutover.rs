//! The cutover: writes stopped on the source for the application's roles,
//! the follow caught up to a sentinel sent after the last write, sequences
//! set, materialized views refreshed, what the follow changed compared
//! (see [`super::check`]), the slot and publication dropped; and its abort,
//! which gives the source its writes back.
//!
//! Each step is recorded in the target's `supamigrate.follow` row, so a
//! killed cutover is re-run (or aborted) from where it stopped.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::check::{fast_verify, FastVerify};
use super::stream::{FollowOptions, Until};
use super::{drop_source_objects, state, FollowPhase, FollowState, SENTINEL_PREFIX};
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::quote_ident;
use crate::plan::MigrationPlan;

/// How the cutover runs.
#[derive(Debug, Clone, Default)]
pub struct CutoverOptions {
    /// The roles whose writes stop; empty: every non-superuser login role.
    pub roles: Vec<String>,
    /// How long to wait for the follow to catch up.
    pub timeout: Option<Duration>,
}

/// A source session still connected after the writes stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Backend pid.
    pub pid: i32,
    /// Role.
    pub role: String,
    /// `application_name`.
    pub application: String,
}

/// What a cutover did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CutoverReport {
    /// Roles made read-only on the source.
    pub read_only_roles: Vec<String>,
    /// Sessions ended so their writes stop.
    pub sessions_ended: usize,
    /// Sessions still connected (superusers, or not ours to end): they can
    /// still write, and what they write is not migrated.
    pub sessions_remaining: Vec<Session>,
    /// Transactions applied while catching up.
    pub transactions_applied: u64,
    /// Sequences set.
    pub sequences: usize,
    /// Materialized views refreshed once the follow had applied every
    /// write (copy-time contents would miss what the follow changed).
    #[serde(default)]
    pub matviews_refreshed: Vec<String>,
    /// The fast verify of what the follow changed (the cutover stops
    /// before finishing when it finds a difference).
    pub verify: FastVerify,
    /// The application's checks in their fast form (`verify::app::quick`):
    /// identity functions and who may see what, compared (a difference is
    /// reported, and does not stop the cutover: the data is equal). Its
    /// lines, `None` when they did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppQuick>,
    /// Seconds from the first refused write to the end of the cutover
    /// (across runs, when this one continued a cutover a kill interrupted).
    pub downtime_seconds: f64,
    /// How long each part of the downtime took, seconds, in order
    /// (stopping writes, catching up, sequences, materialized views, the
    /// fast verify; the Storage step when it runs).
    #[serde(default)]
    pub parts: Vec<(String, f64)>,
    /// This run continued a cutover an earlier run began.
    pub resumed: bool,
    /// An earlier run had finished the cutover: this one only dropped what
    /// it had left on the source.
    pub finished_earlier: bool,
}

/// What the application's fast checks found at the cutover (filled by the
/// caller, which runs them: `ops`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppQuick {
    /// Principals whose identity functions were compared.
    pub principals: usize,
    /// (role, table) pairs whose kind of access was compared.
    pub compared: usize,
    /// What differs, a line each.
    pub differences: Vec<String>,
    /// Why nothing was compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

/// Stops the application's writes on the source and waits until the target
/// has everything up to that moment. Sequences and the fast verify follow; then
/// [`finish`]. Leaves the source read-only: [`finish`] or [`abort`] ends it.
pub async fn cutover(
    m: &crate::migration::Migration,
    opts: &CutoverOptions,
) -> Result<CutoverReport> {
    let (source, target, plan) = (&m.source, &m.target, &*m.plan);
    let tgt = connect(target).await?;
    let st = state(&tgt).await?.ok_or_else(|| {
        Error::invalid_input("there is no follow on this target to cut over; nothing was changed")
            .with_hint("start one with `supamigrate copy --follow` (or `run --follow`)")
    })?;
    if st.state == FollowPhase::CutOver {
        return Ok(CutoverReport {
            finished_earlier: true,
            read_only_roles: st.read_only_roles,
            ..CutoverReport::default()
        });
    }
    if !st.copy_done || !st.state.may_cut_over() {
        return Err(Error::invalid_input(format!(
            "the follow on slot {} is {}, not ready for a cutover; nothing was changed",
            st.slot,
            if st.copy_done {
                st.state.as_str()
            } else {
                "still copying"
            }
        )));
    }
    let src = source_session(source).await?;
    let resumed = st.state == FollowPhase::CuttingOver;
    if !resumed {
        ready_to_stop_writes(source, &src, &st, plan).await?;
    }
    let mut report = CutoverReport {
        resumed,
        ..CutoverReport::default()
    };
    match writes_stopped(source, target, plan, opts, (&src, &tgt, &st), &mut report).await {
        Ok(()) => Ok(report),
        Err(e) => Err(source_read_only(e, &report.read_only_roles)),
    }
}

/// What can be checked before a single write stops: the follow can still
/// go on (its slot holds its WAL) and the source's schema is the planned
/// one (a change the stream has not shown yet would be missing on the
/// target). Refused here, nothing changed.
async fn ready_to_stop_writes(
    source: &ConnInfo,
    src: &Client,
    st: &FollowState,
    plan: &MigrationPlan,
) -> Result<()> {
    super::stream::check_slot(source, &st.slot).await?;
    let drift = schema_drift(src, plan).await?;
    if !drift.is_empty() {
        return Err(Error::invalid_input(format!(
            "the source's schema changed during the follow: {}; the target does not have it, so the cutover would lose it; nothing was changed",
            crate::catalog::drift::describe(&drift)
        ))
        .with_hint("undo the change on the source and cut over, or end this follow with `supamigrate cutover --abort` and start over on a fresh target database with a plan made after the change (`supamigrate plan`, then `copy --follow`)"));
    }
    Ok(())
}

/// The source's schema against the plan's, objects named.
async fn schema_drift(
    src: &Client,
    plan: &MigrationPlan,
) -> Result<Vec<crate::catalog::drift::Drift>> {
    crate::catalog::drift::since(
        src,
        &plan.schemas,
        &plan.source_fingerprint,
        &plan.source_objects,
    )
    .await
}

/// An error once the source's writes stopped: said as what it is (the
/// source refuses the application's writes) with the commands that finish
/// or undo it; never "nothing was changed", never exit 2.
pub fn source_read_only(e: Error, roles: &[String]) -> Error {
    let cause = e
        .message()
        .trim_end_matches("; nothing was changed")
        .to_string();
    let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
    let who = if roles.is_empty() {
        "the application's roles".to_string()
    } else {
        roles.join(", ")
    };
    e.restated(
        ErrorKind::Interrupted,
        format!(
            "{cause}; the source is read-only now: it refuses writes from {who} until the cutover finishes or is aborted"
        ),
        format!(
            "{hint}then run `supamigrate cutover` again to continue, or `supamigrate cutover --abort` to give the source its writes back"
        ),
    )
}

/// The cutover from the moment writes stop: the sentinel, the catch-up,
/// the schema as planned, sequences, materialized views, the fast verify.
async fn writes_stopped(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    opts: &CutoverOptions,
    (src, tgt, st): (&Client, &Client, &FollowState),
    report: &mut CutoverReport,
) -> Result<()> {
    let started = stop_writes(src, tgt, st, opts, report).await?;
    let mut lap = Instant::now();
    let mut part = |report: &mut CutoverReport, name: &str| {
        report
            .parts
            .push((name.to_string(), lap.elapsed().as_secs_f64()));
        lap = Instant::now();
    };
    part(report, "writes stopped");
    crate::failpoint::hit(crate::failpoint::CUTOVER_WRITES_STOPPED);
    let token = crate::connect::random_hex(8)?;
    tgt.execute(
        "update supamigrate.follow set cutover_token = $1, updated_at = now()",
        &[&token],
    )
    .await
    .map_err(|e| Error::postgres("recording the cutover on the target", e))?;
    let at: String = src
        .query_one(
            "select pg_logical_emit_message(false, $1, $2)::text",
            &[&SENTINEL_PREFIX, &token],
        )
        .await
        .map_err(|e| Error::postgres("sending the cutover's sentinel down the stream", e))?
        .get(0);
    super::flush_wal(src).await?;
    tgt.execute(
        "update supamigrate.follow set cutover_lsn = $1::text::pg_lsn",
        &[&at],
    )
    .await
    .map_err(|e| Error::postgres("recording the cutover on the target", e))?;
    report.transactions_applied = catch_up(source, target, plan, src, st, opts).await?;
    part(report, "caught up");
    crate::failpoint::hit(crate::failpoint::CUTOVER_CAUGHT_UP);
    // Checked again now that no application write can change it: a change
    // made between the first check and the stop is not missed.
    let drift = schema_drift(src, plan).await?;
    if !drift.is_empty() {
        return Err(Error::new(
            ErrorKind::Mismatch,
            format!(
                "the source's schema changed during the follow: {}; the target does not have it",
                crate::catalog::drift::describe(&drift)
            ),
        )
        .with_hint(
            "undo the change on the source, or apply the same change to the target yourself",
        ));
    }
    part(report, "schema checked");
    let tgt = connect(target).await?;
    report.sequences = crate::copy::copy_sequences(src, &tgt, &plan.sequences).await?;
    part(report, "sequences");
    report.matviews_refreshed = refresh_matviews(&tgt, plan).await?;
    part(report, "materialized views");
    report.verify = fast_verify(src, &tgt, plan).await?;
    part(report, "fast verify");
    report.downtime_seconds = started.elapsed().as_secs_f64();
    Ok(())
}

/// Refreshes again, on the caught-up target, the materialized views
/// post-data refreshed after the copy: their contents then missed every
/// write the follow applied since. A re-run refreshes them again, which
/// gives the same result.
async fn refresh_matviews(tgt: &Client, plan: &MigrationPlan) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for (name, sql) in plan.conversion.matview_refreshes() {
        tgt.batch_execute(sql)
            .await
            .map_err(|e| Error::postgres(format!("refreshing materialized view {name}"), e))?;
        done.push(name);
    }
    Ok(done)
}

/// A source session that may write although its role was made read-only.
async fn source_session(source: &ConnInfo) -> Result<Client> {
    let src = connect(source).await?;
    src.batch_execute("set default_transaction_read_only = off")
        .await
        .map_err(|e| Error::postgres("opening the cutover's session on the source", e))?;
    Ok(src)
}

/// Makes the roles read-only (recorded first, so an abort knows what to
/// undo) and ends their sessions. Returns when writes stopped: now, or
/// when an earlier run of a resumed cutover stopped them.
async fn stop_writes(
    src: &Client,
    tgt: &Client,
    st: &FollowState,
    opts: &CutoverOptions,
    report: &mut CutoverReport,
) -> Result<Instant> {
    let mut started = Instant::now();
    let roles = if st.state == FollowPhase::CuttingOver {
        let ago: f64 = tgt
            .query_one(
                "select coalesce(extract(epoch from clock_timestamp() - writes_stopped_at)::float8, 0) \
                 from supamigrate.follow",
                &[],
            )
            .await
            .map_err(|e| Error::postgres("reading the follow's state on the target", e))?
            .get(0);
        let ago = Duration::try_from_secs_f64(ago.max(0.0)).unwrap_or_default();
        started = started.checked_sub(ago).unwrap_or(started);
        st.read_only_roles.clone()
    } else {
        let roles = writable_roles(src, &opts.roles).await?;
        tgt.execute(
            "update supamigrate.follow set read_only_roles = $1, state = 'cutting-over', \
             writes_stopped_at = now(), updated_at = now()",
            &[&roles],
        )
        .await
        .map_err(|e| Error::postgres("recording the cutover on the target", e))?;
        roles
    };
    report.read_only_roles = roles.clone();
    for r in &roles {
        src.batch_execute(&format!(
            "alter role {} set default_transaction_read_only = on",
            quote_ident(r)
        ))
        .await
        .map_err(|e| Error::postgres(format!("making role {r} read-only on the source"), e))?;
    }
    let ended = src
        .query(
            "select pg_terminate_backend(pid, 5000) from pg_stat_activity \
             where usename = any($1) and pid <> pg_backend_pid() \
             and backend_type = 'client backend' and datname = current_database()",
            &[&roles],
        )
        .await
        .map_err(|e| Error::postgres("ending the application's sessions on the source", e))?;
    report.sessions_ended = ended.iter().filter(|r| r.get::<_, bool>(0)).count();
    report.sessions_remaining = src
        .query(
            "select pid, coalesce(usename::text, ''), application_name from pg_stat_activity \
             where pid <> pg_backend_pid() and backend_type = 'client backend' \
             and datname = current_database() order by pid",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("listing the source's sessions", e))?
        .iter()
        .map(|r| Session {
            pid: r.get(0),
            role: r.get(1),
            application: r.get(2),
        })
        .collect();
    for s in &report.sessions_remaining {
        tracing::warn!(pid = s.pid, role = %s.role, "a source session remains and may still write");
    }
    Ok(started)
}

/// The roles asked for, or every login role that is not a superuser (what
/// this user may make read-only). Ours stays able to write through
/// `default_transaction_read_only = off` in our sessions.
async fn writable_roles(src: &Client, asked: &[String]) -> Result<Vec<String>> {
    let rows = src
        .query(
            "select rolname::text, rolsuper from pg_roles where rolcanlogin \
             and rolname !~ '^pg_' and (cardinality($1::text[]) = 0 or rolname = any($1)) \
             order by 1",
            &[&asked],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's roles", e))?;
    let found: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if let Some(missing) = asked.iter().find(|a| !found.iter().any(|(n, _)| n == *a)) {
        return Err(Error::invalid_input(format!(
            "--role {missing}: the source has no login role of that name; nothing was changed"
        )));
    }
    if let Some((su, _)) = found.iter().find(|(n, s)| *s && asked.contains(n)) {
        return Err(Error::invalid_input(format!(
            "--role {su}: a superuser cannot be made read-only by this user; nothing was changed"
        )));
    }
    Ok(found
        .into_iter()
        .filter(|(_, s)| !s)
        .map(|(n, _)| n)
        .collect())
}

/// Waits until the follow has applied everything up to the sentinel: by
/// the running `supamigrate follow` if the slot is in use, else here.
async fn catch_up(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
    src: &Client,
    st: &FollowState,
    opts: &CutoverOptions,
) -> Result<u64> {
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(600));
    let active: bool = src
        .query_opt(
            "select active from pg_replication_slots where slot_name = $1",
            &[&st.slot],
        )
        .await
        .map_err(|e| Error::postgres("reading the replication slot", e))?
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !active {
        let f = FollowOptions {
            until: Until::Cutover,
            reconnect_for: timeout,
            // The writes are stopped: the fast verify compares what is left.
            compare_while_following: false,
        };
        let s = tokio::time::timeout(
            timeout,
            super::stream::follow_between(source, target, plan, &f),
        )
        .await
        .map_err(|_| caught_up_timeout(timeout))??;
        return Ok(s.transactions);
    }
    let tgt = connect(target).await?;
    let before = state(&tgt).await?.map_or(0, |s| s.applied_transactions);
    let started = Instant::now();
    loop {
        let caught: bool = tgt
            .query_one(
                "select caught_up_at is not null and caught_up_at >= coalesce(writes_stopped_at, caught_up_at) from supamigrate.follow",
                &[],
            )
            .await
            .map_err(|e| Error::postgres("reading the follow's progress", e))?
            .get(0);
        if caught {
            let after = state(&tgt).await?.map_or(0, |s| s.applied_transactions);
            return Ok((after - before).max(0) as u64);
        }
        if started.elapsed() > timeout {
            return Err(caught_up_timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn caught_up_timeout(t: Duration) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!(
            "the follow did not reach the cutover's sentinel within {} s; the source stays read-only",
            t.as_secs()
        ),
    )
    .with_hint("check `supamigrate follow` is running (or run `cutover` again, which follows itself), or give the source its writes back with `supamigrate cutover --abort`")
}

/// Ends a cutover whose fast verify agrees: the follow recorded as cut
/// over, then the slot and publication dropped (a kill between leaves them
/// to the next `cutover`, which drops them: recorded first so that a
/// finished cutover is never taken for an unfinished one). The source's
/// roles stay read-only: the application now writes to the target.
pub async fn finish(m: &crate::migration::Migration) -> Result<()> {
    let (source, target) = (&m.source, &m.target);
    let tgt = connect(target).await?;
    let st = state(&tgt)
        .await?
        .ok_or_else(|| Error::internal("the follow's state is gone"))?;
    tgt.execute(
        "update supamigrate.follow set state = 'cut-over', updated_at = now()",
        &[],
    )
    .await
    .map_err(|e| Error::postgres("recording the cutover on the target", e))?;
    crate::failpoint::hit(crate::failpoint::CUTOVER_RECORDED);
    let src = source_session(source).await?;
    drop_source_objects(&src, &st.slot, &st.publication).await
}

/// `cutover --abort`: the roles the cutover made read-only get their writes
/// back, and the slot and publication are dropped (a later follow needs a
/// fresh copy). Returns the roles given back.
pub async fn abort(source: &ConnInfo, target: &ConnInfo) -> Result<Vec<String>> {
    let tgt = connect(target).await?;
    let st = state(&tgt).await?.ok_or_else(|| {
        Error::invalid_input("there is no follow on this target to abort; nothing was changed")
    })?;
    if st.state == FollowPhase::CutOver {
        return Err(Error::invalid_input(
            "the cutover finished; there is nothing to abort (the application writes to the target now); nothing was changed",
        ));
    }
    let src = source_session(source).await?;
    for r in &st.read_only_roles {
        src.batch_execute(&format!(
            "alter role {} reset default_transaction_read_only",
            quote_ident(r)
        ))
        .await
        .map_err(|e| Error::postgres(format!("giving role {r} its writes back"), e))?;
    }
    drop_source_objects(&src, &st.slot, &st.publication).await?;
    tgt.execute(
        "update supamigrate.follow set state = 'aborted', updated_at = now()",
        &[],
    )
    .await
    .map_err(|e| Error::postgres("recording the abort on the target", e))?;
    Ok(st.read_only_roles)
}
