//! supamigrate: move a Supabase project to plain PostgreSQL on AWS RDS, and its
//! Storage buckets to S3.
//!
//! The library holds all logic; the `supamigrate` binary is a thin clap front
//! end. See `ARCHITECTURE.md` for the map of modules and their invariants.

pub mod backup;
pub mod catalog;
pub mod config;
pub mod connect;
pub mod copy;
pub mod error;
pub mod failpoint;
pub mod fixture;
pub mod fsutil;
pub mod provision;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod storage;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
