//! Following the source after the copy, and the cutover (near-zero
//! downtime).
//!
//! - [`begin`], before the copy: a publication of the plan's source tables
//!   and a logical slot (pgoutput) whose exported snapshot the copy reads
//!   (`CopyOptions::snapshot`), so the copy and the change stream meet with
//!   no gap and no overlap.
//! - [`follow`], after the copy: the stream applied to the target one source
//!   transaction at a time, in commit order, through the plan's mappings
//!   ([`apply`]), with the applied position written in the same target
//!   transaction; the source is told a position only once it is durable on
//!   the target. A kill at any point is followed by a re-run that applies
//!   each transaction exactly once.
//! - [`cutover`]: the application's roles made read-only on the source, a
//!   sentinel message sent down the stream, the follow caught up to it,
//!   sequences set, counts compared, the slot and publication dropped, the
//!   downtime measured. [`abort`] gives the source its writes back.
//!
//! The replication protocol is `pgwire-replication`'s; the decoding of
//! pgoutput's messages is ours ([`pgoutput`]).

pub mod apply;
pub mod check;
pub mod pgoutput;
mod stream;

use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, TlsConfig};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo, SslMode};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::{quote_ident, TableName};

pub use stream::{follow, FollowOptions, FollowSummary, Until};

/// The prefix of the cutover's sentinel message on the stream.
pub const SENTINEL_PREFIX: &str = "supamigrate.cutover";

/// The prefix of the message that pushes ours out to the stream.
pub const FLUSH_PREFIX: &str = "supamigrate.flush";

/// Makes the source flush its WAL now: a message sent without a
/// transaction (ours) reaches the stream only once the WAL writer has
/// flushed it (up to `wal_writer_delay` later, 200 ms by default); a
/// committed transaction flushes at once. So the cutover's sentinel is
/// applied as soon as the target has caught up, not a WAL writer's round
/// later.
pub(crate) async fn flush_wal(c: &Client) -> Result<()> {
    c.batch_execute(&format!(
        "begin transaction read write; set local synchronous_commit = on; \
         select pg_logical_emit_message(true, '{FLUSH_PREFIX}', ''); commit"
    ))
    .await
    .map_err(|e| Error::postgres("flushing the source's WAL", e))
}

/// What the target's store says of the follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowState {
    /// The slot on the source.
    pub slot: String,
    /// The publication on the source.
    pub publication: String,
    /// Where the slot became consistent (the copy's snapshot).
    pub start_lsn: String,
    /// The copy under the slot's snapshot finished.
    pub copy_done: bool,
    /// End of the last source transaction applied.
    pub applied_lsn: String,
    /// Transactions applied.
    pub applied_transactions: i64,
    /// Rows applied.
    pub applied_rows: i64,
    /// Where the follow stands.
    pub state: FollowPhase,
    /// Roles made read-only by the cutover.
    pub read_only_roles: Vec<String>,
    /// The token of the cutover's sentinel message, once asked for.
    pub cutover_token: Option<String>,
    /// The cutover's sentinel position, once sent.
    pub cutover_lsn: Option<String>,
    /// Changed rows found equal on both sides while following (and so not
    /// compared again by the cutover).
    #[serde(default)]
    pub compared_while_following: i64,
}

/// Where a follow stands, as the target's store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowPhase {
    /// The copy under the slot's snapshot runs.
    Copying,
    /// The source's changes are applied.
    Following,
    /// The source's writes are stopped; the target catches up.
    CuttingOver,
    /// Done: the application writes to the target.
    CutOver,
    /// The cutover was undone: the source has its writes back.
    Aborted,
}

impl FollowPhase {
    const ALL: [FollowPhase; 5] = [
        FollowPhase::Copying,
        FollowPhase::Following,
        FollowPhase::CuttingOver,
        FollowPhase::CutOver,
        FollowPhase::Aborted,
    ];

    /// As the store writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowPhase::Copying => "copying",
            FollowPhase::Following => "following",
            FollowPhase::CuttingOver => "cutting-over",
            FollowPhase::CutOver => "cut-over",
            FollowPhase::Aborted => "aborted",
        }
    }

    /// From the store's text.
    pub fn parse(s: &str) -> Result<FollowPhase> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::Database,
                    format!("the target records the follow as {s:?}, which this supamigrate does not know"),
                )
                .with_hint("use the supamigrate release that started the follow (or a newer one)")
            })
    }

    /// The follow is over (cut over or aborted): nothing more to apply.
    pub fn is_over(self) -> bool {
        matches!(self, FollowPhase::CutOver | FollowPhase::Aborted)
    }

    /// A cutover may start (or go on) from here.
    pub fn may_cut_over(self) -> bool {
        matches!(self, FollowPhase::Following | FollowPhase::CuttingOver)
    }
}

impl std::fmt::Display for FollowPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the follow's row from the target's store, if there is one.
pub async fn state(target: &Client) -> Result<Option<FollowState>> {
    if crate::store::version(target).await? < 4 {
        return Ok(None);
    }
    // Counted from store version 9 on.
    let compared = if crate::store::version(target).await? >= 9 {
        "compared_while_following"
    } else {
        "0::bigint"
    };
    let row = target
        .query_opt(
            &format!(
                "select slot, publication, start_lsn::text, copy_done, applied_lsn::text, \
                 applied_transactions, applied_rows, state, read_only_roles, cutover_token, cutover_lsn::text, \
                 {compared} from supamigrate.follow"
            ),
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the follow's state on the target", e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let phase: String = r.get(7);
    Ok(Some(FollowState {
        slot: r.get(0),
        publication: r.get(1),
        start_lsn: r.get(2),
        copy_done: r.get(3),
        applied_lsn: r.get(4),
        applied_transactions: r.get(5),
        applied_rows: r.get(6),
        state: FollowPhase::parse(&phase)?,
        read_only_roles: r.get(8),
        cutover_token: r.get(9),
        cutover_lsn: r.get(10),
        compared_while_following: r.get(11),
    }))
}

/// The slot's exported snapshot, held by its replication session until the
/// copy has imported it.
pub struct Start {
    session: ReplicationClient,
    /// The snapshot's name (`SET TRANSACTION SNAPSHOT`).
    pub snapshot: String,
    /// Where the stream begins.
    pub lsn: String,
    /// The slot.
    pub slot: String,
    /// An earlier copy under another snapshot left rows on the target: every
    /// table must be copied again under this one.
    pub recopy_all: bool,
}

impl Start {
    /// Ends the replication session (and with it the exported snapshot).
    pub fn release(mut self) {
        // A gated session does not hear a stop request: end its task, which
        // closes the connection.
        self.session.abort();
    }
}

/// Checks that the source can be followed, then creates the publication and
/// the slot, and records them on the target. A follow left by an
/// interrupted copy is dropped first (its snapshot is gone with its
/// session): the copy starts over under the new one.
pub async fn begin(m: &crate::migration::Migration) -> Result<Start> {
    let (source, target, plan) = (&m.source, &m.target, &*m.plan);
    let src = connect(source).await?;
    let sources: Vec<TableName> = plan.tables.iter().map(|m| m.source.clone()).collect();
    check_source(&src, &sources).await?;
    let mut tgt = connect(target).await?;
    crate::store::migrate(&mut tgt).await?;
    let mut recopy_all = copied_anything(&tgt).await?;
    if let Some(old) = state(&tgt).await? {
        let slot_exists: bool = src
            .query_one(
                "select exists (select from pg_replication_slots where slot_name = $1 and wal_status is distinct from 'lost')",
                &[&old.slot],
            )
            .await
            .map_err(|e| Error::postgres("reading the replication slots", e))?
            .get(0);
        // A follow under way keeps its slot; one whose slot is gone (or
        // that was aborted, or is still copying) starts over.
        if old.copy_done && slot_exists && old.state.may_cut_over() {
            return Err(Error::invalid_input(format!(
                "the copy under slot {} is done and the follow is under way; nothing was changed",
                old.slot
            ))
            .with_hint("run `supamigrate follow` to go on following, or `supamigrate cutover`"));
        }
        drop_source_objects(&src, &old.slot, &old.publication).await?;
        tgt.batch_execute("delete from supamigrate.follow; delete from supamigrate.follow_tables")
            .await
            .map_err(|e| Error::postgres("clearing the follow's state", e))?;
        recopy_all = true;
    }
    let id = crate::connect::random_hex(4)?;
    let (slot, publication) = (format!("supamigrate_{id}"), format!("supamigrate_{id}"));
    create_publication(&src, &publication, &sources).await?;
    let mut session =
        ReplicationClient::connect_gated(replication_config(source, &slot, &publication)?)
            .await
            .map_err(|e| replication_error("connecting for replication", &e))?;
    let rows = session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            quote_ident(&slot)
        ))
        .await
        .map_err(|e| replication_error("creating the replication slot", &e))?;
    let text = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| Error::internal("CREATE_REPLICATION_SLOT answered without a snapshot"))
    };
    let (lsn, snapshot) = (text(1)?, text(2)?);
    tgt.execute(
        "insert into supamigrate.follow (slot, publication, start_lsn, applied_lsn) \
         values ($1, $2, $3::text::pg_lsn, $3::text::pg_lsn)",
        &[&slot, &publication, &lsn],
    )
    .await
    .map_err(|e| Error::postgres("recording the follow on the target", e))?;
    tracing::info!(%slot, %lsn, "replication slot created; the copy reads its snapshot");
    Ok(Start {
        session,
        snapshot,
        lsn,
        slot,
        recopy_all,
    })
}

/// Whether a copy wrote anything on the target already.
async fn copied_anything(tgt: &Client) -> Result<bool> {
    let n: i64 = tgt
        .query_one(
            "select count(*) from supamigrate.copy_tasks where done_at is not null",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the copy's progress", e))?
        .get(0);
    Ok(n > 0)
}

/// Records that the copy under the slot's snapshot is complete.
pub async fn copy_finished(m: &crate::migration::Migration) -> Result<()> {
    let tgt = connect(&m.target).await?;
    tgt.execute(
        "update supamigrate.follow set copy_done = true, state = 'following', updated_at = now()",
        &[],
    )
    .await
    .map_err(|e| Error::postgres("recording the end of the copy", e))?;
    Ok(())
}

/// `wal_level`, the REPLICATION attribute, and a key (or replica identity
/// full) on every table: what following needs, checked before anything is
/// created.
async fn check_source(src: &Client, tables: &[TableName]) -> Result<()> {
    let row = src
        .query_one(
            "select current_setting('wal_level'), \
             (select rolreplication or rolsuper from pg_roles where rolname = current_user)",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's replication settings", e))?;
    let (wal, can): (String, bool) = (row.get(0), row.get(1));
    if wal != "logical" {
        return Err(Error::invalid_input(format!(
            "the source's wal_level is {wal}, not logical: it cannot be followed; nothing was changed"
        ))
        .with_hint("set wal_level = logical on the source and restart it (Supabase projects have it), or migrate without --follow"));
    }
    if !can {
        return Err(Error::invalid_input(
            "the source user has no REPLICATION attribute: it cannot be followed; nothing was changed",
        )
        .with_hint("connect as `postgres` on a direct (not pooled) connection, which has REPLICATION on Supabase"));
    }
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    // Each keyless table, with the unique index on NOT NULL columns that
    // could be its replica identity (a join table's, as ORMs make them).
    let missing: Vec<(String, String, Option<String>)> = src
        .query(
            "select format('%s.%s', n.nspname, c.relname), format('%I.%I', n.nspname, c.relname), \
                    (select quote_ident(ic.relname) from pg_index i join pg_class ic on ic.oid = i.indexrelid \
                     where i.indrelid = c.oid and i.indisunique and i.indimmediate and i.indisvalid \
                       and i.indpred is null and i.indexprs is null and i.indnkeyatts = i.indnatts \
                       and not exists (select from pg_attribute a where a.attrelid = c.oid \
                                       and a.attnum = any(i.indkey) and not a.attnotnull) \
                     order by i.indnatts, ic.relname limit 1) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname || '.' || c.relname = any($1) \
             and (c.relreplident = 'n' or (c.relreplident = 'd' and not exists \
                  (select from pg_index i where i.indrelid = c.oid and i.indisprimary))) \
             order by 1",
            &[&names],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's keys", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if !missing.is_empty() {
        let fixes: Vec<String> = missing
            .iter()
            .map(|(_, quoted, index)| match index {
                Some(i) => format!("ALTER TABLE {quoted} REPLICA IDENTITY USING INDEX {i} (its unique index on NOT NULL columns)"),
                None => format!("ALTER TABLE {quoted} REPLICA IDENTITY FULL (rows matched on all their columns)"),
            })
            .collect();
        return Err(Error::invalid_input(format!(
            "these tables have no primary key, so their updates and deletes cannot be followed: {}; nothing was changed",
            missing.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_hint(format!(
            "give each a primary key, or on the source: {}; then run again; or migrate without --follow",
            fixes.join("; ")
        )));
    }
    Ok(())
}

async fn create_publication(src: &Client, name: &str, tables: &[TableName]) -> Result<()> {
    let list: Vec<String> = tables.iter().map(TableName::quoted).collect();
    let sql = format!(
        "create publication {} for table {} with (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)",
        quote_ident(name),
        list.join(", ")
    );
    src.batch_execute(&sql).await.map_err(|e| {
        Error::postgres("creating the publication on the source", e).with_hint(
            "the source user must own every migrated table (or be a member of its owner)",
        )
    })
}

/// Drops the slot (if it exists) and the publication on the source.
async fn drop_source_objects(src: &Client, slot: &str, publication: &str) -> Result<()> {
    src.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1",
        &[&slot],
    )
    .await
    .map_err(|e| {
        Error::postgres(
            format!("dropping the replication slot {slot} on the source"),
            e,
        )
        .with_hint("stop the `supamigrate follow` that holds it, then run this again")
    })?;
    src.batch_execute(&format!(
        "drop publication if exists {}",
        quote_ident(publication)
    ))
    .await
    .map_err(|e| Error::postgres("dropping the publication on the source", e))
}

/// The replication session's settings: the same connection as `source`,
/// values in the text forms the copy uses (`crate::pg::TEXT_FORMS`).
fn replication_config(
    source: &ConnInfo,
    slot: &str,
    publication: &str,
) -> Result<ReplicationConfig> {
    let tls = match source.sslmode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => TlsConfig::disabled(),
        SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(source.sslrootcert.clone()),
        SslMode::VerifyFull => TlsConfig::verify_full(source.sslrootcert.clone()),
    };
    if source.host.starts_with('/') {
        return Err(
            Error::invalid_input("following needs a TCP connection to the source")
                .with_hint("give the source's host name, not a socket directory"),
        );
    }
    Ok(ReplicationConfig::new(
        source.host.clone(),
        source.user.clone(),
        source
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default(),
        source.dbname.clone(),
        slot,
        publication,
    )
    .with_port(source.port)
    .with_tls(tls)
    .with_application_name("supamigrate follow")
    .with_status_interval(Duration::from_millis(500))
    .with_wakeup_interval(Duration::from_millis(500))
    .with_options(
        "-c timezone=UTC -c datestyle=ISO,YMD -c intervalstyle=postgres \
         -c extra_float_digits=3 -c bytea_output=hex -c default_transaction_read_only=off",
    ))
}

/// A replication client's error as ours: connection trouble is retryable,
/// a server's refusal names what it refused.
fn replication_error(what: &str, e: &pgwire_replication::PgWireError) -> Error {
    use pgwire_replication::PgWireError as P;
    let (kind, hint) = match e {
        P::Io(_) | P::Task(_) => (
            ErrorKind::Connection,
            "check that the source is up and reachable on a direct (not pooled) connection",
        ),
        // The server going away (a restart, a terminated session, too many
        // connections for a moment) is retried like a broken connection.
        P::Server(m) if transient_sqlstate(m) => (
            ErrorKind::Connection,
            "check that the source is up and reachable on a direct (not pooled) connection",
        ),
        P::Auth(_) => (ErrorKind::Auth, "check the source user's password"),
        P::Tls(_) => (ErrorKind::Tls, "check sslmode and sslrootcert of the source"),
        _ => (
            ErrorKind::Database,
            "check that the source allows replication connections for this user (pg_hba.conf) and has a free replication slot",
        ),
    };
    Error::new(kind, format!("{what} on the source: {e}")).with_hint(hint)
}

/// Whether a server error's SQLSTATE (as the replication client words it,
/// `… (SQLSTATE 57P01)`) is one a reconnect can outlive: class 08
/// (connection), 53 (resources), 57P (shutdown, terminated, starting up).
fn transient_sqlstate(message: &str) -> bool {
    let code = message
        .rsplit_once("SQLSTATE ")
        .map(|(_, c)| c.trim_end_matches(')').trim());
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P"))
}

/// Parses an LSN as PostgreSQL prints it.
fn lsn(s: &str) -> Result<Lsn> {
    Lsn::parse(s).map_err(|_| Error::internal(format!("{s:?} is not an LSN")))
}

pub mod cutover;
pub use check::FastVerify;
pub use cutover::{
    abort, cutover, finish, source_read_only, AppQuick, CutoverOptions, CutoverReport,
};

/// Where a follow stands: the store's record and how far behind the source
/// it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowStatus {
    /// The store's record.
    pub state: FollowState,
    /// The source's current WAL position.
    pub source_lsn: String,
    /// Bytes of WAL between what the target applied and the source's
    /// position.
    pub lag_bytes: i64,
    /// Seconds since the target last applied a transaction.
    pub seconds_since_applied: f64,
    /// A `supamigrate follow` holds the slot now.
    pub slot_active: bool,
    /// The slot still exists on the source.
    pub slot_exists: bool,
}

/// Reads a follow's status; changes nothing.
pub async fn status(source: &ConnInfo, target: &ConnInfo) -> Result<FollowStatus> {
    let tgt = connect(target).await?;
    let st = state(&tgt).await?.ok_or_else(|| {
        Error::invalid_input("there is no follow on this target")
            .with_hint("start one with `supamigrate copy --follow`")
    })?;
    let since: f64 = tgt
        .query_one(
            "select extract(epoch from now() - updated_at)::float8 from supamigrate.follow",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the follow's state", e))?
        .get(0);
    let src = connect(source).await?;
    let r = src
        .query_one(
            "select pg_current_wal_lsn()::text, (pg_current_wal_lsn() - $1::text::pg_lsn)::int8, \
             coalesce((select active from pg_replication_slots where slot_name = $2), false), \
             exists (select from pg_replication_slots where slot_name = $2)",
            &[&st.applied_lsn, &st.slot],
        )
        .await
        .map_err(|e| Error::postgres("reading the source's position", e))?;
    Ok(FollowStatus {
        state: st,
        source_lsn: r.get(0),
        lag_bytes: r.get::<_, i64>(1).max(0),
        seconds_since_applied: since,
        slot_active: r.get(2),
        slot_exists: r.get(3),
    })
}

#[cfg(test)]
mod tests {
    use super::transient_sqlstate;

    #[test]
    fn transient_server_errors_are_retried() {
        for (m, want) in [
            (
                "terminating connection due to administrator command (SQLSTATE 57P01)",
                true,
            ),
            ("the database system is starting up (SQLSTATE 57P03)", true),
            ("sorry, too many clients already (SQLSTATE 53300)", true),
            (
                "replication slot \"x\" does not exist (SQLSTATE 42704)",
                false,
            ),
            ("permission denied (SQLSTATE 42501)", false),
            ("no code here", false),
        ] {
            assert_eq!(transient_sqlstate(m), want, "{m}");
        }
    }
}
