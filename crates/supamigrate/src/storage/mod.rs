//! Storage (seed Step 4.4): Supabase Storage buckets to S3, each object
//! verified, resumable, and the database's references rewritten.
//!
//! - The inventory is `storage.objects` (bucket, name, size, Content-Type,
//!   Cache-Control, user metadata); the source store is listed too, so
//!   objects missing from either side are reported ([`plan`] is pure).
//! - [`copy`] streams each object in parts (bounded memory) with SHA-256
//!   checksums, several at a time. An object already at the destination with
//!   the same size, checksum and metadata is skipped, so a re-run resumes.
//!   Every upload is checked afterwards (size and checksum).
//! - [`rewrite`] turns the reference columns' Supabase paths and URLs into
//!   the new locations, on the target, in one transaction.

pub mod refs;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::quote_ident;
use crate::error::{Error, Result};
use refs::{RefColumn, Reference};
use store::{ObjectMeta, Store};

/// The seed's bucket prefix: `driver-documents` → `tms-storage-driver-documents`.
pub const DEFAULT_BUCKET_PREFIX: &str = "tms-storage-";
/// The seed's storage class.
pub const DEFAULT_STORAGE_CLASS: &str = "STANDARD_IA";
/// The user-metadata key that carries Supabase's `user_metadata` (as JSON).
pub const USER_METADATA_KEY: &str = "supabase-user-metadata";
/// S3's limit on user metadata (all keys and values).
const METADATA_LIMIT: usize = 2048;

/// A `storage.objects` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredObject {
    /// Bucket id.
    pub bucket: String,
    /// Object name (the key).
    pub name: String,
    /// Size from its metadata.
    pub size: Option<i64>,
    /// `metadata.mimetype`.
    pub mimetype: Option<String>,
    /// `metadata.cacheControl`.
    pub cache_control: Option<String>,
    /// `user_metadata`, as JSON text.
    pub user_metadata: Option<String>,
}

/// A `storage.buckets` row and the policies on `storage.objects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketInfo {
    /// Bucket id.
    pub id: String,
    /// Public bucket.
    pub public: bool,
    /// Size limit in bytes.
    pub file_size_limit: Option<i64>,
    /// Allowed MIME types.
    pub allowed_mime_types: Option<Vec<String>>,
}

/// Reads the inventory from the source database.
pub async fn inventory(client: &Client) -> Result<(Vec<StoredObject>, Vec<BucketInfo>, i64)> {
    let objects = client
        .query(
            "select o.bucket_id::text, o.name::text, (o.metadata->>'size')::bigint, \
                    o.metadata->>'mimetype', o.metadata->>'cacheControl', \
                    nullif(to_jsonb(o)->'user_metadata', 'null'::jsonb)::text \
             from storage.objects o order by 1, 2",
            &[],
        )
        .await
        .map_err(|e| {
            Error::postgres("reading storage.objects", e)
                .with_hint("the source must be a Supabase database (with the storage schema) readable by this role")
        })?
        .iter()
        .map(|r| StoredObject {
            bucket: r.get(0),
            name: r.get(1),
            size: r.get(2),
            mimetype: r.get(3),
            cache_control: r.get(4),
            user_metadata: r.get(5),
        })
        .collect();
    let buckets = client
        .query(
            "select id::text, public, file_size_limit::bigint, allowed_mime_types::text[] \
             from storage.buckets order by 1",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading storage.buckets", e))?
        .iter()
        .map(|r| BucketInfo {
            id: r.get(0),
            public: r.get::<_, Option<bool>>(1).unwrap_or(false),
            file_size_limit: r.get(2),
            allowed_mime_types: r.get(3),
        })
        .collect();
    let policies: i64 = client
        .query_one(
            "select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects'",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("counting storage policies", e))?
        .get(0);
    Ok((objects, buckets, policies))
}

/// How to map and copy.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Destination bucket = prefix + source bucket.
    pub bucket_prefix: String,
    /// S3 storage class.
    pub storage_class: Option<String>,
    /// Part size for streaming and multipart uploads.
    pub part_size: usize,
    /// Objects copied at once.
    pub jobs: usize,
    /// Reference columns to rewrite.
    pub references: Vec<RefColumn>,
    /// New references are `URL/bucket/key` instead of `s3://bucket/key`.
    pub url_prefix: Option<String>,
    /// Progress bar on a terminal.
    pub progress: bool,
}

impl StorageOptions {
    /// The seed's defaults.
    pub fn new() -> StorageOptions {
        StorageOptions {
            bucket_prefix: DEFAULT_BUCKET_PREFIX.into(),
            storage_class: Some(DEFAULT_STORAGE_CLASS.into()),
            part_size: 16 * 1024 * 1024,
            jobs: 4,
            references: refs::tms_defaults(),
            url_prefix: None,
            progress: false,
        }
    }

    /// The destination bucket of `bucket`.
    pub fn dest_bucket(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.bucket_prefix)
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One object to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectPlan {
    /// Source bucket.
    pub bucket: String,
    /// Key (same on both sides).
    pub key: String,
    /// Destination bucket.
    pub dest_bucket: String,
    /// Size from the inventory.
    pub size: Option<i64>,
    /// What the destination object gets.
    pub meta: ObjectMeta,
}

/// What will be copied, and what the source's two views disagree on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoragePlan {
    /// Objects to copy (in `storage.objects` and in the store).
    pub objects: Vec<ObjectPlan>,
    /// In `storage.objects` but not in the store: nothing to copy.
    pub missing_in_store: Vec<(String, String)>,
    /// In the store but not in `storage.objects`: not copied.
    pub not_in_table: Vec<(String, String)>,
    /// Source bucket → destination bucket.
    pub buckets: Vec<(String, String)>,
    /// Bucket settings S3 has no equivalent for, and metadata notes.
    pub notes: Vec<String>,
}

/// JSON with every non-ASCII character escaped, so it is a valid header value.
fn ascii_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Destination metadata for a `storage.objects` row; a note when the user
/// metadata does not fit S3's 2 KiB.
pub fn object_meta(o: &StoredObject, storage_class: Option<&str>) -> (ObjectMeta, Option<String>) {
    let mut meta = ObjectMeta {
        content_type: o.mimetype.clone(),
        cache_control: o.cache_control.clone(),
        metadata: BTreeMap::new(),
        storage_class: storage_class.map(str::to_string),
    };
    let mut note = None;
    if let Some(um) = o.user_metadata.as_deref().filter(|s| *s != "{}") {
        let value = ascii_json(um);
        if value.len() + USER_METADATA_KEY.len() > METADATA_LIMIT {
            note = Some(format!(
                "{}/{}: user metadata is {} bytes, more than S3's 2 KiB; not carried over",
                o.bucket,
                o.name,
                value.len()
            ));
        } else {
            meta.metadata.insert(USER_METADATA_KEY.to_string(), value);
        }
    }
    (meta, note)
}

/// Decides the copy (pure): objects in both views are copied; the others are
/// reported. `listed` is the store's keys per bucket.
pub fn plan(
    objects: &[StoredObject],
    buckets: &[BucketInfo],
    policies: i64,
    listed: &BTreeMap<String, Vec<(String, u64)>>,
    opts: &StorageOptions,
) -> StoragePlan {
    let mut p = StoragePlan::default();
    let in_store: BTreeSet<(&str, &str)> = listed
        .iter()
        .flat_map(|(b, keys)| keys.iter().map(move |(k, _)| (b.as_str(), k.as_str())))
        .collect();
    let in_table: BTreeSet<(&str, &str)> = objects
        .iter()
        .map(|o| (o.bucket.as_str(), o.name.as_str()))
        .collect();
    for o in objects {
        if !in_store.contains(&(o.bucket.as_str(), o.name.as_str())) {
            p.missing_in_store.push((o.bucket.clone(), o.name.clone()));
            continue;
        }
        let (meta, note) = object_meta(o, opts.storage_class.as_deref());
        p.notes.extend(note);
        p.objects.push(ObjectPlan {
            bucket: o.bucket.clone(),
            key: o.name.clone(),
            dest_bucket: opts.dest_bucket(&o.bucket),
            size: o.size,
            meta,
        });
    }
    for (b, k) in &in_store {
        if !in_table.contains(&(*b, *k)) {
            p.not_in_table.push((b.to_string(), k.to_string()));
        }
    }
    let names: BTreeSet<&str> = buckets
        .iter()
        .map(|b| b.id.as_str())
        .chain(objects.iter().map(|o| o.bucket.as_str()))
        .collect();
    p.buckets = names
        .iter()
        .map(|b| (b.to_string(), opts.dest_bucket(b)))
        .collect();
    for b in buckets {
        if b.public {
            p.notes.push(format!(
                "bucket {} is public: S3 buckets are private; grant read access with a bucket policy or serve through CloudFront",
                b.id
            ));
        }
        if let Some(n) = b.file_size_limit {
            p.notes.push(format!(
                "bucket {} limits files to {n} bytes: S3 has no such limit; enforce it in the uploader",
                b.id
            ));
        }
        if let Some(m) = b.allowed_mime_types.as_ref().filter(|m| !m.is_empty()) {
            p.notes.push(format!(
                "bucket {} allows only {}: S3 has no MIME rules; enforce them in the uploader",
                b.id,
                m.join(", ")
            ));
        }
    }
    if policies > 0 {
        p.notes.push(format!(
            "{policies} RLS policies on storage.objects do not carry over: use IAM, bucket policies or presigned URLs"
        ));
    }
    let placeholders = p
        .objects
        .iter()
        .filter(|o| o.key.ends_with(".emptyFolderPlaceholder"))
        .count();
    if placeholders > 0 {
        p.notes.push(format!(
            "{placeholders} .emptyFolderPlaceholder object(s) (the dashboard's empty folders) are copied as they are"
        ));
    }
    p
}

/// Reads the plan's inputs (inventory, the store's listing) and plans.
pub async fn prepare(
    client: &Client,
    source: &Store,
    opts: &StorageOptions,
) -> Result<StoragePlan> {
    let (objects, buckets, policies) = inventory(client).await?;
    let names: BTreeSet<String> = buckets
        .iter()
        .map(|b| b.id.clone())
        .chain(objects.iter().map(|o| o.bucket.clone()))
        .collect();
    let mut listed = BTreeMap::new();
    for b in names {
        let keys = source.list(&b).await?;
        listed.insert(b, keys);
    }
    Ok(plan(&objects, &buckets, policies, &listed, opts))
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Uploaded and verified.
    Copied,
    /// Already there, same size, checksum and metadata.
    Skipped,
    /// Not copied, or not verified: why.
    Failed(String),
}

/// One object's result.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// Destination bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Bytes.
    pub bytes: u64,
    /// Outcome.
    pub outcome: Outcome,
}

/// What the copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Objects planned.
    pub objects: usize,
    /// Uploaded and verified by this run.
    pub copied: usize,
    /// Already at the destination.
    pub skipped: usize,
    /// Failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Bytes uploaded by this run.
    pub bytes_copied: u64,
    /// Buckets created.
    pub buckets_created: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl CopyReport {
    /// Upload throughput.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_copied as f64 / 1e6 / self.seconds.max(1e-3)
    }
}

fn same_meta(found: &ObjectMeta, want: &ObjectMeta) -> bool {
    found.content_type == want.content_type
        && found.cache_control == want.cache_control
        && found.metadata == want.metadata
}

async fn copy_one(
    source: &Store,
    dest: &Store,
    o: &ObjectPlan,
    part: usize,
) -> Result<(u64, Outcome)> {
    if let Some(h) = dest.head(&o.dest_bucket, &o.key).await? {
        if same_meta(&h.meta, &o.meta) {
            let Some(src) = source.digest(&o.bucket, &o.key, part).await? else {
                return Ok((0, Outcome::Failed("missing from the source store".into())));
            };
            let same = match &h.checksum {
                Some(c) => h.size == src.bytes && *c == src.form(dest, part),
                None => dest
                    .digest(&o.dest_bucket, &o.key, part)
                    .await?
                    .is_some_and(|d| d.bytes == src.bytes && d.sha256_hex() == src.sha256_hex()),
            };
            if same {
                return Ok((src.bytes, Outcome::Skipped));
            }
        }
    }
    let Some(mut reader) = source.open(&o.bucket, &o.key).await? else {
        return Ok((0, Outcome::Failed("missing from the source store".into())));
    };
    let sent = dest
        .put(&o.dest_bucket, &o.key, &mut reader, part, &o.meta)
        .await?;
    crate::failpoint::hit("storage-object-uploaded");
    // Verify what the destination holds now.
    let Some(h) = dest.head(&o.dest_bucket, &o.key).await? else {
        return Ok((
            0,
            Outcome::Failed("not found at the destination after upload".into()),
        ));
    };
    if h.size != sent.bytes {
        return Ok((
            0,
            Outcome::Failed(format!(
                "destination has {} bytes, {} were sent",
                h.size, sent.bytes
            )),
        ));
    }
    let ok = match &h.checksum {
        Some(c) => *c == sent.form(dest, part),
        None => dest
            .digest(&o.dest_bucket, &o.key, part)
            .await?
            .is_some_and(|d| d.sha256_hex() == sent.sha256_hex()),
    };
    if !ok {
        return Ok((0, Outcome::Failed("checksum differs after upload".into())));
    }
    Ok((sent.bytes, Outcome::Copied))
}

/// Copies the plan's objects from `source` to `dest`.
pub async fn copy(
    source: &Store,
    dest: &Store,
    plan: &StoragePlan,
    opts: &StorageOptions,
) -> Result<CopyReport> {
    let started = Instant::now();
    let mut report = CopyReport {
        objects: plan.objects.len(),
        ..CopyReport::default()
    };
    for (_, d) in &plan.buckets {
        if dest.ensure_bucket(d).await? {
            report.buckets_created.push(d.clone());
        }
    }
    let total: u64 = plan
        .objects
        .iter()
        .map(|o| o.size.unwrap_or(0).max(0) as u64)
        .sum();
    let bar = if opts.progress {
        indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message("storage");
    let part = opts.part_size.max(5 * 1024 * 1024);
    let mut results = futures_util::stream::iter(plan.objects.iter())
        .map(|o| async move {
            let r = copy_one(source, dest, o, part).await;
            (o, r)
        })
        .buffer_unordered(opts.jobs.max(1));
    while let Some((o, r)) = results.next().await {
        bar.inc(o.size.unwrap_or(0).max(0) as u64);
        let name = format!("{}/{}", o.dest_bucket, o.key);
        match r {
            Ok((bytes, Outcome::Copied)) => {
                report.copied += 1;
                report.bytes_copied += bytes;
            }
            Ok((_, Outcome::Skipped)) => report.skipped += 1,
            Ok((_, Outcome::Failed(why))) => report.failed.push((name, why)),
            Err(e) if e.is_retryable() || e.kind() == crate::error::ErrorKind::ObjectStore => {
                report.failed.push((name, e.to_string()))
            }
            Err(e) => return Err(e),
        }
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One object compared byte for byte.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// `bucket/key` at the destination.
    pub object: String,
    /// What differs.
    pub problem: String,
}

/// Reads every planned object on both sides and compares SHA-256 and size:
/// catches what a checksum kept beside the data cannot (bytes changed at rest).
pub async fn verify(
    source: &Store,
    dest: &Store,
    plan: &StoragePlan,
    opts: &StorageOptions,
) -> Result<Vec<Mismatch>> {
    let part = opts.part_size.max(5 * 1024 * 1024);
    let mut out = Vec::new();
    let mut checks = futures_util::stream::iter(plan.objects.iter())
        .map(|o| async move {
            let s = source.digest(&o.bucket, &o.key, part).await;
            let d = dest.digest(&o.dest_bucket, &o.key, part).await;
            (o, s, d)
        })
        .buffer_unordered(opts.jobs.max(1));
    while let Some((o, s, d)) = checks.next().await {
        let object = format!("{}/{}", o.dest_bucket, o.key);
        // A store that checks its own checksums may refuse to return bytes
        // that no longer match them: that is a finding, not a failure of verify.
        let unreadable = |e: Error, side: &str| -> Result<Option<String>> {
            if e.is_bad_input() {
                return Err(e);
            }
            Ok(Some(format!("cannot be read back from the {side}: {e}")))
        };
        let problem = match (s, d) {
            (Err(e), _) => unreadable(e, "source")?,
            (_, Err(e)) => unreadable(e, "destination")?,
            (Ok(None), _) => Some("missing from the source store".to_string()),
            (_, Ok(None)) => Some("missing at the destination".to_string()),
            (Ok(Some(s)), Ok(Some(d))) if s.bytes != d.bytes => Some(format!(
                "{} bytes at the destination, {} at the source",
                d.bytes, s.bytes
            )),
            (Ok(Some(s)), Ok(Some(d))) if s.sha256_hex() != d.sha256_hex() => {
                Some("content differs (SHA-256)".to_string())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            out.push(Mismatch { object, problem });
        }
    }
    out.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(out)
}

/// One reference rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `schema.table.column`.
    pub column: String,
    /// The row's primary key (as text).
    pub key: String,
    /// Old value (signed URLs' tokens are shown redacted).
    #[serde(serialize_with = "redacted")]
    pub old: String,
    /// New value.
    pub new: String,
}

fn redacted<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&refs::redact_token(v))
}

/// The rewrite of the reference columns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewritePlan {
    /// Every change.
    pub changes: Vec<Change>,
    /// Values that look like Storage references but match no object: (column, key, value).
    pub unresolved: Vec<(String, String, String)>,
    /// Values already pointing at the new location.
    pub already_moved: usize,
    /// Other URLs, left alone.
    pub foreign: usize,
}

/// Plans the rewrite of `opts.references` on `target` (reads only). Only
/// objects the plan copies are new locations; a reference to an object
/// missing from the store stays as it is, reported.
pub async fn plan_rewrite(
    target: &Client,
    plan: &StoragePlan,
    opts: &StorageOptions,
) -> Result<RewritePlan> {
    let known: BTreeSet<(&str, &str)> = plan
        .objects
        .iter()
        .map(|o| (o.bucket.as_str(), o.key.as_str()))
        .collect();
    let moved = |v: &str| {
        v.starts_with(&format!("s3://{}", opts.bucket_prefix))
            || opts.url_prefix.as_deref().is_some_and(|p| v.starts_with(p))
    };
    let mut out = RewritePlan::default();
    for rc in &opts.references {
        let exists: bool = target
            .query_one(
                "select exists (select 1 from information_schema.columns \
                 where table_schema = $1 and table_name = $2 and column_name = $3)",
                &[&rc.table.schema, &rc.table.name, &rc.column],
            )
            .await
            .map_err(|e| Error::postgres("looking up a reference column", e))?
            .get(0);
        if !exists {
            return Err(Error::invalid_input(format!(
                "reference column {}.{} does not exist on the target",
                rc.table, rc.column
            ))
            .with_hint("name the columns that hold Storage paths with --reference SCHEMA.TABLE.COLUMN=BUCKET"));
        }
        let key = crate::catalog::primary_key(target, &rc.table).await?;
        let key_expr = if key.is_empty() {
            "t.ctid::text".to_string()
        } else {
            key.iter()
                .map(|k| format!("t.{}::text", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" || ',' || ")
        };
        let label = format!("{}.{}", rc.table, rc.column);
        let rows = target
            .query(
                &format!(
                    "select {key_expr}, t.{col}::text from {} t where t.{col} is not null order by 1",
                    rc.table.quoted(),
                    col = quote_ident(&rc.column)
                ),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading {label}"), e))?;
        for r in rows {
            let (k, v): (String, String) = (r.get(0), r.get(1));
            match refs::parse(&v, &rc.bucket, &moved) {
                Reference::Moved => out.already_moved += 1,
                Reference::Foreign => out.foreign += 1,
                Reference::Object(candidates) => {
                    match candidates
                        .iter()
                        .find(|(b, key)| known.contains(&(b.as_str(), key.as_str())))
                    {
                        Some((b, obj)) => out.changes.push(Change {
                            column: label.clone(),
                            key: k,
                            new: refs::new_location(
                                &opts.dest_bucket(b),
                                obj,
                                opts.url_prefix.as_deref(),
                            ),
                            old: v,
                        }),
                        None => out
                            .unresolved
                            .push((label.clone(), k, refs::redact_token(&v))),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Applies `plan` on `target` in one transaction; returns rows updated.
pub async fn rewrite(
    target: &mut Client,
    plan: &RewritePlan,
    opts: &StorageOptions,
) -> Result<u64> {
    let tx = target
        .transaction()
        .await
        .map_err(|e| Error::postgres("starting the reference rewrite", e))?;
    let mut n = 0;
    for rc in &opts.references {
        let label = format!("{}.{}", rc.table, rc.column);
        let pairs: BTreeMap<&str, &str> = plan
            .changes
            .iter()
            .filter(|c| c.column == label)
            .map(|c| (c.old.as_str(), c.new.as_str()))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let (old, new): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
        // A path is not an application change: the table's own triggers
        // (updated_at = now() and the like) must not fire. Those enabled are
        // switched off for this transaction only (owner's right; no
        // superuser, no session_replication_role).
        let triggers: Vec<String> = tx
            .query(
                "select tgname::text from pg_trigger \
                 where tgrelid = $1::text::regclass and not tgisinternal and tgenabled = 'O'",
                &[&format!(
                    "{}.{}",
                    quote_ident(&rc.table.schema),
                    quote_ident(&rc.table.name)
                )],
            )
            .await
            .map_err(|e| Error::postgres(format!("reading the triggers of {}", rc.table), e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let toggle = |how: &str| {
            triggers
                .iter()
                .map(|t| {
                    format!(
                        "alter table {} {how} trigger {};",
                        rc.table.quoted(),
                        quote_ident(t)
                    )
                })
                .collect::<String>()
        };
        if !triggers.is_empty() {
            tx.batch_execute(&toggle("disable"))
                .await
                .map_err(|e| Error::postgres(format!("pausing the triggers of {}", rc.table), e))?;
        }
        n += tx
            .execute(
                &format!(
                    "update {} t set {col} = m.new from unnest($1::text[], $2::text[]) as m(old, new) \
                     where t.{col} = m.old",
                    rc.table.quoted(),
                    col = quote_ident(&rc.column)
                ),
                &[&old, &new],
            )
            .await
            .map_err(|e| Error::postgres(format!("rewriting {label}"), e))?;
        if !triggers.is_empty() {
            tx.batch_execute(&toggle("enable")).await.map_err(|e| {
                Error::postgres(format!("restoring the triggers of {}", rc.table), e)
            })?;
        }
    }
    tx.commit()
        .await
        .map_err(|e| Error::postgres("committing the reference rewrite", e))?;
    Ok(n)
}

/// Values in the reference columns that still point at Supabase Storage.
pub async fn remaining_supabase_references(
    target: &Client,
    references: &[RefColumn],
) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for rc in references {
        let label = format!("{}.{}", rc.table, rc.column);
        let n: i64 = target
            .query_one(
                &format!(
                    "select count(*) from {} t where t.{col} is not null and t.{col}::text not like 's3://%' \
                     and (t.{col}::text like '%/storage/v1/%' or t.{col}::text not like '%://%')",
                    rc.table.quoted(),
                    col = quote_ident(&rc.column)
                ),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("checking {label}"), e))?
            .get(0);
        if n > 0 {
            out.push((label, n));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(b: &str, n: &str, um: Option<&str>) -> StoredObject {
        StoredObject {
            bucket: b.into(),
            name: n.into(),
            size: Some(10),
            mimetype: Some("image/png".into()),
            cache_control: Some("max-age=3600".into()),
            user_metadata: um.map(str::to_string),
        }
    }

    #[test]
    fn plan_maps_buckets_and_reports_both_kinds_of_strays() {
        let objects = vec![
            obj(
                "docs",
                "a/b c.png",
                Some(r#"{"original name": "ü.png", "tags": ["x"]}"#),
            ),
            obj("docs", "gone.png", None),
            obj("docs", "f/.emptyFolderPlaceholder", None),
        ];
        let buckets = vec![BucketInfo {
            id: "docs".into(),
            public: true,
            file_size_limit: Some(100),
            allowed_mime_types: Some(vec!["image/png".into()]),
        }];
        let listed: BTreeMap<String, Vec<(String, u64)>> = [(
            "docs".to_string(),
            vec![
                ("a/b c.png".to_string(), 10),
                ("f/.emptyFolderPlaceholder".to_string(), 0),
                ("stray.bin".to_string(), 3),
            ],
        )]
        .into();
        let p = plan(&objects, &buckets, 2, &listed, &StorageOptions::new());
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].dest_bucket, "tms-storage-docs");
        assert_eq!(
            p.objects[0].meta.metadata[USER_METADATA_KEY],
            r#"{"original name": "\u00fc.png", "tags": ["x"]}"#
        );
        assert_eq!(
            p.objects[0].meta.storage_class.as_deref(),
            Some("STANDARD_IA")
        );
        assert_eq!(p.missing_in_store, vec![("docs".into(), "gone.png".into())]);
        assert_eq!(p.not_in_table, vec![("docs".into(), "stray.bin".into())]);
        assert_eq!(p.buckets, vec![("docs".into(), "tms-storage-docs".into())]);
        assert_eq!(p.notes.len(), 5, "{:?}", p.notes);
        let big = obj(
            "docs",
            "x",
            Some(&format!("{{\"k\": \"{}\"}}", "v".repeat(3000))),
        );
        let (m, note) = object_meta(&big, None);
        assert!(m.metadata.is_empty() && note.is_some());
    }
}
