//! The sandbox's tests, in one binary: the Supabase-like source and the
//! RDS-like target behave as the real ones do; the fixture is deterministic.

#[path = "cases/sandbox.rs"]
mod sandbox;
