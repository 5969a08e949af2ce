//! The library's integration tests, in one binary: real PostgreSQL clusters
//! on loopback (the sandbox), no mocks.

mod common;

#[path = "cases/copy.rs"]
mod copy;
#[path = "cases/raw.rs"]
mod raw;
#[path = "cases/schema.rs"]
mod schema;
#[path = "cases/secrets.rs"]
mod secrets;
#[path = "cases/storage.rs"]
mod storage;
#[path = "cases/tidy.rs"]
mod tidy;
#[path = "cases/tls.rs"]
mod tls;
