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

pub mod checks;
pub mod content;
pub mod fingerprint;
pub mod integrity;
pub mod inventory;
pub mod render;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::TableName;
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::schema::convert::USER_COLUMNS;
use content::{Bisect, DiffKind, KeyColumn, KeyDiffs, Pair, Range, RowDiff, Sum, Worker};

/// What to verify and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Migrated schemas (same names on both sides).
    pub schemas: Vec<String>,
    /// Compare `auth.users` with `app_users`.
    pub users: bool,
    /// Concurrent workers (a source and a target session each).
    pub jobs: usize,
    /// List at most this many differing rows per table.
    pub max_rows: usize,
    /// Rows per first-level chunk.
    pub chunk_rows: i64,
    /// The conversion's statements (pre-data and post-data): the planned
    /// schema inventory.
    pub planned: Vec<String>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Reference columns `storage copy` rewrote: not compared with the
    /// source; checked instead for values still pointing at Supabase Storage.
    pub rewritten: Vec<crate::storage::refs::RefColumn>,
    /// The bucket prefix and URL prefix `storage copy` used: each rewritten
    /// value must be the new location of the source's value.
    pub rewrite_prefixes: (String, Option<String>),
}

impl VerifyOptions {
    /// Defaults for what `src` exported and `conv` planned: its schemas,
    /// `auth.users` when present, every planned statement.
    pub fn for_conversion(
        src: &crate::schema::export::SchemaSource,
        conv: &crate::schema::Conversion,
    ) -> VerifyOptions {
        VerifyOptions::new(
            src.schemas.clone(),
            src.auth_users_columns.is_some(),
            conv.pre_data
                .iter()
                .chain(&conv.post_data)
                .cloned()
                .collect(),
        )
    }

    /// Defaults for `schemas` and `planned`.
    pub fn new(schemas: Vec<String>, users: bool, planned: Vec<String>) -> VerifyOptions {
        VerifyOptions {
            schemas,
            users,
            jobs: 2,
            max_rows: 20,
            chunk_rows: 100_000,
            planned,
            progress: false,
            rewritten: Vec::new(),
            rewrite_prefixes: (crate::storage::DEFAULT_BUCKET_PREFIX.to_string(), None),
        }
    }
}

/// How a table was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

/// Everything verify found.
#[derive(Debug, Clone, Serialize)]
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
    /// Rewritten reference columns with values still pointing at Supabase
    /// Storage: (column, rows).
    pub storage_references: Vec<(String, i64)>,
    /// Rewritten values that are not the new location of the source's value
    /// (at most `max_rows` per column listed): (column, key, source, target).
    pub reference_mismatches: Vec<(String, String, Option<String>, Option<String>)>,
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
        for (name, v) in &mut d.key {
            hide(name, v);
        }
        for c in &mut d.columns {
            hide(&c.column, &mut c.source);
            hide(&c.column, &mut c.target);
        }
    }
}

/// Sessions on one side, all reading one snapshot: the coordinator first.
async fn snapshot_sessions(info: &ConnInfo, workers: usize, side: &str) -> Result<Vec<Client>> {
    let what = |e| Error::postgres(format!("opening a read-only snapshot on the {side}"), e);
    let start = "set statement_timeout = 0; set idle_in_transaction_session_timeout = 0; \
                 begin transaction isolation level repeatable read read only";
    let first = connect(info).await?;
    fingerprint::pin_session(&first).await?;
    first.batch_execute(start).await.map_err(what)?;
    let snapshot: String = first
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(what)?
        .get(0);
    let mut out = vec![first];
    let others = futures_util::future::join_all((0..workers).map(|_| async {
        let c = connect(info).await?;
        fingerprint::pin_session(&c).await?;
        c.batch_execute(&format!(
            "{start}; set transaction snapshot {}",
            crate::catalog::quote_literal(&snapshot)
        ))
        .await
        .map_err(what)?;
        Ok::<Client, Error>(c)
    }))
    .await;
    for c in others {
        out.push(c?);
    }
    Ok(out)
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

/// Pairs each source table with its target table (same name; `auth.users`
/// with `app_users` on the mapped columns). Tables missing on the target
/// come back separately.
async fn pairs(
    source: &Client,
    target: &Client,
    opts: &VerifyOptions,
) -> Result<(Vec<Pair>, Vec<(TableName, TableName, i64)>)> {
    let src = columns(source, &opts.schemas, "source").await?;
    let mut target_schemas = opts.schemas.clone();
    let app_users = TableName::new("public", "app_users");
    if opts.users && !target_schemas.iter().any(|s| s == "public") {
        target_schemas.push("public".into());
    }
    let tgt = columns(target, &target_schemas, "target").await?;
    let same_major =
        crate::catalog::server_major(source).await? == crate::catalog::server_major(target).await?;
    let mut out = Vec::new();
    let mut absent = Vec::new();
    let skipped = |t: &TableName, c: &str| {
        opts.rewritten
            .iter()
            .any(|r| &r.table == t && r.column == c)
    };
    let mut add = |s: TableName, sc: &Columns, t: TableName, mapping: Option<&[(&str, &str)]>| {
        let Some(tc) = tgt.get(&t) else {
            absent.push((s, t, sc.est_rows));
            return;
        };
        let has = |c: &str| tc.columns.iter().any(|(n, _, _, _)| n == c);
        let portable = |c: &str, ty: &str, builtin: bool| {
            builtin
                && tc
                    .columns
                    .iter()
                    .any(|(n, _, t, b)| n == c && t == ty && *b)
        };
        let mut columns = Vec::new();
        let mut portables = Vec::new();
        let mut missing = Vec::new();
        let rename = |c: &str| -> Option<String> {
            match mapping {
                None => Some(c.to_string()),
                Some(m) => m
                    .iter()
                    .find(|(f, _)| *f == c)
                    .map(|(_, to)| to.to_string()),
            }
        };
        for (c, _, ty, builtin) in &sc.columns {
            let Some(to) = rename(c) else { continue };
            if skipped(&s, c) {
                continue;
            }
            if has(&to) {
                portables.push(portable(&to, ty, *builtin));
                columns.push((c.clone(), to));
            } else {
                missing.push(c.clone());
            }
        }
        let key = key_of(sc)
            .into_iter()
            .filter_map(|(n, ty)| {
                rename(&n).filter(|to| has(to)).map(|to| KeyColumn {
                    source: n,
                    target: to,
                    sql_type: ty,
                })
            })
            .collect::<Vec<_>>();
        let key = if key.len() == key_of(sc).len() {
            key
        } else {
            Vec::new()
        };
        out.push(Pair {
            source: s,
            target: t,
            only: sc.only,
            columns,
            missing_columns: missing,
            binary_hash: same_major,
            portable: portables,
            key,
            est_rows: sc.est_rows,
        });
    };
    for (name, sc) in &src {
        add(name.clone(), sc, name.clone(), None);
    }
    if opts.users {
        let auth = columns(source, &["auth".to_string()], "source").await?;
        let users = TableName::new("auth", "users");
        if let Some(sc) = auth.get(&users) {
            add(users, sc, app_users, Some(USER_COLUMNS));
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
    progress: &indicatif::ProgressBar,
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

fn progress_bar(show: bool, len: usize, msg: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Compares every table's content.
async fn compare_tables(
    workers: &[Worker],
    pairs: &[Pair],
    opts: &VerifyOptions,
) -> Result<Vec<TableResult>> {
    let cut: Vec<usize> = (0..pairs.len())
        .filter(|&i| {
            !pairs[i].key.is_empty()
                && (pairs[i].est_rows < 0 || pairs[i].est_rows > opts.chunk_rows)
        })
        .collect();
    let bar = progress_bar(opts.progress, cut.len(), "chunking");
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
    bar.finish_and_clear();

    let mut items: Vec<(usize, Range)> = Vec::new();
    let mut chunks = vec![0usize; pairs.len()];
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].est_rows));
    for i in order {
        let ranges = Range::default().split(bounds.get(&i).map(Vec::as_slice).unwrap_or(&[]));
        chunks[i] = ranges.len();
        items.extend(ranges.into_iter().map(|r| (i, r)));
    }
    let bar = progress_bar(opts.progress, items.len(), "comparing");
    let cfg = Bisect {
        factor: 16,
        leaf_rows: 512,
        max_rows: opts.max_rows.max(1),
    };
    let outcomes = on_workers(workers, items, &bar, |w, (i, range)| {
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
    .await?;
    bar.finish_and_clear();

    let mut results: Vec<TableResult> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| TableResult {
            source: p.source.clone(),
            target: p.target.clone(),
            method: if p.key.is_empty() {
                Method::Multiset
            } else {
                Method::KeyRanges
            },
            source_rows: 0,
            target_rows: 0,
            chunks: chunks[i],
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
        })
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
    let w = &workers[0];
    for (i, k) in keys.into_iter().enumerate() {
        if k.is_empty() {
            continue;
        }
        let pair = &pairs[i];
        let r = &mut results[i];
        let total = k.len();
        let changed: Vec<Vec<String>> = k.changed.iter().take(opts.max_rows).cloned().collect();
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
        if r.diffs.len() > opts.max_rows || total > opts.max_rows {
            r.truncated = true;
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
) -> Result<Vec<(String, String, Option<String>, Option<String>)>> {
    use crate::catalog::quote_ident;
    let mut out = Vec::new();
    for rc in &opts.rewritten {
        let key = crate::catalog::primary_key(source, &rc.table).await?;
        if key.is_empty() {
            continue;
        }
        let key_expr = key
            .iter()
            .map(|k| format!("t.{}::text", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let sql = format!(
            "select {key_expr}, t.{}::text from {} t",
            quote_ident(&rc.column),
            rc.table.quoted()
        );
        let what = format!("reading {}.{}", rc.table, rc.column);
        let (s, t) = tokio::try_join!(
            key_values(source, &sql, &what),
            key_values(target, &sql, &what)
        )?;
        let label = format!("{}.{}", rc.table, rc.column);
        let mut listed = 0;
        for (k, sv) in &s {
            let tv = t.get(k).cloned().flatten();
            let ok = match (sv, &tv) {
                (None, None) => true,
                (Some(v), Some(w)) => crate::storage::refs::expected_after_rewrite(
                    v,
                    &rc.bucket,
                    &opts.rewrite_prefixes.0,
                    opts.rewrite_prefixes.1.as_deref(),
                )
                .contains(w),
                _ => false,
            };
            if !ok && t.contains_key(k) && listed < opts.max_rows {
                listed += 1;
                let red = |v: &Option<String>| v.as_deref().map(crate::storage::refs::redact_token);
                out.push((label.clone(), k.clone(), red(sv), red(&tv)));
            }
        }
    }
    Ok(out)
}

/// Verifies `target` against `source`.
pub async fn verify(
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
    let (mut src, mut tgt) = tokio::try_join!(
        snapshot_sessions(source, jobs, "source"),
        snapshot_sessions(target, jobs, "target")
    )?;
    let (src0, tgt0) = (src.remove(0), tgt.remove(0));
    let workers: Vec<Worker> = src
        .into_iter()
        .zip(tgt)
        .map(|(source, target)| Worker { source, target })
        .collect();

    let (pairs, absent) = pairs(&src0, &tgt0, opts).await?;
    let schemas: Vec<&str> = opts.schemas.iter().map(String::as_str).collect();
    let (planned, inherited) = inventory::planned(&opts.planned)?;
    let mut inv_schemas = inventory::schemas(&planned);
    for s in &opts.schemas {
        if !inv_schemas.contains(s) {
            inv_schemas.push(s.clone());
        }
    }
    let target_fk_schemas: Vec<&str> = inv_schemas.iter().map(String::as_str).collect();
    let integrity = async {
        let orphans = integrity::orphan_checks(&src0, &tgt0, &schemas, &target_fk_schemas).await?;
        let sequences = integrity::sequence_checks(&src0, &tgt0, &schemas).await?;
        let checks = checks::run(&src0, &tgt0, &checks::builtin()?).await?;
        let found = inventory::found(&tgt0, &inv_schemas).await?;
        let refs = crate::storage::remaining_supabase_references(&tgt0, &opts.rewritten).await?;
        let ref_diffs = reference_mismatches(&src0, &tgt0, opts).await?;
        Ok::<_, Error>((
            orphans,
            sequences,
            checks,
            inventory::compare(&planned, &inherited, &found),
            refs,
            ref_diffs,
        ))
    };
    let (
        mut tables,
        (orphans, sequences, checks, inventory, storage_references, reference_mismatches),
    ) = tokio::try_join!(compare_tables(&workers, &pairs, opts), integrity)?;
    for (s, t, _) in absent {
        let rows: i64 = src0
            .query_one(&format!("select count(*) from {}", s.quoted()), &[])
            .await
            .map_err(|e| Error::postgres(format!("counting {s} on the source"), e))?
            .get(0);
        tables.push(TableResult {
            source: s,
            target: t,
            method: Method::NotOnTarget,
            source_rows: rows,
            target_rows: 0,
            chunks: 0,
            differing_chunks: 0,
            missing_columns: Vec::new(),
            not_compared: Vec::new(),
            diffs: Vec::new(),
            truncated: false,
        });
    }
    tables.sort_by(|a, b| a.source.cmp(&b.source));
    let report = VerifyReport {
        tables,
        orphans,
        sequences,
        checks,
        inventory,
        storage_references,
        reference_mismatches,
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
