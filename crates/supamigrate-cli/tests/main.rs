//! The command line's tests, in one binary: the real `supamigrate` binary
//! against sandbox clusters, a real S3 server and headless Chromium.

mod common;

#[path = "cases/access.rs"]
mod access;
#[path = "cases/app.rs"]
mod app;
#[path = "cases/apps.rs"]
mod apps;
#[path = "cases/backup.rs"]
mod backup;
#[path = "cases/cli.rs"]
mod cli;
#[path = "cases/extensions.rs"]
mod extensions;
#[path = "cases/failures.rs"]
mod failures;
#[path = "cases/faults.rs"]
mod faults;
#[path = "cases/follow.rs"]
mod follow;
#[path = "cases/kill.rs"]
mod kill;
#[path = "cases/plan.rs"]
mod plan;
#[path = "cases/rds.rs"]
mod rds;
#[path = "cases/reliability.rs"]
mod reliability;
#[path = "cases/run.rs"]
mod run;
#[path = "cases/storage.rs"]
mod storage;
#[path = "cases/verify.rs"]
mod verify;
#[path = "cases/versions.rs"]
mod versions;
