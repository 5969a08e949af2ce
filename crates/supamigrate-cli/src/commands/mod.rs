//! One module per group of commands; `main.rs` parses and dispatches.

pub mod backup;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod storage;
pub mod verify;
