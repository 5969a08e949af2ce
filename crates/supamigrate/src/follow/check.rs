//! The cutover's fast verify: what the follow changed since the copy,
//! compared on both sides once the target has caught up.
//!
//! - The rows whose keys the follow recorded (`supamigrate.follow_keys`,
//!   written with the changes) are compared by the MD5 of their compared
//!   columns, a page of keys at a time: the cost grows with what changed,
//!   not with the database.
//! - A changed table is counted on both sides too when counting is cheap
//!   (at most [`COUNT_AT_MOST`] rows), when it has no key (replica identity
//!   full), or when a TRUNCATE emptied it.
//! - Tables the follow never changed hold what the copy put there.
//!
//! `supamigrate verify` afterwards compares everything.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal, TableName};
use crate::plan::copy::TableMapping;
use crate::plan::MigrationPlan;

/// Changed tables with at most this many rows (by the target's statistics)
/// are counted on both sides as well.
pub const COUNT_AT_MOST: f64 = 1_000_000.0;

/// Keys compared per query.
const PAGE: i64 = 1000;

/// Differing rows listed (the total is counted).
const LISTED: usize = 20;

/// A table whose counts differ after the catch-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountDiff {
    /// The target table.
    pub table: String,
    /// Rows on the source.
    pub source: i64,
    /// Rows on the target.
    pub target: i64,
}

/// A changed row that differs after the catch-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    /// The target table.
    pub table: String,
    /// Its key, `column = value` joined by commas.
    pub key: String,
    /// `missing on the target`, `not on the source` or `values differ`.
    pub what: String,
}

/// What the fast verify found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FastVerify {
    /// Tables the follow changed (all compared).
    pub tables_compared: usize,
    /// Of those, the ones counted on both sides.
    pub tables_counted: usize,
    /// Changed rows compared by content.
    pub rows_compared: u64,
    /// Changed rows compared by content (and found equal) while following,
    /// before the cutover.
    #[serde(default)]
    pub rows_compared_while_following: u64,
    /// Tables analyzed again: what the follow applied moved their row
    /// counts more than 10% from their statistics.
    pub analyzed: Vec<String>,
    /// Tables whose counts differ.
    pub count_differences: Vec<CountDiff>,
    /// Changed rows that differ (all of them).
    pub rows_differing: u64,
    /// The first of them.
    pub row_differences: Vec<RowDiff>,
}

impl FastVerify {
    /// Something differs: the cutover does not finish.
    pub fn differs(&self) -> bool {
        !self.count_differences.is_empty() || self.rows_differing > 0
    }
}

/// One changed table, as `supamigrate.follow_tables` records it.
struct Changed<'a> {
    mapping: &'a TableMapping,
    key_columns: Option<Vec<String>>,
    truncated: bool,
}

/// Compares what the follow changed. Pins both sessions' text forms.
pub async fn fast_verify(src: &Client, tgt: &Client, plan: &MigrationPlan) -> Result<FastVerify> {
    for (c, side) in [(src, "source"), (tgt, "target")] {
        c.batch_execute(crate::pg::TEXT_FORMS)
            .await
            .map_err(|e| Error::postgres(format!("pinning the {side} session's text forms"), e))?;
    }
    let mut out = FastVerify {
        rows_compared_while_following: super::state(tgt)
            .await?
            .map_or(0, |s| s.compared_while_following.max(0) as u64),
        ..FastVerify::default()
    };
    for t in changed_tables(tgt, plan).await? {
        out.tables_compared += 1;
        let live = live_rows(tgt, &t.mapping.target).await?;
        if t.truncated || t.key_columns.is_none() || live.estimate <= COUNT_AT_MOST {
            out.tables_counted += 1;
            let (s, n) = counts(src, tgt, t.mapping).await?;
            if s != n {
                out.count_differences.push(CountDiff {
                    table: t.mapping.target.to_string(),
                    source: s,
                    target: n,
                });
            }
        }
        if let Some(key) = &t.key_columns {
            compare_keys(src, tgt, plan, t.mapping, key, &mut out).await?;
        }
        if live.off_by_a_tenth() && !plan.options.no_analyze {
            // What the follow added moved the table away from its
            // statistics: the application's first queries need them.
            tgt.batch_execute(&format!("analyze {}", t.mapping.target.quoted()))
                .await
                .map_err(|e| Error::postgres(format!("analyzing {}", t.mapping.target), e))?;
            out.analyzed.push(t.mapping.target.to_string());
        }
    }
    Ok(out)
}

async fn changed_tables<'a>(tgt: &Client, plan: &'a MigrationPlan) -> Result<Vec<Changed<'a>>> {
    let rows = tgt
        .query(
            "select target_schema, target_table, key_columns, truncated from supamigrate.follow_tables \
             order by 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the tables the follow changed", e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let target = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
            let mapping = plan.tables.iter().find(|m| m.target == target)?;
            Some(Changed {
                mapping,
                key_columns: r.get(2),
                truncated: r.get(3),
            })
        })
        .collect())
}

/// The target's idea of a table's size: statistics and live rows.
struct Live {
    estimate: f64,
    live: f64,
}

impl Live {
    fn off_by_a_tenth(&self) -> bool {
        (self.estimate - self.live).abs() > 0.1 * self.live.max(1.0)
    }
}

async fn live_rows(tgt: &Client, table: &TableName) -> Result<Live> {
    let r = tgt
        .query_one(
            "select coalesce(c.reltuples::float8, -1), coalesce(s.n_live_tup::float8, 0) \
             from pg_class c left join pg_stat_user_tables s on s.relid = c.oid \
             where c.oid = $1::text::regclass",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| Error::postgres(format!("reading the statistics of {table}"), e))?;
    Ok(Live {
        estimate: r.get(0),
        live: r.get(1),
    })
}

async fn counts(src: &Client, tgt: &Client, m: &TableMapping) -> Result<(i64, i64)> {
    tokio::try_join!(
        count(src, &m.source, m.partitioned, "source"),
        count(tgt, &m.target, m.partitioned, "target")
    )
}

async fn count(c: &Client, t: &TableName, partitioned: bool, side: &str) -> Result<i64> {
    let only = if partitioned { "" } else { "only " };
    c.query_one(
        &crate::sql::own(&format!("select count(*) from {only}{}", t.quoted())),
        &[],
    )
    .await
    .map(|r| r.get::<_, i64>(0))
    .map_err(|e| Error::postgres(format!("counting {t} on the {side}"), e))
}

/// The columns compared for a table: what the copy wrote, less the
/// references the Storage step rewrites and the generated columns the
/// target computes again.
pub(crate) fn compared_columns(plan: &MigrationPlan, m: &TableMapping) -> Vec<(String, String)> {
    let rewritten = |c: &str| {
        plan.storage.rewrite.is_some()
            && plan
                .storage
                .references
                .iter()
                .any(|r| r.table == m.source && r.column == c)
    };
    m.columns
        .iter()
        .filter(|p| !rewritten(&p.source))
        .filter(|p| {
            !plan
                .conversion
                .recomputed_generated
                .contains(&format!("{}.{}", m.source, p.source))
        })
        .map(|p| (p.source.clone(), p.target.clone()))
        .collect()
}

/// A changed table's rows on both sides, looked up by the keys the follow
/// recorded.
struct Keyed<'a> {
    source: Side<'a>,
    target: Side<'a>,
}

impl<'a> Keyed<'a> {
    async fn new(
        src: &'a Client,
        tgt: &'a Client,
        plan: &MigrationPlan,
        m: &'a TableMapping,
        key: &'a [String],
    ) -> Result<Keyed<'a>> {
        let source_key: Vec<String> = key
            .iter()
            .map(|k| {
                m.columns
                    .iter()
                    .find(|p| p.target == *k)
                    .map(|p| p.source.clone())
                    .ok_or_else(|| {
                        Error::internal(format!("key column {k} of {} is not mapped", m.target))
                    })
            })
            .collect::<Result<_>>()?;
        let columns = compared_columns(plan, m);
        let types = key_types(src, &m.source, &source_key).await?;
        Ok(Keyed {
            source: Side {
                client: src,
                rows: Rows {
                    table: &m.source,
                    key: source_key,
                    columns: columns.iter().map(|c| c.0.clone()).collect(),
                    only: !m.partitioned,
                    types,
                },
            },
            target: Side {
                client: tgt,
                rows: Rows {
                    table: &m.target,
                    key: key.to_vec(),
                    columns: columns.iter().map(|c| c.1.clone()).collect(),
                    only: !m.partitioned,
                    types: key_types(tgt, &m.target, key).await?,
                },
            },
        })
    }
}

/// How a row compares, given its hash on each side (`None`: no such row).
fn difference(source: Option<&String>, target: Option<&String>) -> Option<&'static str> {
    match (source, target) {
        (Some(a), Some(b)) if a == b => None,
        (None, None) => None,
        (Some(_), None) => Some("missing on the target"),
        (None, Some(_)) => Some("not on the source"),
        (Some(_), Some(_)) => Some("values differ"),
    }
}

/// Compares the rows whose keys the follow recorded, a page at a time.
async fn compare_keys(
    src: &Client,
    tgt: &Client,
    plan: &MigrationPlan,
    m: &TableMapping,
    key: &[String],
    out: &mut FastVerify,
) -> Result<()> {
    let sides = Keyed::new(src, tgt, plan, m, key).await?;
    let mut after: Option<Vec<String>> = None;
    loop {
        let page: Vec<Vec<String>> = key_page(tgt, &m.target, after.as_ref())
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let Some(last) = page.last().cloned() else {
            return Ok(());
        };
        let (s, t) = tokio::try_join!(sides.source.hashes(&page), sides.target.hashes(&page))?;
        out.rows_compared += page.len() as u64;
        for (i, k) in page.iter().enumerate() {
            let Some(what) = difference(s.get(&i), t.get(&i)) else {
                continue;
            };
            out.rows_differing += 1;
            if out.row_differences.len() < LISTED {
                out.row_differences.push(RowDiff {
                    table: m.target.to_string(),
                    key: key
                        .iter()
                        .zip(k)
                        .map(|(c, v)| format!("{c} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    what: what.into(),
                });
            }
        }
        after = Some(last);
    }
}

/// How long the comparison while following rests between passes.
pub const COMPARE_EVERY: Duration = Duration::from_secs(1);

/// Compares, while the follow runs, the rows it changed with the source,
/// and forgets the keys found equal on both sides: the cutover then compares
/// only what changed since the last pass, so its downtime does not grow with
/// the follow's length. Runs until dropped; an error (a session lost) is
/// logged and the next pass starts over with new sessions.
///
/// A key is forgotten only if it was not recorded again since it was read
/// (its number is unchanged) and no apply transaction holds it: a change
/// applied after the comparison records it again.
pub(crate) async fn compare_while_following(
    source: &ConnInfo,
    target: &ConnInfo,
    plan: &MigrationPlan,
) {
    let mut sessions: Option<(Client, Client)> = None;
    // Said once until a pass succeeds again (the source may be away for a
    // while; the follow reconnects on its own).
    let mut said = false;
    loop {
        tokio::time::sleep(COMPARE_EVERY).await;
        if sessions.is_none() {
            match compare_sessions(source, target).await {
                Ok(s) => sessions = Some(s),
                Err(e) => {
                    say_once(&mut said, &e);
                    continue;
                }
            }
        }
        let Some((src, tgt)) = &sessions else {
            continue;
        };
        match compare_pass(src, tgt, plan).await {
            Ok(Some(n)) => {
                said = false;
                tracing::debug!("compared while following: {n} changed row(s) equal");
            }
            Ok(None) => return,
            Err(e) => {
                say_once(&mut said, &e);
                sessions = None;
            }
        }
    }
}

fn say_once(said: &mut bool, e: &Error) {
    if !*said {
        tracing::warn!("comparing the changed rows while following: {e}; trying again each second");
        *said = true;
    }
}

async fn compare_sessions(source: &ConnInfo, target: &ConnInfo) -> Result<(Client, Client)> {
    let src = connect(source).await?;
    let tgt = connect(target).await?;
    for (c, side) in [(&src, "source"), (&tgt, "target")] {
        c.batch_execute(crate::pg::TEXT_FORMS)
            .await
            .map_err(|e| Error::postgres(format!("pinning the {side} session's text forms"), e))?;
    }
    Ok((src, tgt))
}

/// One pass over the recorded keys; the number forgotten, or `None` once
/// the follow is no longer following (the cutover has begun).
async fn compare_pass(src: &Client, tgt: &Client, plan: &MigrationPlan) -> Result<Option<u64>> {
    if super::state(tgt).await?.map(|s| s.state) != Some(super::FollowPhase::Following) {
        return Ok(None);
    }
    let mut forgotten = 0;
    for t in changed_tables(tgt, plan).await? {
        if let Some(key) = &t.key_columns {
            forgotten += forget_equal(src, tgt, plan, t.mapping, key).await?;
        }
    }
    if forgotten > 0 {
        tgt.execute(
            "update supamigrate.follow set compared_while_following = compared_while_following + $1",
            &[&(forgotten as i64)],
        )
        .await
        .map_err(|e| Error::postgres("recording the rows compared while following", e))?;
    }
    Ok(Some(forgotten))
}

/// Compares one table's recorded keys a page at a time (the target first,
/// then the source, so a row equal on both was equal at its last recorded
/// change) and forgets the equal ones.
async fn forget_equal(
    src: &Client,
    tgt: &Client,
    plan: &MigrationPlan,
    m: &TableMapping,
    key: &[String],
) -> Result<u64> {
    let sides = Keyed::new(src, tgt, plan, m, key).await?;
    let mut after: Option<Vec<String>> = None;
    let mut forgotten = 0;
    loop {
        let page = key_page(tgt, &m.target, after.as_ref()).await?;
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok(forgotten);
        };
        let (first, last) = (first.0.clone(), last.0.clone());
        let keys: Vec<Vec<String>> = page.iter().map(|(k, _)| k.clone()).collect();
        let t = sides.target.hashes(&keys).await?;
        let s = sides.source.hashes(&keys).await?;
        let equal: Vec<i64> = page
            .iter()
            .enumerate()
            .filter(|(i, _)| difference(s.get(i), t.get(i)).is_none())
            .map(|(_, (_, seq))| *seq)
            .collect();
        if !equal.is_empty() {
            crate::failpoint::hit_async(crate::failpoint::FOLLOW_COMPARED).await;
            forgotten += forget(tgt, &m.target, (&first, &last), &equal).await?;
        }
        after = Some(last);
    }
}

/// Forgets the keys of `table` between `first` and `last` still recorded
/// under one of `seqs`, skipping those an apply transaction holds.
async fn forget(
    tgt: &Client,
    table: &TableName,
    (first, last): (&Vec<String>, &Vec<String>),
    seqs: &[i64],
) -> Result<u64> {
    tgt.execute(
        "delete from supamigrate.follow_keys where ctid = any(array( \
             select ctid from supamigrate.follow_keys \
             where target_schema = $1 and target_table = $2 and key >= $3 and key <= $4 \
             and seq = any($5) for update skip locked))",
        &[&table.schema, &table.name, first, last, &seqs],
    )
    .await
    .map_err(|e| Error::postgres(format!("forgetting the compared rows of {table}"), e))
}

/// A page of the keys the follow recorded for `table`, after `after`, each
/// with the number of its last recording.
async fn key_page(
    tgt: &Client,
    table: &TableName,
    after: Option<&Vec<String>>,
) -> Result<Vec<(Vec<String>, i64)>> {
    let rows = tgt
        .query(
            "select key, seq from supamigrate.follow_keys \
             where target_schema = $1 and target_table = $2 and ($3::text[] is null or key > $3) \
             order by key limit $4",
            &[&table.schema, &table.name, &after, &PAGE],
        )
        .await
        .map_err(|e| {
            Error::postgres(format!("reading the keys the follow changed in {table}"), e)
        })?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn key_types(c: &Client, table: &TableName, key: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(key.len());
    for k in key {
        let t: Option<String> = c
            .query_one(
                "select format_type(atttypid, atttypmod) from pg_attribute \
                 where attrelid = $1::text::regclass and attname = $2 and not attisdropped",
                &[&table.quoted(), k],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading the key of {table}"), e))?
            .get(0);
        out.push(
            t.ok_or_else(|| Error::internal(format!("{table} has no column {k} for its key")))?,
        );
    }
    Ok(out)
}

/// One side: its session and its table.
struct Side<'a> {
    client: &'a Client,
    rows: Rows<'a>,
}

impl Side<'_> {
    async fn hashes(&self, keys: &[Vec<String>]) -> Result<BTreeMap<usize, String>> {
        let rows = self
            .client
            .query(&crate::sql::own(&self.rows.hashes_sql(keys)), &[])
            .await
            .map_err(|e| {
                Error::postgres(
                    format!("comparing the changed rows of {}", self.rows.table),
                    e,
                )
            })?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as usize, r.get::<_, String>(1)))
            .collect())
    }
}

/// A table, its key and compared columns.
struct Rows<'a> {
    table: &'a TableName,
    key: Vec<String>,
    columns: Vec<String>,
    only: bool,
    types: Vec<String>,
}

impl Rows<'_> {
    /// The SQL hashing the rows with `keys`, each answered with its index.
    fn hashes_sql(&self, keys: &[Vec<String>]) -> String {
        let values: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let lits: Vec<String> = k
                    .iter()
                    .zip(&self.types)
                    .map(|(v, ty)| format!("{}::{ty}", quote_literal(v)))
                    .collect();
                format!("({i}, {})", lits.join(", "))
            })
            .collect();
        let names: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}")).collect();
        let on: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{} = v.k{i}", quote_ident(c)))
            .collect();
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("t.{}", quote_ident(c)))
            .collect();
        format!(
            "select v.i, md5(row({})::text) from (values {}) v(i, {}) join {}{} t on {}",
            cols.join(", "),
            values.join(", "),
            names.join(", "),
            if self.only { "only " } else { "" },
            self.table.quoted(),
            on.join(" and ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_rows_are_hashed_by_typed_key() {
        let side = Rows {
            table: &TableName::new("public", "t"),
            key: vec!["id".into(), "n".into()],
            columns: vec!["id".into(), "b".into()],
            only: true,
            types: vec!["uuid".into(), "integer".into()],
        };
        assert_eq!(
            side.hashes_sql(&[vec!["a".into(), "1".into()], vec!["b'c".into(), "2".into()]]),
            "select v.i, md5(row(t.\"id\", t.\"b\")::text) from (values (0, 'a'::uuid, '1'::integer), (1, 'b''c'::uuid, '2'::integer)) v(i, k0, k1) \
             join only \"public\".\"t\" t on t.\"id\" = v.k0 and t.\"n\" = v.k1"
        );
    }
}
