//! Verify (seed Phase 5): the migrated target against the source.
//!
//! Every check reads one snapshot per side: a coordinator session on each
//! exports it, and every worker session imports it, read-only. Then:
//!
//! - [`content`]: row counts and content checksums of every table (and
//!   `auth.users` against `app_users` on the mapped columns), bisected down
//!   to the differing rows and columns;
//! - [`integrity`]: foreign-key orphans and sequences;
//! - [`checks`]: the runbook's Step 5.2 queries on both sides;
//! - [`inventory`]: the target's schema objects against the conversion.
//!
//! Nothing here writes to either database.

pub mod app;
pub mod checks;
pub mod code;
pub mod config;
pub mod content;
pub mod fingerprint;
pub mod integrity;
pub mod inventory;
pub mod render;
pub mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::events::{Bar, SharedObserver, Unit};
use crate::pg::{export_snapshot, import_snapshot, key_text_expr, primary_key, Access, TableName};
use crate::plan::refs::RefColumn;
use crate::plan::users::ColumnPair;
use crate::plan::{MigrationPlan, PlannedStatement};
use crate::storage::RemainingReferences;
use content::{Bisect, DiffKind, KeyColumn, KeyDiffs, Pair, Range, RowDiff, Sum, Worker};

/// What to verify and how.
#[derive(Clone)]
pub struct VerifyOptions {
    /// Migrated schemas (same names on both sides).
    pub schemas: Vec<String>,
    /// Tables compared on column pairs (source, target, pairs): `auth.users`
    /// → `app_users`, Storage's metadata tables.
    pub mapped: Vec<(TableName, TableName, Vec<ColumnPair>)>,
    /// Concurrent workers (a source and a target session each).
    pub jobs: usize,
    /// List at most this many differing rows per table.
    pub max_rows: usize,
    /// Rows per first-level chunk.
    pub chunk_rows: i64,
    /// The plan's statements (pre-data and post-data): the planned schema
    /// inventory.
    pub planned: Vec<PlannedStatement>,
    /// The application's own checks (queries run on both sides).
    pub checks: Vec<checks::Check>,
    /// Reference columns `storage copy` rewrote: not compared with the
    /// source; checked instead for values still pointing at Supabase Storage.
    pub rewritten: Vec<RefColumn>,
    /// The bucket prefix and URL prefix `storage copy` used: each rewritten
    /// value must be the new location of the source's value.
    pub rewrite_prefixes: RewritePrefixes,
    /// Columns whose NOT NULL or default the plan changed (`schema.table.column`).
    pub changed_columns: std::collections::BTreeSet<String>,
    /// Source columns the plan does not copy (`schema.table.column`): not
    /// compared, and not missing.
    pub left_out: std::collections::BTreeSet<String>,
    /// Rows of reference columns the Storage step left pointing at objects
    /// missing from the Storage source (`--allow-missing-objects`), by column.
    pub allowed_remaining: BTreeMap<String, i64>,
    /// The copy made the tables ready (ANALYZE): check their statistics.
    /// `false` under `--no-analyze`.
    pub statistics: bool,
    /// Kept extensions' configuration tables holding rows the project added.
    pub extension_config: Vec<crate::catalog::ExtensionConfig>,
    /// Also check that the application works on the target (`--app`).
    pub app: Option<app::AppOptions>,
    /// Where progress goes.
    pub observer: SharedObserver,
}

/// Where rewritten references point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewritePrefixes {
    /// Destination bucket = prefix + Supabase bucket.
    pub bucket_prefix: String,
    /// `URL/bucket/key` instead of `s3://bucket/key`.
    pub url_prefix: Option<String>,
}

impl VerifyOptions {
    /// What `plan` migrated: its schemas, `auth.users` when present, every
    /// planned statement. References are compared as plain values until
    /// [`VerifyOptions::after_rewrite`] says they were rewritten.
    pub fn for_plan(plan: &MigrationPlan, observer: SharedObserver) -> VerifyOptions {
        VerifyOptions {
            schemas: plan.schemas.clone(),
            mapped: plan
                .tables
                .iter()
                .filter(|t| t.source != t.target || !plan.schemas.contains(&t.source.schema))
                .map(|t| (t.source.clone(), t.target.clone(), t.columns.clone()))
                .collect(),
            jobs: 2,
            max_rows: 20,
            chunk_rows: 100_000,
            planned: plan.conversion.statements.clone(),
            checks: Vec::new(),
            rewritten: Vec::new(),
            rewrite_prefixes: RewritePrefixes::default(),
            changed_columns: plan
                .conversion
                .dropped_defaults
                .iter()
                .chain(&plan.conversion.plain_generated)
                .cloned()
                .collect(),
            left_out: plan
                .tables
                .iter()
                .flat_map(|t| {
                    t.left_out
                        .iter()
                        .map(move |l| format!("{}.{}", t.source, l.column))
                })
                .chain(plan.conversion.recomputed_generated.iter().cloned())
                .collect(),
            allowed_remaining: BTreeMap::new(),
            statistics: !plan.options.no_analyze && !plan.ready.is_empty(),
            extension_config: plan.conversion.extension_config.clone(),
            app: None,
            observer,
        }
    }

    /// The plan's reference columns were rewritten by the Storage step.
    pub fn after_rewrite(mut self, plan: &MigrationPlan) -> VerifyOptions {
        if let Some(r) = &plan.storage.rewrite {
            self.rewritten = plan.storage.references.clone();
            self.rewrite_prefixes = RewritePrefixes {
                bucket_prefix: plan.storage.bucket_prefix.clone(),
                url_prefix: r.url_prefix.clone(),
            };
        }
        self
    }
}

/// How a table was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Checksums of primary-key ranges, bisected.
    KeyRanges,
    /// No primary key: compared as a multiset of rows.
    Multiset,
    /// The target table does not exist.
    NotOnTarget,
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableResult {
    /// The source table.
    pub source: TableName,
    /// The target table.
    pub target: TableName,
    /// How it was compared.
    pub method: Method,
    /// Rows on the source.
    pub source_rows: i64,
    /// Rows on the target (0 when the table is missing).
    pub target_rows: i64,
    /// First-level chunks.
    pub chunks: usize,
    /// Chunks whose checksums differed.
    pub differing_chunks: usize,
    /// Source columns the target lacks (their values were not compared).
    pub missing_columns: Vec<String>,
    /// Columns left out on purpose (rewritten by `storage copy`).
    pub not_compared: Vec<String>,
    /// The differing rows found (at most `max_rows`).
    pub diffs: Vec<RowDiff>,
    /// More rows differ than are listed.
    pub truncated: bool,
}

impl TableResult {
    /// Same rows, same values, same columns.
    pub fn matches(&self) -> bool {
        self.method != Method::NotOnTarget
            && self.source_rows == self.target_rows
            && self.differing_chunks == 0
            && self.diffs.is_empty()
            && self.missing_columns.is_empty()
    }

    /// `auth.users → public.app_users`, or the table's name.
    pub fn label(&self) -> String {
        if self.source == self.target {
            self.source.to_string()
        } else {
            format!("{} → {}", self.source, self.target)
        }
    }
}

/// A rewritten value that is not the new location of the source's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceMismatch {
    /// `schema.table.column`.
    pub column: String,
    /// The row's key.
    pub key: String,
    /// The source's value (signed URLs' tokens redacted).
    pub source: Option<String>,
    /// The target's.
    pub target: Option<String>,
}

/// Everything verify found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Per table.
    pub tables: Vec<TableResult>,
    /// Foreign keys on the target.
    pub orphans: Vec<integrity::OrphanCheck>,
    /// Sequences.
    pub sequences: Vec<integrity::SequenceCheck>,
    /// The runbook's Step 5.2 queries.
    pub checks: Vec<checks::CheckResult>,
    /// The target's schema against the conversion.
    pub inventory: inventory::InventoryDiff,
    /// Rewritten reference columns with values still pointing at Supabase Storage.
    pub storage_references: Vec<RemainingReferences>,
    /// Rewritten values that are not the new location of the source's value
    /// (at most `max_rows` per column listed).
    pub reference_mismatches: Vec<ReferenceMismatch>,
    /// The application's code and column definitions on the target.
    #[serde(default)]
    pub code: code::CodeReport,
    /// Each migrated table's statistics on the target (empty when they are
    /// not checked: `--no-analyze`).
    #[serde(default)]
    pub statistics: Vec<stats::StatsCheck>,
    /// Kept extensions' configuration tables: the project's rows on both sides.
    #[serde(default)]
    pub extension_config: Vec<config::ConfigCheck>,
    /// The source's schema changed since the plan: each object named
    /// (what changed is not on the target, and not compared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_drift: Vec<crate::catalog::drift::Drift>,
    /// Does the application work on the target (`--app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<app::AppReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl VerifyReport {
    /// Number of things that do not match.
    pub fn mismatches(&self) -> usize {
        self.tables.iter().filter(|t| !t.matches()).count()
            + self.orphans.iter().filter(|o| !o.matches()).count()
            + self
                .sequences
                .iter()
                .filter(|s| !s.problems.is_empty())
                .count()
            + self.checks.iter().filter(|c| !c.matches()).count()
            + self.inventory.missing.len()
            + self.inventory.unexpected.len()
            + self.inventory.different.len()
            + self.storage_references.len()
            + self.reference_mismatches.len()
            + self.code.mismatches()
            + self.statistics.iter().filter(|s| !s.matches()).count()
            + self
                .extension_config
                .iter()
                .filter(|c| !c.matches())
                .count()
            + self.schema_drift.len()
            + self.app_mismatches()
    }

    /// Of those, the application's checks' (`--app`).
    pub fn app_mismatches(&self) -> usize {
        self.app.as_ref().map_or(0, app::AppReport::mismatches)
    }

    /// Of those, the data's, schema's and objects' (all but `--app`'s).
    pub fn data_mismatches(&self) -> usize {
        self.mismatches() - self.app_mismatches()
    }

    /// Everything matches.
    pub fn all_match(&self) -> bool {
        self.mismatches() == 0
    }
}

/// Columns named like secrets: their values are never printed.
pub fn is_sensitive(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    ["password", "token", "secret"]
        .iter()
        .any(|s| c.contains(s))
}

const REDACTED: &str = "[redacted]";

fn redact(diffs: &mut [RowDiff]) {
    let hide = |name: &str, v: &mut Option<String>| {
        if is_sensitive(name) && v.is_some() {
            *v = Some(REDACTED.to_string());
        }
    };
    for d in diffs {
        for kv in &mut d.key {
            hide(&kv.column, &mut kv.value);
        }
        for c in &mut d.columns {
            hide(&c.column, &mut c.source);
            hide(&c.column, &mut c.target);
        }
    }
}

/// Sessions on one side, all reading one snapshot: the coordinator first,
/// then the workers; the snapshot's name; and the session that exported it,
/// which does nothing else, so the snapshot stays importable while verify
/// runs (workers import it again as they go; the coordinator's checks may
/// end their own transactions).
async fn snapshot_sessions(
    info: &ConnInfo,
    workers: usize,
    side: &str,
) -> Result<(Vec<Client>, String, Client)> {
    let what = |e| Error::postgres(format!("opening a read-only snapshot on the {side}"), e);
    let settings = "set statement_timeout = 0; set idle_in_transaction_session_timeout = 0";
    let holder = connect(info).await?;
    holder.batch_execute(settings).await.map_err(what)?;
    let snapshot = export_snapshot(&holder, Access::ReadOnly).await?;
    let sessions = futures_util::future::join_all((0..=workers).map(|_| async {
        let c = connect(info).await?;
        fingerprint::pin_session(&c).await?;
        c.batch_execute(settings).await.map_err(what)?;
        import_snapshot(&c, &snapshot, Access::ReadOnly).await?;
        Ok::<Client, Error>(c)
    }))
    .await;
    let mut out = Vec::new();
    for c in sessions {
        out.push(c?);
    }
    Ok((out, snapshot, holder))
}

/// `--app`'s checks, on [`app::PAIRS`] sessions per side reading verify's snapshots
/// (statements limited to a minute each: a view or function that runs
/// longer is reported, not waited for).
async fn app_checks(
    (source, target): (&ConnInfo, &ConnInfo),
    (src_snap, tgt_snap): (&str, &str),
    opts: &VerifyOptions,
) -> Result<Option<app::AppReport>> {
    let Some(app) = &opts.app else {
        return Ok(None);
    };
    let open = |info: &'static str, conn: ConnInfo, snap: String| async move {
        let c = connect(&conn).await?;
        fingerprint::pin_session(&c).await?;
        c.batch_execute(
            "set statement_timeout = '60s'; set idle_in_transaction_session_timeout = 0",
        )
        .await
        .map_err(|e| Error::postgres(format!("preparing a session on the {info}"), e))?;
        import_snapshot(&c, &snap, Access::ReadOnly).await?;
        Ok::<Client, Error>(c)
    };
    let opened = futures_util::future::join_all((0..app::PAIRS).map(|_| async {
        tokio::try_join!(
            open("source", source.clone(), src_snap.to_string()),
            open("target", target.clone(), tgt_snap.to_string())
        )
    }))
    .await;
    let mut pairs = Vec::with_capacity(app::PAIRS);
    for p in opened {
        pairs.push(p?);
    }
    Ok(Some(app::check(&pairs, app).await?))
}

/// A source or target table's columns, as read by `sql/columns.sql`.
#[derive(Debug, Clone, Default)]
struct Columns {
    only: bool,
    est_rows: i64,
    /// (name, position in the primary key, type, built-in type)
    columns: Vec<(String, Option<i32>, String, bool)>,
}

async fn columns(
    client: &Client,
    schemas: &[String],
    side: &str,
) -> Result<BTreeMap<TableName, Columns>> {
    let rows = client
        .query(include_str!("sql/columns.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres(format!("listing the {side}'s tables"), e))?;
    let mut out: BTreeMap<TableName, Columns> = BTreeMap::new();
    for r in rows {
        let t = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let e = out.entry(t).or_default();
        e.only = r.get::<_, String>(2) == "r";
        e.est_rows = r.get(3);
        e.columns.push((r.get(4), r.get(5), r.get(6), r.get(7)));
    }
    Ok(out)
}

fn key_of(cols: &Columns) -> Vec<(String, String)> {
    let mut key: Vec<(i32, String, String)> = cols
        .columns
        .iter()
        .filter_map(|(n, k, t, _)| k.map(|k| (k, n.clone(), t.clone())))
        .collect();
    key.sort();
    key.into_iter().map(|(_, n, t)| (n, t)).collect()
}

/// A source table the target lacks.
struct Absent {
    source: TableName,
    target: TableName,
}

/// What pairing a table needs to know about the target.
struct Pairing<'a> {
    target: &'a BTreeMap<TableName, Columns>,
    same_major: bool,
    opts: &'a VerifyOptions,
}

impl Pairing<'_> {
    /// The pair of `s` and `t` (columns renamed by `mapping`), or `None`
    /// when the target has no `t`.
    fn pair(
        &self,
        s: TableName,
        sc: &Columns,
        t: TableName,
        mapping: Option<&[ColumnPair]>,
    ) -> Option<Pair> {
        let tc = self.target.get(&t)?;
        let has = |c: &str| tc.columns.iter().any(|(n, _, _, _)| n == c);
        let portable = |c: &str, ty: &str, builtin: bool| {
            builtin
                && tc
                    .columns
                    .iter()
                    .any(|(n, _, t, b)| n == c && t == ty && *b)
        };
        let rename = |c: &str| -> Option<String> {
            match mapping {
                None => Some(c.to_string()),
                Some(m) => m.iter().find(|p| p.source == c).map(|p| p.target.clone()),
            }
        };
        let skipped = |c: &str| {
            self.opts
                .rewritten
                .iter()
                .any(|r| r.table == s && r.column == c)
        };
        let (mut columns, mut portables, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for (c, _, ty, builtin) in &sc.columns {
            let Some(to) = rename(c) else { continue };
            if skipped(c) || self.opts.left_out.contains(&format!("{s}.{c}")) {
                continue;
            }
            if has(&to) {
                portables.push(portable(&to, ty, *builtin));
                columns.push(ColumnPair {
                    source: c.clone(),
                    target: to,
                });
            } else {
                missing.push(c.clone());
            }
        }
        let key: Vec<KeyColumn> = key_of(sc)
            .into_iter()
            .filter_map(|(n, ty)| {
                rename(&n).filter(|to| has(to)).map(|to| KeyColumn {
                    source: n,
                    target: to,
                    sql_type: ty,
                })
            })
            .collect();
        let whole_key = key.len() == key_of(sc).len();
        Some(Pair {
            source: s,
            target: t,
            only: sc.only,
            columns,
            missing_columns: missing,
            binary_hash: self.same_major,
            portable: portables,
            key: if whole_key { key } else { Vec::new() },
            est_rows: sc.est_rows,
        })
    }
}

/// Pairs each source table with its target table (same name; `auth.users`
/// with `app_users` on the mapped columns). Tables missing on the target
/// come back separately.
async fn pairs(
    source: &Client,
    target: &Client,
    opts: &VerifyOptions,
) -> Result<(Vec<Pair>, Vec<Absent>)> {
    let src = columns(source, &opts.schemas, "source").await?;
    let mut target_schemas = opts.schemas.clone();
    for (_, t, _) in &opts.mapped {
        if !target_schemas.contains(&t.schema) {
            target_schemas.push(t.schema.clone());
        }
    }
    let tgt = columns(target, &target_schemas, "target").await?;
    let same_major =
        crate::pg::server_major(source).await? == crate::pg::server_major(target).await?;
    let pairing = Pairing {
        target: &tgt,
        same_major,
        opts,
    };
    let mut candidates: Vec<(TableName, Columns, TableName, Option<&[ColumnPair]>)> = src
        .into_iter()
        .map(|(name, sc)| (name.clone(), sc, name, None))
        .collect();
    for (from, to, mapping) in &opts.mapped {
        let cols = columns(source, std::slice::from_ref(&from.schema), "source").await?;
        if let Some(sc) = cols.get(from) {
            candidates.push((
                from.clone(),
                sc.clone(),
                to.clone(),
                Some(mapping.as_slice()),
            ));
        }
    }
    let (mut out, mut absent) = (Vec::new(), Vec::new());
    for (s, sc, t, mapping) in candidates {
        match pairing.pair(s.clone(), &sc, t.clone(), mapping) {
            Some(p) => out.push(p),
            None => absent.push(Absent {
                source: s,
                target: t,
            }),
        }
    }
    Ok((out, absent))
}

type Job<'a, R> = Pin<Box<dyn Future<Output = Result<R>> + 'a>>;

/// Runs `f` over `items` on every worker concurrently (in this task: the
/// servers do the work).
async fn on_workers<'w, I, R>(
    workers: &'w [Worker],
    items: Vec<I>,
    progress: &Bar,
    f: impl Fn(&'w Worker, I) -> Job<'w, R>,
) -> Result<Vec<R>> {
    let queue = Mutex::new(VecDeque::from(items));
    let results = Mutex::new(Vec::new());
    let f = &f;
    let runs = workers.iter().map(|w| {
        let (queue, results) = (&queue, &results);
        async move {
            loop {
                let Some(item) = queue.lock().await.pop_front() else {
                    return Ok::<(), Error>(());
                };
                let r = f(w, item).await?;
                w.item_done().await?;
                results.lock().await.push(r);
                progress.inc(1);
            }
        }
    });
    futures_util::future::try_join_all(runs).await?;
    Ok(results.into_inner())
}

struct ChunkOutcome {
    table: usize,
    sums: (Sum, Sum),
    keys: KeyDiffs,
    rows: Vec<RowDiff>,
}

/// Cuts every table into first-level chunks, largest tables first:
/// (table, range) items and each table's chunk count.
async fn chunk_items(
    workers: &[Worker],
    pairs: &[Pair],
    opts: &VerifyOptions,
) -> Result<(Vec<(usize, Range)>, Vec<usize>)> {
    let cut: Vec<usize> = (0..pairs.len())
        .filter(|&i| {
            !pairs[i].key.is_empty()
                && (pairs[i].est_rows < 0 || pairs[i].est_rows > opts.chunk_rows)
        })
        .collect();
    let bar = Bar::new(&opts.observer, "chunking", cut.len() as u64, Unit::Items);
    let step = opts.chunk_rows.max(1);
    let bounds: BTreeMap<usize, Vec<Vec<String>>> = on_workers(workers, cut, &bar, |w, i| {
        Box::pin(async move {
            let b = w
                .bounds(&pairs[i], content::Side::Source, &Range::default(), step)
                .await?;
            Ok((i, b))
        })
    })
    .await?
    .into_iter()
    .collect();
    let mut items: Vec<(usize, Range)> = Vec::new();
    let mut chunks = vec![0usize; pairs.len()];
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].est_rows));
    for i in order {
        let ranges = Range::default().split(bounds.get(&i).map(Vec::as_slice).unwrap_or(&[]));
        chunks[i] = ranges.len();
        items.extend(ranges.into_iter().map(|r| (i, r)));
    }
    Ok((items, chunks))
}

/// Checksums every chunk on both sides; bisects those that differ.
async fn compare_chunks(
    workers: &[Worker],
    pairs: &[Pair],
    items: Vec<(usize, Range)>,
    opts: &VerifyOptions,
) -> Result<Vec<ChunkOutcome>> {
    let bar = Bar::new(&opts.observer, "comparing", items.len() as u64, Unit::Items);
    let cfg = Bisect {
        factor: 16,
        leaf_rows: 512,
        max_rows: opts.max_rows.max(1),
    };
    on_workers(workers, items, &bar, |w, (i, range)| {
        Box::pin(async move {
            let pair = &pairs[i];
            let sums = w.checksums(pair, &range).await?;
            let mut out = ChunkOutcome {
                table: i,
                sums: sums.clone(),
                keys: KeyDiffs::default(),
                rows: Vec::new(),
            };
            if sums.0 != sums.1 {
                if pair.key.is_empty() {
                    let (rows, truncated) = content::multiset_diff(w, pair, cfg.max_rows).await?;
                    out.rows = rows;
                    out.keys.truncated = truncated;
                } else {
                    out.keys = content::bisect(w, pair, range, sums, cfg).await?;
                }
            }
            Ok(out)
        })
    })
    .await
}

fn empty_result(p: &Pair, chunks: usize, opts: &VerifyOptions) -> TableResult {
    TableResult {
        source: p.source.clone(),
        target: p.target.clone(),
        method: if p.key.is_empty() {
            Method::Multiset
        } else {
            Method::KeyRanges
        },
        source_rows: 0,
        target_rows: 0,
        chunks,
        differing_chunks: 0,
        missing_columns: p.missing_columns.clone(),
        not_compared: opts
            .rewritten
            .iter()
            .filter(|r| r.table == p.source)
            .map(|r| r.column.clone())
            .collect(),
        diffs: Vec::new(),
        truncated: false,
    }
}

/// Lists the rows behind one table's differing keys.
async fn list_key_diffs(
    w: &Worker,
    pair: &Pair,
    k: KeyDiffs,
    r: &mut TableResult,
    max_rows: usize,
) -> Result<()> {
    let total = k.len();
    let changed: Vec<Vec<String>> = k.changed.iter().take(max_rows).cloned().collect();
    r.diffs
        .extend(content::changed_rows(w, pair, &changed).await?);
    for (kind, map) in [(DiffKind::Missing, &k.missing), (DiffKind::Extra, &k.extra)] {
        for key in map.keys() {
            r.diffs.push(RowDiff {
                kind: kind.clone(),
                key: content::key_pairs(pair, key),
                columns: Vec::new(),
                copies: 1,
            });
        }
    }
    if r.diffs.len() > max_rows || total > max_rows {
        r.truncated = true;
    }
    Ok(())
}

/// Compares every table's content.
async fn compare_tables(
    workers: &[Worker],
    pairs: &[Pair],
    opts: &VerifyOptions,
) -> Result<Vec<TableResult>> {
    let (items, chunks) = chunk_items(workers, pairs, opts).await?;
    let outcomes = compare_chunks(workers, pairs, items, opts).await?;
    let mut results: Vec<TableResult> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| empty_result(p, chunks[i], opts))
        .collect();
    let mut keys: Vec<KeyDiffs> = vec![KeyDiffs::default(); pairs.len()];
    for o in outcomes {
        let r = &mut results[o.table];
        r.source_rows += o.sums.0.rows;
        r.target_rows += o.sums.1.rows;
        if o.sums.0 != o.sums.1 {
            r.differing_chunks += 1;
        }
        r.diffs.extend(o.rows);
        r.truncated |= o.keys.truncated;
        keys[o.table].merge(o.keys);
    }
    for (i, k) in keys.into_iter().enumerate() {
        if !k.is_empty() {
            list_key_diffs(&workers[0], &pairs[i], k, &mut results[i], opts.max_rows).await?;
        }
    }
    for r in &mut results {
        r.diffs.truncate(opts.max_rows);
        redact(&mut r.diffs);
    }
    Ok(results)
}

async fn key_values(c: &Client, sql: &str, what: &str) -> Result<BTreeMap<String, Option<String>>> {
    Ok(c.query(sql, &[])
        .await
        .map_err(|e| Error::postgres(what.to_string(), e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Each rewritten reference on the target against the source's value: it
/// must be one of the new locations that value could have become.
async fn reference_mismatches(
    source: &Client,
    target: &Client,
    opts: &VerifyOptions,
) -> Result<Vec<ReferenceMismatch>> {
    use crate::plan::refs::{expected_after_rewrite, redact_token};
    let mut out = Vec::new();
    for rc in &opts.rewritten {
        let key = primary_key(source, &rc.table).await?;
        if key.is_empty() {
            continue;
        }
        let sql = format!(
            "{} select {}, t.{}::text from {} t",
            crate::sql::OWN,
            key_text_expr("t", &key),
            crate::pg::quote_ident(&rc.column),
            rc.table.quoted()
        );
        let what = format!("reading {}.{}", rc.table, rc.column);
        let (s, t) = tokio::try_join!(
            key_values(source, &sql, &what),
            key_values(target, &sql, &what)
        )?;
        let column = format!("{}.{}", rc.table, rc.column);
        let p = &opts.rewrite_prefixes;
        let mut listed = 0;
        for (k, sv) in &s {
            let tv = t.get(k).cloned().flatten();
            let ok = match (sv, &tv) {
                (None, None) => true,
                (Some(v), Some(w)) => {
                    expected_after_rewrite(v, &rc.bucket, &p.bucket_prefix, p.url_prefix.as_deref())
                        .contains(w)
                }
                _ => false,
            };
            if !ok && t.contains_key(k) && listed < opts.max_rows {
                listed += 1;
                let red = |v: &Option<String>| v.as_deref().map(redact_token);
                out.push(ReferenceMismatch {
                    column: column.clone(),
                    key: k.clone(),
                    source: red(sv),
                    target: red(&tv),
                });
            }
        }
    }
    Ok(out)
}

/// The checks that do not compare table content: integrity, the
/// application's queries, the schema inventory, the references.
struct Checks {
    orphans: Vec<integrity::OrphanCheck>,
    sequences: Vec<integrity::SequenceCheck>,
    checks: Vec<checks::CheckResult>,
    inventory: inventory::InventoryDiff,
    storage_references: Vec<RemainingReferences>,
    reference_mismatches: Vec<ReferenceMismatch>,
    code: code::CodeReport,
    extension_config: Vec<config::ConfigCheck>,
}

async fn other_checks(src: &Client, tgt: &Client, opts: &VerifyOptions) -> Result<Checks> {
    let schemas: Vec<&str> = opts.schemas.iter().map(String::as_str).collect();
    let planned_refs: Vec<&PlannedStatement> = opts.planned.iter().collect();
    let (planned, inherited) = inventory::planned(&planned_refs);
    let mut inv_schemas = inventory::schemas(&planned);
    for s in &opts.schemas {
        if !inv_schemas.contains(s) {
            inv_schemas.push(s.clone());
        }
    }
    let target_fk_schemas: Vec<&str> = inv_schemas.iter().map(String::as_str).collect();
    let found = inventory::found(tgt, &inv_schemas).await?;
    Ok(Checks {
        orphans: integrity::orphan_checks(src, tgt, &schemas, &target_fk_schemas).await?,
        sequences: integrity::sequence_checks(src, tgt, &schemas).await?,
        checks: checks::run(src, tgt, &opts.checks).await?,
        inventory: inventory::compare(&planned, &inherited, &found),
        storage_references: crate::storage::remaining_supabase_references(tgt, &opts.rewritten)
            .await?
            .into_iter()
            .filter_map(|mut r| {
                r.rows -= opts.allowed_remaining.get(&r.column).copied().unwrap_or(0);
                (r.rows > 0).then_some(r)
            })
            .collect(),
        reference_mismatches: reference_mismatches(src, tgt, opts).await?,
        code: code_report(src, tgt, opts).await?,
        extension_config: config::check(src, tgt, &opts.extension_config).await?,
    })
}

async fn code_report(src: &Client, tgt: &Client, opts: &VerifyOptions) -> Result<code::CodeReport> {
    let (objects, unresolved) =
        code::check_references(src, tgt, &opts.planned, &opts.schemas).await?;
    let bodies = code::check_bodies(tgt, &opts.schemas).await?;
    let (sql_checked, sql_errors) = code::check_sql_bodies(src, tgt, &opts.schemas).await?;
    let (columns, column_differences) =
        code::check_columns(src, tgt, &opts.schemas, &opts.changed_columns).await?;
    Ok(code::CodeReport {
        objects,
        unresolved,
        plpgsql_check: bodies.is_some(),
        bodies_checked: bodies.as_ref().map_or(0, |b| b.0),
        body_errors: bodies.map(|b| b.1).unwrap_or_default(),
        sql_checked,
        sql_errors,
        columns,
        column_differences,
    })
}

/// A table the target lacks, with the source's row count.
async fn absent_result(src: &Client, a: Absent) -> Result<TableResult> {
    let rows: i64 = src
        .query_one(
            &crate::sql::own(&format!("select count(*) from {}", a.source.quoted())),
            &[],
        )
        .await
        .map_err(|e| Error::postgres(format!("counting {} on the source", a.source), e))?
        .get(0);
    Ok(TableResult {
        source: a.source,
        target: a.target,
        method: Method::NotOnTarget,
        source_rows: rows,
        target_rows: 0,
        chunks: 0,
        differing_chunks: 0,
        missing_columns: Vec::new(),
        not_compared: Vec::new(),
        diffs: Vec::new(),
        truncated: false,
    })
}

/// Verifies the migration's target against its source, as `opts` says.
///
/// With FORCE ROW LEVEL SECURITY lifted meanwhile ([`crate::rls`]).
pub async fn verify(m: &crate::migration::Migration, opts: &VerifyOptions) -> Result<VerifyReport> {
    crate::rls::unforced(&m.target, verify_rows(&m.source, &m.target, opts)).await
}

/// [`verify`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn verify_rows(
    source: &ConnInfo,
    target: &ConnInfo,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let started = Instant::now();
    if opts.schemas.is_empty() {
        return Err(Error::invalid_input("no schemas to verify")
            .with_hint("pass --schema NAME, or leave it out to verify every application schema"));
    }
    let jobs = opts.jobs.max(1);
    let ((mut src, src_snap, _src_holder), (mut tgt, tgt_snap, _tgt_holder)) = tokio::try_join!(
        snapshot_sessions(source, jobs, "source"),
        snapshot_sessions(target, jobs, "target")
    )?;
    let (src0, tgt0) = (src.remove(0), tgt.remove(0));
    let workers: Vec<Worker> = src
        .into_iter()
        .zip(tgt)
        .map(|(source, target)| Worker {
            source,
            target,
            snapshots: (src_snap.clone(), tgt_snap.clone()),
            served: Default::default(),
        })
        .collect();
    let (pairs, absent) = pairs(&src0, &tgt0, opts).await?;
    let (mut tables, checks, app) = tokio::try_join!(
        compare_tables(&workers, &pairs, opts),
        other_checks(&src0, &tgt0, opts),
        app_checks((source, target), (&src_snap, &tgt_snap), opts)
    )?;
    for a in absent {
        tables.push(absent_result(&src0, a).await?);
    }
    tables.sort_by(|a, b| a.source.cmp(&b.source));
    let statistics = if opts.statistics {
        let present: Vec<(TableName, i64)> = tables
            .iter()
            .filter(|t| t.method != Method::NotOnTarget)
            .map(|t| (t.target.clone(), t.target_rows))
            .collect();
        stats::check(&tgt0, &present).await?
    } else {
        Vec::new()
    };
    let report = VerifyReport {
        statistics,
        tables,
        orphans: checks.orphans,
        sequences: checks.sequences,
        checks: checks.checks,
        inventory: checks.inventory,
        storage_references: checks.storage_references,
        reference_mismatches: checks.reference_mismatches,
        code: checks.code,
        extension_config: checks.extension_config,
        schema_drift: Vec::new(),
        app,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        tables = report.tables.len(),
        mismatches = report.mismatches(),
        seconds = report.seconds,
        "verify finished"
    );
    Ok(report)
}
