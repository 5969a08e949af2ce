//! Content comparison: per-chunk checksums computed by each server, bisected
//! down to the rows (and columns) that differ.
//!
//! - Every row is reduced server-side to the MD5 of its canonical text (the
//!   record of the compared columns under a pinned session, see
//!   [`super::fingerprint::PINNED_SESSION`]); a chunk's checksum is its row
//!   count plus the sums of the hashes' two 64-bit halves.
//! - Tables with a primary key are cut into key ranges whose boundaries come
//!   from the source; a range whose checksums differ is cut again (on the side
//!   with more rows) until it is small enough to compare row by row.
//! - Tables without a primary key are compared as multisets of rows: checksums
//!   per hash bucket, then the counts of each differing row.
//!
//! The SQL builders are pure; the functions that run them take one worker (a
//! source and a target session, both inside their side's snapshot).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal, TableName};
use crate::plan::users::ColumnPair;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Supabase project.
    Source,
    /// The migrated database.
    Target,
}

/// A key column: source name, target name, SQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Name on the source.
    pub source: String,
    /// Name on the target.
    pub target: String,
    /// Its type, for literals (`uuid`, `bigint`…).
    pub sql_type: String,
}

/// A source table and the target table it was copied into.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The source table.
    pub source: TableName,
    /// The target table.
    pub target: TableName,
    /// `FROM ONLY` (ordinary tables) rather than `FROM` (partitioned parents,
    /// whose partitions hold the rows).
    pub only: bool,
    /// Compared columns, in source order.
    pub columns: Vec<ColumnPair>,
    /// Source columns that the target table lacks (not compared).
    pub missing_columns: Vec<String>,
    /// Hash rows in binary form (both servers of one major version):
    /// cheaper than text for numbers, timestamps and uuids.
    pub binary_hash: bool,
    /// Per column: a built-in type, the same on both sides, whose binary
    /// form is server-independent; the others are hashed as text.
    pub portable: Vec<bool>,
    /// Primary key, in key order; empty when the table has none.
    pub key: Vec<KeyColumn>,
    /// Estimated rows (catalog), -1 when unknown.
    pub est_rows: i64,
}

impl Pair {
    fn from(&self, side: Side) -> String {
        let t = match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        };
        format!("{}{} t", if self.only { "only " } else { "" }, t.quoted())
    }

    fn col(side: Side, c: &ColumnPair) -> &str {
        match side {
            Side::Source => &c.source,
            Side::Target => &c.target,
        }
    }

    fn key_col(side: Side, k: &KeyColumn) -> &str {
        match side {
            Side::Source => &k.source,
            Side::Target => &k.target,
        }
    }

    /// The row's hash: `md5(record_send(row(t."a", t."b"::text)))` in binary
    /// form (columns whose binary form is not portable as text), else
    /// `md5(row(t."a", t."b")::text)`. Both are canonical: NULL differs from
    /// '', 1 µs differs, jsonb key order does not.
    pub fn row_hash(&self, side: Side) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let col = format!("t.{}", quote_ident(Self::col(side, c)));
                if self.binary_hash && !self.portable.get(i).copied().unwrap_or(false) {
                    format!("{col}::text")
                } else {
                    col
                }
            })
            .collect();
        if self.binary_hash {
            format!("md5(record_send(row({})))", cols.join(", "))
        } else {
            format!("md5(row({})::text)", cols.join(", "))
        }
    }

    fn key_tuple(&self, side: Side) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("t.{}", quote_ident(Self::key_col(side, k))))
            .collect();
        format!("({})", cols.join(", "))
    }

    fn key_texts(&self, side: Side) -> String {
        self.key
            .iter()
            .map(|k| format!("t.{}::text", quote_ident(Self::key_col(side, k))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_literal(&self, values: &[String]) -> String {
        let lits: Vec<String> = self
            .key
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{}::{}", quote_literal(v), k.sql_type))
            .collect();
        format!("({})", lits.join(", "))
    }

    /// The condition selecting `range`.
    pub fn range_condition(&self, side: Side, range: &Range) -> String {
        let key = self.key_tuple(side);
        let mut parts = Vec::new();
        if let Some(lo) = &range.lo {
            parts.push(format!("{key} >= {}", self.key_literal(lo)));
        }
        if let Some(hi) = &range.hi {
            parts.push(format!("{key} < {}", self.key_literal(hi)));
        }
        if parts.is_empty() {
            "true".to_string()
        } else {
            parts.join(" and ")
        }
    }

    /// Count and hash sums of the rows in `range`.
    pub fn checksum_sql(&self, side: Side, range: &Range) -> String {
        format!(
            "select count(*), {SUMS} from (select {} as h from {} where {} offset 0) s",
            self.row_hash(side),
            self.from(side),
            self.range_condition(side, range)
        )
    }

    /// Every `step`-th key of `range`, in key order: boundaries that cut it
    /// into pieces of `step` rows.
    pub fn bounds_sql(&self, side: Side, range: &Range, step: i64) -> String {
        let key = self.key_tuple(side);
        let cols: Vec<String> = (0..self.key.len()).map(|i| format!("s.k{i}")).collect();
        let named: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{}::text as k{i}", quote_ident(Self::key_col(side, k))))
            .collect();
        format!(
            "select {} from (select {}, row_number() over (order by {key}) as rn from {} where {}) s \
             where s.rn % {step} = 0 order by s.rn",
            cols.join(", "),
            named.join(", "),
            self.from(side),
            self.range_condition(side, range)
        )
    }

    /// Each row's key (as text) and hash in `range`.
    pub fn rows_sql(&self, side: Side, range: &Range) -> String {
        format!(
            "select {}, {} from {} where {}",
            self.key_texts(side),
            self.row_hash(side),
            self.from(side),
            self.range_condition(side, range)
        )
    }

    /// Key and every compared column, as text, of the rows with `keys`.
    pub fn values_sql(&self, side: Side, keys: &[Vec<String>]) -> String {
        let lits: Vec<String> = keys.iter().map(|k| self.key_literal(k)).collect();
        format!(
            "select {}, {} from {} where {} in ({})",
            self.key_texts(side),
            self.value_texts(side),
            self.from(side),
            self.key_tuple(side),
            lits.join(", ")
        )
    }

    fn value_texts(&self, side: Side) -> String {
        self.columns
            .iter()
            .map(|c| format!("t.{}::text", quote_ident(Self::col(side, c))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checksums per bucket of rows (the first two hex digits of the row hash).
    pub fn buckets_sql(&self, side: Side) -> String {
        format!(
            "select substr(h, 1, 2) as b, count(*), {SUMS} from (select {} as h from {} offset 0) s group by 1",
            self.row_hash(side),
            self.from(side)
        )
    }

    /// Each distinct row hash in `buckets` with its number of copies.
    pub fn hash_counts_sql(&self, side: Side, buckets: &[String]) -> String {
        let lits: Vec<String> = buckets.iter().map(|b| quote_literal(b)).collect();
        format!(
            "select h, count(*) from (select {} as h from {} offset 0) s where substr(h, 1, 2) in ({}) group by h",
            self.row_hash(side),
            self.from(side),
            lits.join(", ")
        )
    }

    /// One row (every compared column as text) per hash in `hashes`.
    pub fn rows_by_hash_sql(&self, side: Side, hashes: &[String]) -> String {
        let lits: Vec<String> = hashes.iter().map(|h| quote_literal(h)).collect();
        format!(
            "select distinct on (supamigrate_h) supamigrate_h, {} \
             from (select {} as supamigrate_h, t.* from {} offset 0) t where supamigrate_h in ({}) order by 1",
            self.value_texts(side),
            self.row_hash(side),
            self.from(side),
            lits.join(", ")
        )
    }

    /// Column names as reported: `a`, or `a → b` where the target renamed it.
    pub fn column_label(&self, i: usize) -> String {
        let c = &self.columns[i];
        if c.source == c.target {
            c.source.clone()
        } else {
            format!("{} → {}", c.source, c.target)
        }
    }
}

/// The checksum of rows whose hash is `h`: the sum of the hashes' first 64
/// bits (order-independent, sensitive to duplicates; a differing chunk goes
/// unnoticed with odds of about 2^-64). `h` must be computed once, in a
/// subquery the planner does not flatten (`offset 0`), or MD5 runs per use.
pub const SUMS: &str = "coalesce(sum(('x' || left(h, 16))::bit(64)::bigint), 0)::text";

/// A key range: from `lo` (inclusive) to `hi` (exclusive); `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Lower bound (key values as text).
    pub lo: Option<Vec<String>>,
    /// Upper bound.
    pub hi: Option<Vec<String>>,
}

impl Range {
    /// Cuts `self` at `bounds` (sorted, inside the range).
    pub fn split(&self, bounds: &[Vec<String>]) -> Vec<Range> {
        let mut out = Vec::with_capacity(bounds.len() + 1);
        let mut lo = self.lo.clone();
        for b in bounds {
            if lo.as_ref() == Some(b) {
                continue;
            }
            out.push(Range {
                lo: lo.clone(),
                hi: Some(b.clone()),
            });
            lo = Some(b.clone());
        }
        out.push(Range {
            lo,
            hi: self.hi.clone(),
        });
        out
    }
}

/// A chunk's checksum: rows and the hash sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sum {
    /// Rows.
    pub rows: i64,
    /// Sum of the rows' hashes (see [`SUMS`]).
    pub hash: String,
}

/// The worker's two sessions.
pub struct Worker {
    /// On the source, in its snapshot.
    pub source: Client,
    /// On the target, in its snapshot.
    pub target: Client,
    /// The snapshots (source, target) both read, exported by sessions that
    /// hold them open: a worker's transaction is ended and the snapshot
    /// imported again every [`ITEMS_PER_TRANSACTION`] items, so the locks
    /// its reads took are released (thousands of tables in one transaction
    /// fill a server's lock table) while it still reads the same instant.
    pub snapshots: (String, String),
    /// Items done in the current transaction.
    pub served: std::sync::atomic::AtomicUsize,
}

/// Items a worker serves in one transaction.
pub const ITEMS_PER_TRANSACTION: usize = 200;

impl Worker {
    /// Counts an item done; every [`ITEMS_PER_TRANSACTION`], a new
    /// transaction on each side in the same snapshot.
    pub async fn item_done(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.served.fetch_add(1, Ordering::Relaxed) + 1 < ITEMS_PER_TRANSACTION {
            return Ok(());
        }
        self.served.store(0, Ordering::Relaxed);
        for (c, snapshot) in [
            (&self.source, &self.snapshots.0),
            (&self.target, &self.snapshots.1),
        ] {
            c.batch_execute("commit")
                .await
                .map_err(|e| Error::postgres("ending a verify transaction", e))?;
            crate::pg::import_snapshot(c, snapshot, crate::pg::Access::ReadOnly).await?;
        }
        Ok(())
    }

    fn client(&self, side: Side) -> &Client {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }

    async fn query(&self, side: Side, sql: &str, what: &str) -> Result<Vec<tokio_postgres::Row>> {
        let name = match side {
            Side::Source => "source",
            Side::Target => "target",
        };
        self.client(side)
            .query(&crate::sql::own(sql), &[])
            .await
            .map_err(|e| Error::postgres(format!("{what} on the {name}"), e))
    }

    async fn both(
        &self,
        source_sql: &str,
        target_sql: &str,
        what: &str,
    ) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>)> {
        tokio::try_join!(
            self.query(Side::Source, source_sql, what),
            self.query(Side::Target, target_sql, what)
        )
    }

    /// Checksums of `range` on both sides, concurrently.
    pub async fn checksums(&self, pair: &Pair, range: &Range) -> Result<(Sum, Sum)> {
        let what = format!("checksumming {}", pair.source);
        let (s, t) = self
            .both(
                &pair.checksum_sql(Side::Source, range),
                &pair.checksum_sql(Side::Target, range),
                &what,
            )
            .await?;
        Ok((sum_of(&s[0], 0), sum_of(&t[0], 0)))
    }

    /// Boundaries cutting `range` into pieces of about `step` rows, read on `side`.
    pub async fn bounds(
        &self,
        pair: &Pair,
        side: Side,
        range: &Range,
        step: i64,
    ) -> Result<Vec<Vec<String>>> {
        let rows = self
            .query(
                side,
                &pair.bounds_sql(side, range, step.max(1)),
                &format!("cutting {} into chunks", pair.source),
            )
            .await?;
        Ok(rows.iter().map(|r| texts(r, 0, pair.key.len())).collect())
    }
}

fn sum_of(r: &tokio_postgres::Row, at: usize) -> Sum {
    Sum {
        rows: r.get(at),
        hash: r.get(at + 1),
    }
}

fn texts(r: &tokio_postgres::Row, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
        .collect()
}

fn opt_texts(r: &tokio_postgres::Row, from: usize, n: usize) -> Vec<Option<String>> {
    (from..from + n).map(|i| r.get(i)).collect()
}

/// What differs in one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    /// On the source, not on the target.
    Missing,
    /// On the target, not on the source.
    Extra,
    /// On both, with different values.
    Changed,
}

/// One column's two values (text form; `None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDiff {
    /// The column (`a → b` when renamed).
    pub column: String,
    /// On the source.
    pub source: Option<String>,
    /// On the target.
    pub target: Option<String>,
}

/// One column's value in a row's key (or, without a key, in the row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The column.
    pub column: String,
    /// Its value (`None`: NULL).
    pub value: Option<String>,
}

/// One differing row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    /// Missing, extra or changed.
    pub kind: DiffKind,
    /// The row's primary key as `column = value`; for tables without a key,
    /// every column of the (source's, when changed) row.
    pub key: Vec<KeyValue>,
    /// For changed rows, the columns that differ.
    pub columns: Vec<ColumnDiff>,
    /// Copies of this row that differ (more than 1 only without a key).
    pub copies: i64,
}

/// Key-to-hash differences found in the chunks of one table.
#[derive(Debug, Clone, Default)]
pub struct KeyDiffs {
    /// Keys on the source only, with their row hash.
    pub missing: BTreeMap<Vec<String>, String>,
    /// Keys on the target only.
    pub extra: BTreeMap<Vec<String>, String>,
    /// Keys on both with different hashes.
    pub changed: BTreeSet<Vec<String>>,
    /// Bisection stopped at the row limit.
    pub truncated: bool,
}

impl KeyDiffs {
    /// Differences found.
    pub fn len(&self) -> usize {
        self.missing.len() + self.extra.len() + self.changed.len()
    }

    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `other`, then settles keys missing from one chunk and extra in
    /// another (possible when the two servers order keys differently, e.g.
    /// text keys under other collations): same hash, no difference;
    /// different hash, a changed row.
    pub fn merge(&mut self, other: KeyDiffs) {
        self.missing.extend(other.missing);
        self.extra.extend(other.extra);
        self.changed.extend(other.changed);
        self.truncated |= other.truncated;
        let both: Vec<Vec<String>> = self
            .missing
            .keys()
            .filter(|k| self.extra.contains_key(*k))
            .cloned()
            .collect();
        for k in both {
            let (m, e) = (self.missing.remove(&k), self.extra.remove(&k));
            if m != e {
                self.changed.insert(k);
            }
        }
    }

    /// Compares the (key, hash) rows of one range from both sides.
    pub fn from_rows(
        source: Vec<(Vec<String>, String)>,
        target: Vec<(Vec<String>, String)>,
    ) -> KeyDiffs {
        let mut out = KeyDiffs::default();
        let mut tgt: BTreeMap<Vec<String>, String> = target.into_iter().collect();
        for (k, h) in source {
            match tgt.remove(&k) {
                None => {
                    out.missing.insert(k, h);
                }
                Some(th) if th != h => {
                    out.changed.insert(k);
                }
                Some(_) => {}
            }
        }
        out.extra = tgt;
        out
    }
}

/// How to cut and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Bisect {
    /// Pieces a differing range is cut into.
    pub factor: i64,
    /// Ranges with at most this many rows (on the larger side) are compared row by row.
    pub leaf_rows: i64,
    /// Stop looking once this many differing rows are found.
    pub max_rows: usize,
}

/// Narrows a differing range down to its differing keys.
pub async fn bisect(
    w: &Worker,
    pair: &Pair,
    range: Range,
    sums: (Sum, Sum),
    cfg: Bisect,
) -> Result<KeyDiffs> {
    let mut found = KeyDiffs::default();
    let mut stack = vec![(range, sums.0, sums.1)];
    while let Some((range, s, t)) = stack.pop() {
        if s == t {
            continue;
        }
        if found.len() >= cfg.max_rows {
            found.truncated = true;
            break;
        }
        let larger = s.rows.max(t.rows);
        let bounds = if larger > cfg.leaf_rows {
            let side = if s.rows >= t.rows {
                Side::Source
            } else {
                Side::Target
            };
            let step = (larger + cfg.factor - 1) / cfg.factor;
            w.bounds(pair, side, &range, step).await?
        } else {
            Vec::new()
        };
        let pieces = range.split(&bounds);
        if pieces.len() <= 1 {
            let what = format!("comparing rows of {}", pair.source);
            let (sr, tr) = w
                .both(
                    &pair.rows_sql(Side::Source, &range),
                    &pair.rows_sql(Side::Target, &range),
                    &what,
                )
                .await?;
            let n = pair.key.len();
            let keyed = |rows: Vec<tokio_postgres::Row>| -> Vec<(Vec<String>, String)> {
                rows.iter().map(|r| (texts(r, 0, n), r.get(n))).collect()
            };
            found.merge(KeyDiffs::from_rows(keyed(sr), keyed(tr)));
            continue;
        }
        for piece in pieces.into_iter().rev() {
            let (ps, pt) = w.checksums(pair, &piece).await?;
            if ps != pt {
                stack.push((piece, ps, pt));
            }
        }
    }
    Ok(found)
}

/// Values on both sides of the changed rows `keys`: one [`RowDiff`] each.
pub async fn changed_rows(w: &Worker, pair: &Pair, keys: &[Vec<String>]) -> Result<Vec<RowDiff>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("reading the differing rows of {}", pair.source);
    let (sr, tr) = w
        .both(
            &pair.values_sql(Side::Source, keys),
            &pair.values_sql(Side::Target, keys),
            &what,
        )
        .await?;
    let n = pair.key.len();
    let m = pair.columns.len();
    let by_key = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<Vec<String>, Vec<Option<String>>> {
        rows.iter()
            .map(|r| (texts(r, 0, n), opt_texts(r, n, m)))
            .collect()
    };
    let (sv, tv) = (by_key(sr), by_key(tr));
    let mut out = Vec::new();
    for k in keys {
        let (Some(a), Some(b)) = (sv.get(k), tv.get(k)) else {
            continue;
        };
        out.push(RowDiff {
            kind: DiffKind::Changed,
            key: key_pairs(pair, k),
            columns: column_diffs(pair, a, b),
            copies: 1,
        });
    }
    Ok(out)
}

/// `column = value` for a key.
pub fn key_pairs(pair: &Pair, key: &[String]) -> Vec<KeyValue> {
    pair.key
        .iter()
        .zip(key)
        .map(|(k, v)| KeyValue {
            column: k.source.clone(),
            value: Some(v.clone()),
        })
        .collect()
}

fn column_diffs(pair: &Pair, a: &[Option<String>], b: &[Option<String>]) -> Vec<ColumnDiff> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| ColumnDiff {
            column: pair.column_label(i),
            source: x.clone(),
            target: y.clone(),
        })
        .collect()
}

/// The differing rows of a table without a primary key, compared as
/// multisets: bucket checksums, then row counts in the differing buckets.
pub async fn multiset_diff(
    w: &Worker,
    pair: &Pair,
    max_rows: usize,
) -> Result<(Vec<RowDiff>, bool)> {
    let what = format!("comparing rows of {} (no primary key)", pair.source);
    let (sb, tb) = w
        .both(
            &pair.buckets_sql(Side::Source),
            &pair.buckets_sql(Side::Target),
            &what,
        )
        .await?;
    let buckets = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<String, Sum> {
        rows.iter().map(|r| (r.get(0), sum_of(r, 1))).collect()
    };
    let (sb, tb) = (buckets(sb), buckets(tb));
    let names: BTreeSet<&String> = sb.keys().chain(tb.keys()).collect();
    let differing: Vec<String> = names
        .into_iter()
        .filter(|b| sb.get(*b) != tb.get(*b))
        .cloned()
        .collect();
    if differing.is_empty() {
        return Ok((Vec::new(), false));
    }
    let (sh, th) = w
        .both(
            &pair.hash_counts_sql(Side::Source, &differing),
            &pair.hash_counts_sql(Side::Target, &differing),
            &what,
        )
        .await?;
    let counts = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<String, i64> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let (sh, th) = (counts(sh), counts(th));
    let hashes: BTreeSet<&String> = sh.keys().chain(th.keys()).collect();
    let mut delta: Vec<(String, i64)> = hashes
        .into_iter()
        .map(|h| {
            (
                h.clone(),
                sh.get(h).copied().unwrap_or(0) - th.get(h).copied().unwrap_or(0),
            )
        })
        .filter(|(_, d)| *d != 0)
        .collect();
    let truncated = delta.len() > max_rows;
    delta.truncate(max_rows);
    let want: Vec<String> = delta.iter().map(|(h, _)| h.clone()).collect();
    let (sv, tv) = w
        .both(
            &pair.rows_by_hash_sql(Side::Source, &want),
            &pair.rows_by_hash_sql(Side::Target, &want),
            &what,
        )
        .await?;
    let m = pair.columns.len();
    let mut values: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for r in sv.iter().chain(tv.iter()) {
        values.insert(r.get(0), opt_texts(r, 1, m));
    }
    let missing: Vec<(Vec<Option<String>>, i64)> = delta
        .iter()
        .filter(|(_, d)| *d > 0)
        .filter_map(|(h, d)| values.get(h).map(|v| (v.clone(), *d)))
        .collect();
    let extra: Vec<(Vec<Option<String>>, i64)> = delta
        .iter()
        .filter(|(_, d)| *d < 0)
        .filter_map(|(h, d)| values.get(h).map(|v| (v.clone(), -d)))
        .collect();
    Ok((pair_rows(pair, missing, extra), truncated))
}

/// Pairs rows missing on the target with extra ones that share the most
/// columns (a changed row, as far as rows without a key can tell); the rest
/// stay missing or extra.
pub fn pair_rows(
    pair: &Pair,
    missing: Vec<(Vec<Option<String>>, i64)>,
    mut extra: Vec<(Vec<Option<String>>, i64)>,
) -> Vec<RowDiff> {
    let whole = |v: &[Option<String>]| -> Vec<KeyValue> {
        (0..v.len())
            .map(|i| KeyValue {
                column: pair.column_label(i),
                value: v[i].clone(),
            })
            .collect()
    };
    let mut out = Vec::new();
    for (row, copies) in missing {
        let best = extra
            .iter()
            .enumerate()
            .filter(|(_, (e, n))| *n > 0 && same_count(&row, e) > 0)
            .max_by_key(|(i, (e, _))| (same_count(&row, e), usize::MAX - i))
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let n = copies.min(extra[i].1);
                out.push(RowDiff {
                    kind: DiffKind::Changed,
                    key: whole(&row),
                    columns: column_diffs(pair, &row, &extra[i].0),
                    copies: n,
                });
                extra[i].1 -= n;
                if copies > n {
                    out.push(RowDiff {
                        kind: DiffKind::Missing,
                        key: whole(&row),
                        columns: Vec::new(),
                        copies: copies - n,
                    });
                }
            }
            None => out.push(RowDiff {
                kind: DiffKind::Missing,
                key: whole(&row),
                columns: Vec::new(),
                copies,
            }),
        }
    }
    for (row, copies) in extra {
        if copies > 0 {
            out.push(RowDiff {
                kind: DiffKind::Extra,
                key: whole(&row),
                columns: Vec::new(),
                copies,
            });
        }
    }
    out
}

fn same_count(a: &[Option<String>], b: &[Option<String>]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &[(&str, &str)]) -> Pair {
        Pair {
            source: TableName::new("auth", "users"),
            target: TableName::new("public", "app_users"),
            only: true,
            columns: vec![
                ColumnPair {
                    source: "id".into(),
                    target: "id".into(),
                },
                ColumnPair {
                    source: "email_change_token_new".into(),
                    target: "email_change_token".into(),
                },
            ],
            missing_columns: vec![],
            binary_hash: false,
            portable: vec![true, true],
            key: key
                .iter()
                .map(|(n, t)| KeyColumn {
                    source: n.to_string(),
                    target: n.to_string(),
                    sql_type: t.to_string(),
                })
                .collect(),
            est_rows: 10,
        }
    }

    #[test]
    fn sql_uses_each_sides_names_and_typed_literals() {
        let p = pair(&[("id", "uuid")]);
        let r = Range {
            lo: Some(vec!["a'1".into()]),
            hi: None,
        };
        assert_eq!(
            p.checksum_sql(Side::Target, &r),
            format!(
                "select count(*), {SUMS} from (select md5(row(t.\"id\", t.\"email_change_token\")::text) as h \
                 from only \"public\".\"app_users\" t where (t.\"id\") >= ('a''1'::uuid) offset 0) s"
            )
        );
        assert!(p
            .checksum_sql(Side::Source, &Range::default())
            .contains("md5(row(t.\"id\", t.\"email_change_token_new\")::text) as h from only \"auth\".\"users\" t where true"));
        let c = pair(&[("a", "integer"), ("b", "text")]);
        let r = Range {
            lo: Some(vec!["1".into(), "x".into()]),
            hi: Some(vec!["2".into(), "y".into()]),
        };
        assert_eq!(
            c.range_condition(Side::Source, &r),
            "(t.\"a\", t.\"b\") >= ('1'::integer, 'x'::text) and (t.\"a\", t.\"b\") < ('2'::integer, 'y'::text)"
        );
        assert_eq!(
            c.values_sql(Side::Source, &[vec!["1".into(), "x".into()]]),
            "select t.\"a\"::text, t.\"b\"::text, t.\"id\"::text, t.\"email_change_token_new\"::text from only \"auth\".\"users\" t \
             where (t.\"a\", t.\"b\") in (('1'::integer, 'x'::text))"
        );
        assert_eq!(
            c.column_label(1),
            "email_change_token_new → email_change_token"
        );
    }

    #[test]
    fn ranges_split_at_bounds_and_keep_their_ends() {
        let k = |s: &str| vec![s.to_string()];
        let r = Range {
            lo: Some(k("a")),
            hi: Some(k("z")),
        };
        let parts = r.split(&[k("a"), k("m"), k("q")]);
        assert_eq!(
            parts,
            vec![
                Range {
                    lo: Some(k("a")),
                    hi: Some(k("m"))
                },
                Range {
                    lo: Some(k("m")),
                    hi: Some(k("q"))
                },
                Range {
                    lo: Some(k("q")),
                    hi: Some(k("z"))
                },
            ]
        );
        assert_eq!(Range::default().split(&[]), vec![Range::default()]);
    }

    #[test]
    fn key_diffs_classify_and_settle_moved_keys() {
        let row = |k: &str, h: &str| (vec![k.to_string()], h.to_string());
        let mut d = KeyDiffs::from_rows(
            vec![row("1", "a"), row("2", "b"), row("3", "c"), row("9", "x")],
            vec![row("1", "a"), row("2", "B"), row("4", "d")],
        );
        assert_eq!(
            d.missing.keys().collect::<Vec<_>>(),
            vec![&vec!["3".to_string()], &vec!["9".to_string()]]
        );
        assert_eq!(
            d.extra.keys().collect::<Vec<_>>(),
            vec![&vec!["4".to_string()]]
        );
        assert_eq!(
            d.changed.iter().collect::<Vec<_>>(),
            vec![&vec!["2".to_string()]]
        );
        // Another chunk holds key 3 unchanged and key 9 changed on the target.
        d.merge(KeyDiffs::from_rows(
            vec![],
            vec![row("3", "c"), row("9", "y")],
        ));
        assert!(d.missing.is_empty());
        assert_eq!(d.extra.len(), 1);
        assert_eq!(d.changed.len(), 2);
    }

    #[test]
    fn rows_without_key_pair_by_most_equal_columns() {
        let p = pair(&[]);
        let v = |a: &str, b: Option<&str>| vec![Some(a.to_string()), b.map(|s| s.to_string())];
        let diffs = pair_rows(
            &p,
            vec![(v("1", Some("")), 1), (v("7", Some("q")), 2)],
            vec![(v("5", Some("z")), 1), (v("1", None), 1)],
        );
        assert_eq!(diffs.len(), 3);
        assert_eq!(diffs[0].kind, DiffKind::Changed);
        assert_eq!(
            diffs[0].columns,
            vec![ColumnDiff {
                column: "email_change_token_new → email_change_token".into(),
                source: Some(String::new()),
                target: None
            }]
        );
        assert_eq!(
            (diffs[1].kind.clone(), diffs[1].copies),
            (DiffKind::Missing, 2)
        );
        assert_eq!(
            (diffs[2].kind.clone(), diffs[2].copies),
            (DiffKind::Extra, 1)
        );
    }
}
