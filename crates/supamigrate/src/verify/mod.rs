//! Comparing a source and a target. For now: content fingerprints of tables.

pub mod fingerprint;
