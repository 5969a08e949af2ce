//! Object stores, behind one trait: S3 (AWS, Supabase's S3 endpoint, any
//! S3-compatible server, in `s3.rs`), a local directory
//! (`<root>/<bucket>/<key>`, the sandbox's Storage backend or a destination
//! for trying things out, in `dir.rs`), and a fault-injecting wrapper for
//! tests (`unreliable.rs`).
//!
//! Objects are read and written in parts of at most `part_size` bytes, so
//! memory stays bounded whatever the object size. Uploads carry SHA-256
//! checksums the server checks (per part for multipart uploads).

mod dir;
mod s3;
mod unreliable;

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

pub use dir::DirStore;
pub use s3::{aws_config, endpoint_with_slash, S3Store};
pub use unreliable::Unreliable;

use crate::error::{Error, ErrorKind, Result};

/// How an object is described on write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
    /// Storage class (S3 only).
    pub storage_class: Option<String>,
}

/// What a store knows about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Size in bytes.
    pub size: u64,
    /// The store's content checksum, in the form
    /// [`ObjectStore::checksum_form`] gives for it; `None` when the store
    /// keeps none.
    pub checksum: Option<String>,
    /// Content-Type, Cache-Control, user metadata.
    pub meta: ObjectMeta,
}

/// A key in a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// The key.
    pub key: String,
    /// Its size.
    pub size: u64,
}

/// SHA-256 of a whole object and of each of its parts.
#[derive(Debug, Clone, Default)]
pub struct Digests {
    whole: Sha256,
    parts: Vec<[u8; 32]>,
    /// Bytes seen.
    pub bytes: u64,
}

impl Digests {
    /// Adds one part.
    pub fn add_part(&mut self, data: &[u8]) {
        self.whole.update(data);
        self.parts.push(Sha256::digest(data).into());
        self.bytes += data.len() as u64;
    }

    /// Hex SHA-256 of the whole object.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.whole.clone().finalize())
    }

    /// S3's form: base64 SHA-256 of a single-part object, or of the parts'
    /// digests with `-N` for a multipart one (`part_size` bytes or more).
    pub fn s3_form(&self, part_size: usize) -> String {
        if self.bytes < part_size as u64 {
            aws_smithy_types::base64::encode(self.whole.clone().finalize())
        } else {
            let mut h = Sha256::new();
            for p in &self.parts {
                h.update(p);
            }
            format!(
                "{}-{}",
                aws_smithy_types::base64::encode(h.finalize()),
                self.parts.len()
            )
        }
    }
}

/// A stored object being read part by part.
pub enum Reader {
    /// A local file.
    File(tokio::fs::File),
    /// An S3 body, with bytes received beyond the last part.
    S3(ByteStream, Vec<u8>),
}

impl Reader {
    /// The next part (at most `max` bytes); empty at the end.
    pub async fn part(&mut self, max: usize) -> Result<Vec<u8>> {
        match self {
            Reader::File(f) => {
                let mut buf = vec![0u8; max];
                let mut n = 0;
                while n < max {
                    let k = f
                        .read(&mut buf[n..])
                        .await
                        .map_err(|e| Error::io("reading an object", e))?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                buf.truncate(n);
                Ok(buf)
            }
            Reader::S3(body, rest) => {
                while rest.len() < max {
                    match body.next().await {
                        Some(Ok(chunk)) => rest.extend_from_slice(&chunk),
                        Some(Err(e)) => {
                            return Err(Error::new(
                                ErrorKind::ObjectStore,
                                format!(
                                    "reading an object body: {}",
                                    crate::connect::error_chain(&e)
                                ),
                            ))
                        }
                        None => break,
                    }
                }
                let take = rest.len().min(max);
                let tail = rest.split_off(take);
                Ok(std::mem::replace(rest, tail))
            }
        }
    }
}

/// What every store does. Implementations must make a `put` appear whole or
/// not at all, and report a missing object as `None`, not as an error.
#[allow(async_fn_in_trait)]
pub trait ObjectStore {
    /// For messages (no secret).
    fn label(&self) -> String;

    /// Creates `bucket` when missing; true when created.
    async fn ensure_bucket(&self, bucket: &str) -> Result<bool>;

    /// The object's size, checksum and metadata; `None` when absent.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>>;

    /// Opens an object for reading; `None` when absent.
    async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>>;

    /// Every key in `bucket` with its size, sorted.
    async fn list(&self, bucket: &str) -> Result<Vec<Listed>>;

    /// Writes an object from `reader` in parts of `part_size` (multipart
    /// above one part), with `meta`; returns the digests of what was sent.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests>;

    /// The checksum this store reports ([`Head::checksum`]) for content with
    /// these digests written in parts of `part_size`.
    fn checksum_form(&self, d: &Digests, part_size: usize) -> String;

    /// Digests of a stored object, read in parts of `part_size`; `None` when absent.
    async fn digest(&self, bucket: &str, key: &str, part_size: usize) -> Result<Option<Digests>> {
        let Some(mut r) = self.open(bucket, key).await? else {
            return Ok(None);
        };
        let mut d = Digests::default();
        loop {
            let part = r.part(part_size).await?;
            if part.is_empty() && d.bytes > 0 {
                break;
            }
            d.add_part(&part);
            if part.len() < part_size {
                break;
            }
        }
        Ok(Some(d))
    }
}

/// Any store: one arm per backend, each a delegation.
pub enum Store {
    /// A local directory.
    Dir(DirStore),
    /// An S3 endpoint.
    S3(S3Store),
    /// A store that fails on purpose (tests).
    Unreliable(Box<Unreliable>),
}

impl Store {
    /// A directory store at `root`.
    pub fn dir(root: impl Into<std::path::PathBuf>) -> Store {
        Store::Dir(DirStore::new(root))
    }
}

impl ObjectStore for Store {
    fn label(&self) -> String {
        match self {
            Store::Dir(s) => s.label(),
            Store::S3(s) => s.label(),
            Store::Unreliable(s) => s.label(),
        }
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        match self {
            Store::Dir(s) => s.ensure_bucket(bucket).await,
            Store::S3(s) => s.ensure_bucket(bucket).await,
            Store::Unreliable(s) => s.ensure_bucket(bucket).await,
        }
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>> {
        match self {
            Store::Dir(s) => s.head(bucket, key).await,
            Store::S3(s) => s.head(bucket, key).await,
            Store::Unreliable(s) => s.head(bucket, key).await,
        }
    }

    async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>> {
        match self {
            Store::Dir(s) => s.open(bucket, key).await,
            Store::S3(s) => s.open(bucket, key).await,
            Store::Unreliable(s) => s.open(bucket, key).await,
        }
    }

    async fn list(&self, bucket: &str) -> Result<Vec<Listed>> {
        match self {
            Store::Dir(s) => s.list(bucket).await,
            Store::S3(s) => s.list(bucket).await,
            Store::Unreliable(s) => s.list(bucket).await,
        }
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        match self {
            Store::Dir(s) => s.put(bucket, key, reader, part_size, meta).await,
            Store::S3(s) => s.put(bucket, key, reader, part_size, meta).await,
            Store::Unreliable(s) => s.put(bucket, key, reader, part_size, meta).await,
        }
    }

    fn checksum_form(&self, d: &Digests, part_size: usize) -> String {
        match self {
            Store::Dir(s) => s.checksum_form(d, part_size),
            Store::S3(s) => s.checksum_form(d, part_size),
            Store::Unreliable(s) => s.checksum_form(d, part_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_checksums_take_the_s3_composite_form() {
        let mut d = Digests::default();
        d.add_part(b"abc");
        assert_eq!(d.sha256_hex(), hex::encode(Sha256::digest(b"abc")));
        d.add_part(b"def");
        let mut h = Sha256::new();
        h.update(Sha256::digest(b"abc"));
        h.update(Sha256::digest(b"def"));
        assert_eq!(
            d.s3_form(3),
            format!("{}-2", aws_smithy_types::base64::encode(h.finalize()))
        );
        assert_eq!(
            d.s3_form(100),
            aws_smithy_types::base64::encode(Sha256::digest(b"abcdef"))
        );
    }
}
