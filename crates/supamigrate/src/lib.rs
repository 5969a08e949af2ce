//! supamigrate: move a Supabase project to plain PostgreSQL on AWS RDS, and its
//! Storage buckets to S3.
//!
//! The flow is introspect → plan → execute: [`catalog`] reads both sides,
//! [`plan`] turns that inventory into one [`plan::MigrationPlan`] (every
//! decision, with its reason), and the executors ([`provision`], [`apply`],
//! [`copy`], [`storage`], [`verify`], [`backup`]) carry it out over a
//! checkpointed state ([`store`] on the target, [`journal`] for `run`).
//! [`ops`] has one function per command; the `supamigrate` binary is a thin
//! clap front end over it. See `ARCHITECTURE.md` for the map of modules and
//! their invariants.

// Product code handles every failure as an error: no unwrap, expect or
// panic outside tests (docs/errors-and-logging.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod apply;
pub mod backup;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connect;
pub mod copy;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod follow;
pub mod fsutil;
pub mod guard;
pub mod journal;
pub mod migration;
pub mod ops;
pub mod pg;
pub mod plan;
pub mod preflight;
pub mod provision;
pub mod rds;
pub mod report;
pub mod retry;
pub mod rls;
pub mod run;
pub mod secrets;
pub mod sql;
pub mod steps;
pub mod storage;
pub mod store;
pub mod supabase;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
