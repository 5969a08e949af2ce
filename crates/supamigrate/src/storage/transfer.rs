//! Moving objects: the copy (skip what is provably there, upload the rest,
//! check every upload) and the byte-for-byte verify.

use std::time::Instant;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::store::{ObjectMeta, ObjectStore, Store};
use super::{ObjectPlan, ObjectsPlan};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Bar, SharedObserver, Unit};
use crate::failpoint;

/// How objects move.
#[derive(Debug, Clone, Copy)]
pub struct TransferOptions {
    /// Part size for streaming and multipart uploads (at least 5 MiB).
    pub part_size: usize,
    /// Objects copied at once.
    pub jobs: usize,
    /// Objects `storage.objects` lists but the store lacks are reported, not
    /// an error (`--allow-missing-objects`).
    pub allow_missing_objects: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            part_size: 16 * 1024 * 1024,
            jobs: 8,
            allow_missing_objects: false,
        }
    }
}

impl TransferOptions {
    fn part(&self) -> usize {
        self.part_size.max(5 * 1024 * 1024)
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Copied,
    Skipped,
    Failed(String),
}

/// An object that did not copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedObject {
    /// `bucket/key` at the destination.
    pub object: String,
    /// Why.
    pub reason: String,
}

/// What the copy did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyReport {
    /// Objects planned.
    pub objects: usize,
    /// Uploaded and verified by this run.
    pub copied: usize,
    /// Already at the destination.
    pub skipped: usize,
    /// Failed, with the reason.
    pub failed: Vec<FailedObject>,
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

/// Whether `dest` already holds `o` with the source's bytes and metadata.
async fn already_there(
    source: &Store,
    dest: &Store,
    o: &ObjectPlan,
    part: usize,
) -> Result<Option<u64>> {
    let Some(h) = dest.head(&o.dest_bucket, &o.key).await? else {
        return Ok(None);
    };
    if !same_meta(&h.meta, &o.meta) {
        return Ok(None);
    }
    let Some(src) = source.digest(&o.bucket, &o.key, part).await? else {
        return Ok(None);
    };
    if h.size != src.bytes {
        return Ok(None);
    }
    // The destination's bytes are read back and hashed: a store's ETag is
    // what it recorded at upload, and says nothing of bytes changed at rest
    // since. Only a provable match is skipped; anything else is copied again.
    let found = match dest.digest(&o.dest_bucket, &o.key, part).await {
        Ok(d) => d,
        // Bytes the store itself finds damaged (a body checksum mismatch):
        // copied again.
        Err(e) if !e.is_retryable() => {
            tracing::warn!(object = %format!("{}/{}", o.dest_bucket, o.key), error = %e, "the destination's copy cannot be read back; copying it again");
            None
        }
        Err(e) => return Err(e),
    };
    let same = found.is_some_and(|d| d.bytes == src.bytes && d.sha256_hex() == src.sha256_hex());
    Ok(same.then_some(src.bytes))
}

async fn copy_one(
    source: &Store,
    dest: &Store,
    o: &ObjectPlan,
    part: usize,
) -> Result<(u64, Outcome)> {
    if let Some(bytes) = already_there(source, dest, o, part).await? {
        return Ok((bytes, Outcome::Skipped));
    }
    let Some(mut reader) = source.open(&o.bucket, &o.key).await? else {
        return Ok((0, Outcome::Failed("missing from the source store".into())));
    };
    let sent = dest
        .put(&o.dest_bucket, &o.key, &mut reader, part, &o.meta)
        .await?;
    failpoint::hit(failpoint::STORAGE_OBJECT_UPLOADED);
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
    // The store's checksum when it is in the form we expect; otherwise (none,
    // or a store that composes multipart checksums its own way) the bytes
    // are read back and hashed.
    let ok = match &h.checksum {
        Some(c) if *c == dest.checksum_form(&sent, part) => true,
        _ => dest
            .digest(&o.dest_bucket, &o.key, part)
            .await?
            .is_some_and(|d| d.bytes == sent.bytes && d.sha256_hex() == sent.sha256_hex()),
    };
    if !ok {
        return Ok((0, Outcome::Failed("checksum differs after upload".into())));
    }
    Ok((sent.bytes, Outcome::Copied))
}

/// Copies the planned objects from `source` to `dest`. An object that fails
/// is reported and the rest go on; a re-run copies what failed.
pub async fn copy(
    source: &Store,
    dest: &Store,
    plan: &ObjectsPlan,
    opts: TransferOptions,
    observer: &SharedObserver,
) -> Result<CopyReport> {
    let started = Instant::now();
    let mut report = CopyReport {
        objects: plan.objects.len(),
        ..CopyReport::default()
    };
    for d in &plan.dest_buckets {
        if dest.ensure_bucket(d).await? {
            report.buckets_created.push(d.to_string());
        }
    }
    let bar = Bar::new(observer, "storage", plan.bytes().max(0) as u64, Unit::Bytes);
    let part = opts.part();
    let mut results = futures_util::stream::iter(plan.objects.iter())
        .map(|o| async move { (o, copy_one(source, dest, o, part).await) })
        .buffer_unordered(opts.jobs.max(1));
    while let Some((o, r)) = results.next().await {
        bar.inc(o.size.unwrap_or(0).max(0) as u64);
        let object = format!("{}/{}", o.dest_bucket, o.key);
        match r {
            Ok((bytes, Outcome::Copied)) => {
                report.copied += 1;
                report.bytes_copied += bytes;
            }
            Ok((_, Outcome::Skipped)) => report.skipped += 1,
            Ok((_, Outcome::Failed(reason))) => report.failed.push(FailedObject { object, reason }),
            Err(e) if e.is_retryable() || e.kind() == ErrorKind::ObjectStore => {
                report.failed.push(FailedObject {
                    object,
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One object compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    plan: &ObjectsPlan,
    opts: TransferOptions,
) -> Result<Vec<Mismatch>> {
    let part = opts.part();
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
