//! A store that fails on purpose, for tests (neon's `UnreliableWrapper`):
//! every `fail_every`-th operation fails with a retryable connection error
//! before reaching the wrapped store, so callers' handling of failed
//! uploads and reads is exercised against real stores.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Digests, Head, Listed, ObjectMeta, ObjectStore, Reader, Store};
use crate::error::{Error, ErrorKind, Result};

/// The wrapper.
pub struct Unreliable {
    inner: Box<Store>,
    fail_every: u64,
    calls: AtomicU64,
    failed: AtomicU64,
}

impl Unreliable {
    /// Wraps `inner`; every `fail_every`-th operation (1-based) fails.
    pub fn new(inner: Store, fail_every: u64) -> Unreliable {
        Unreliable {
            inner: Box::new(inner),
            fail_every: fail_every.max(1),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// How many operations it failed.
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    fn attempt(&self, op: &str, bucket: &str, key: &str) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.fail_every) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(Error::new(
                ErrorKind::Connection,
                format!("{op} {bucket}/{key}: injected fault (call {n})"),
            ));
        }
        Ok(())
    }
}

impl ObjectStore for Unreliable {
    fn label(&self) -> String {
        format!("{} (unreliable)", self.inner.label())
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        Box::pin(self.inner.ensure_bucket(bucket)).await
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>> {
        self.attempt("HEAD", bucket, key)?;
        Box::pin(self.inner.head(bucket, key)).await
    }

    async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>> {
        self.attempt("GET", bucket, key)?;
        Box::pin(self.inner.open(bucket, key)).await
    }

    async fn list(&self, bucket: &str) -> Result<Vec<Listed>> {
        Box::pin(self.inner.list(bucket)).await
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        self.attempt("PUT", bucket, key)?;
        Box::pin(self.inner.put(bucket, key, reader, part_size, meta)).await
    }

    fn checksum_form(&self, d: &Digests, part_size: usize) -> String {
        self.inner.checksum_form(d, part_size)
    }
}
