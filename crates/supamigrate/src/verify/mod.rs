//! Comparing a source and a target: content fingerprints of tables and
//! referential integrity.

pub mod fingerprint;
pub mod integrity;
