//! Applying a converted schema to the target.
//!
//! Each section runs in one transaction: all of it or none of it. A row in
//! `supamigrate.schema_sections`, written in the same transaction, records what
//! was applied (with the SQL's SHA-256), so a re-run skips a section already
//! applied and refuses to apply a different conversion over it. Nothing here
//! drops anything: no `DROP … CASCADE` on a re-run.

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::convert::Conversion;
use super::sql::excerpt;
use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};

/// Which part of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Types, functions, tables without constraints.
    PreData,
    /// Constraints, indexes, triggers, policies.
    PostData,
}

impl Section {
    /// `pre-data` / `post-data`.
    pub fn name(self) -> &'static str {
        match self {
            Section::PreData => "pre-data",
            Section::PostData => "post-data",
        }
    }
}

/// What applying a section did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// Applied now: this many statements.
    Now(usize),
    /// Applied by an earlier run; nothing done.
    Earlier,
}

pub(crate) const MARKER: &str = "create schema if not exists supamigrate; \
    create table if not exists supamigrate.schema_sections ( \
        section text primary key, \
        sha256 text not null, \
        statements integer not null, \
        applied_at timestamptz not null default now())";

pub(crate) fn digest(statements: &[String]) -> String {
    let mut h = Sha256::new();
    for s in statements {
        h.update(s.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

pub(crate) async fn recorded(client: &Client, section: Section) -> Result<Option<String>> {
    let exists: bool = client
        .query_one(
            "select to_regclass('supamigrate.schema_sections') is not null",
            &[],
        )
        .await
        .map_err(|e| Error::postgres("reading the schema state", e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "select sha256 from supamigrate.schema_sections where section = $1",
            &[&section.name()],
        )
        .await
        .map_err(|e| Error::postgres("reading the schema state", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Applies `section` of `conv` to `target` (which must exist: run provision first).
pub async fn apply(target: &ConnInfo, conv: &Conversion, section: Section) -> Result<Applied> {
    let client = connect(target).await?;
    let statements = match section {
        Section::PreData => &conv.pre_data,
        Section::PostData => &conv.post_data,
    };
    let sha = digest(statements);
    if let Some(done) = recorded(&client, section).await? {
        if done == sha {
            tracing::info!(section = section.name(), "already applied; nothing to do");
            return Ok(Applied::Earlier);
        }
        return Err(Error::invalid_input(format!(
            "the target already has a different {} applied (by an earlier conversion); nothing was changed",
            section.name()
        ))
        .with_hint("convert with the same options as before, or apply to a freshly provisioned database"));
    }
    if section == Section::PostData && recorded(&client, Section::PreData).await?.is_none() {
        return Err(Error::invalid_input(
            "post-data needs pre-data applied first; nothing was changed",
        )
        .with_hint("run `supamigrate schema apply --section pre-data` first (or --section all)"));
    }
    client
        .batch_execute("begin")
        .await
        .map_err(|e| Error::postgres("starting the schema transaction", e))?;
    let result = run(&client, statements, section, &sha).await;
    match result {
        Ok(()) => {
            client
                .batch_execute("commit")
                .await
                .map_err(|e| Error::postgres(format!("committing {}", section.name()), e))?;
            tracing::info!(
                section = section.name(),
                statements = statements.len(),
                "schema applied"
            );
            Ok(Applied::Now(statements.len()))
        }
        Err(e) => {
            let _ = client.batch_execute("rollback").await;
            Err(e)
        }
    }
}

async fn run(client: &Client, statements: &[String], section: Section, sha: &str) -> Result<()> {
    client
        .batch_execute(MARKER)
        .await
        .map_err(|e| Error::postgres("creating the supamigrate schema on the target", e))?;
    for (i, st) in statements.iter().enumerate() {
        client.batch_execute(st).await.map_err(|e| {
            Error::postgres(
                format!(
                    "{} statement {} of {} ({}); rolled back, nothing changed",
                    section.name(),
                    i + 1,
                    statements.len(),
                    excerpt(st)
                ),
                e,
            )
        })?;
    }
    client
        .execute(
            "insert into supamigrate.schema_sections (section, sha256, statements) values ($1, $2, $3)",
            &[&section.name(), &sha, &(statements.len() as i32)],
        )
        .await
        .map_err(|e| Error::postgres("recording the applied section", e))?;
    Ok(())
}
