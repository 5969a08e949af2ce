//! The one-command migration: preflight → backup → provision → schema
//! pre-data → users and data → storage → post-data → sequences → verify →
//! report, over a state file, so a re-run after a failure or a kill resumes at
//! the first step that did not finish.
//!
//! Each step is idempotent on its own (provision, apply and post-data record
//! what they did on the target, the copy keeps per-task checkpoints, storage
//! skips objects already there, verify only reads); the state file adds the
//! order and each step's result for the report. It is written atomically after
//! every step.

pub mod preflight;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{export::ExportOptions, ConvertOptions};

/// The steps, in order.
pub const STEPS: &[&str] = &[
    "preflight",
    "backup",
    "provision",
    "schema-pre-data",
    "users-and-data",
    "storage",
    "post-data",
    "sequences",
    "verify",
    "report",
];

/// One step's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Seconds it took (the run that finished it).
    pub seconds: f64,
    /// When it finished (UTC, seconds since the epoch).
    pub finished_at: u64,
    /// What it produced, for the report.
    pub detail: Value,
}

/// The state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Which migration (source and target, without passwords).
    pub source: String,
    /// Target.
    pub target: String,
    /// Finished steps, in order.
    pub done: Vec<StepRecord>,
    /// The last failure: (step, message).
    pub failed: Option<(String, String)>,
}

impl RunState {
    /// The record of `step`, when finished.
    pub fn get(&self, step: &str) -> Option<&StepRecord> {
        self.done.iter().find(|s| s.name == step)
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `run.json` and secrets live.
    pub state_dir: PathBuf,
    /// Backups go here.
    pub backup_dir: PathBuf,
    /// The HTML and JSON report go here.
    pub report_dir: PathBuf,
    /// Which schemas.
    pub export: ExportOptions,
    /// Conversion options.
    pub convert: ConvertOptions,
    /// Storage options.
    pub storage: crate::storage::StorageOptions,
    /// Storage source and destination; `None` when not configured, which
    /// is fine only for a project without Storage objects.
    pub storage_stores: Option<(crate::storage::store::Store, crate::storage::store::Store)>,
    /// Why the stores are not configured (for the error when they are needed).
    pub storage_missing: Option<String>,
    /// Workers for the copy and verify.
    pub jobs: usize,
    /// Progress bars.
    pub progress: bool,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the state of `dir`, checking it belongs to this source and target.
pub fn load_state(dir: &Path, source: &ConnInfo, target: &ConnInfo) -> Result<RunState> {
    let path = dir.join("run.json");
    let (s, t) = (source.to_string(), target.to_string());
    let state = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<RunState>(&bytes).map_err(|e| {
            Error::invalid_input(format!(
                "{} is not a supamigrate run state: {e}",
                path.display()
            ))
            .with_hint("move it away to start over")
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunState {
            source: s.clone(),
            target: t.clone(),
            ..RunState::default()
        },
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if state.source != s || state.target != t {
        return Err(Error::invalid_input(format!(
            "{} records a migration from {} to {}, not from {s} to {t}; nothing was changed",
            path.display(),
            state.source,
            state.target
        ))
        .with_hint("use another --state-dir for another migration"));
    }
    Ok(state)
}

fn save_state(dir: &Path, state: &RunState) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::new(ErrorKind::Io, "writing the run state").with_source(e))?;
    crate::fsutil::write_atomically(&dir.join("run.json"), &text, 0o600)
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What `run` reports back.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The final state.
    pub state: RunState,
    /// Steps this invocation did.
    pub done_now: Vec<String>,
    /// The HTML report.
    pub report_html: PathBuf,
    /// Verify matched everything.
    pub all_green: bool,
}

/// Runs (or resumes) the migration. `on_step` is told each step as it starts
/// (name, whether it was done before).
pub async fn run(
    source: &ConnInfo,
    target: &ConnInfo,
    opts: &RunOptions,
    on_step: &dyn Fn(&str, bool),
) -> Result<RunOutcome> {
    let mut state = load_state(&opts.state_dir, source, target)?;
    let mut done_now = Vec::new();
    // The conversion is needed by several steps; it is cheap and pure
    // given the source, so it is made again on every run.
    let mut conversion: Option<(
        crate::schema::export::SchemaSource,
        crate::schema::Conversion,
    )> = None;
    for &step in STEPS {
        if state.get(step).is_some() {
            on_step(step, true);
            continue;
        }
        on_step(step, false);
        let started = Instant::now();
        let result = do_step(step, source, target, opts, &state, &mut conversion).await;
        match result {
            Ok(detail) => {
                state.done.push(StepRecord {
                    name: step.to_string(),
                    seconds: started.elapsed().as_secs_f64(),
                    finished_at: now_secs(),
                    detail,
                });
                state.failed = None;
                save_state(&opts.state_dir, &state)?;
                done_now.push(step.to_string());
                crate::failpoint::hit("run-step-done");
            }
            Err(e) => {
                state.failed = Some((step.to_string(), e.to_string()));
                save_state(&opts.state_dir, &state)?;
                // The report shows where the run stopped, and why.
                if let Err(re) = crate::report::write(&opts.report_dir, &state) {
                    tracing::warn!(error = %re, "could not write the report of the stopped run");
                }
                return Err(e);
            }
        }
    }
    let all_green = state
        .get("verify")
        .and_then(|r| r.detail.get("mismatches"))
        .and_then(Value::as_u64)
        == Some(0);
    Ok(RunOutcome {
        state,
        done_now,
        report_html: opts.report_dir.join("report.html"),
        all_green,
    })
}

async fn converted<'a>(
    source: &ConnInfo,
    target: &ConnInfo,
    opts: &RunOptions,
    cache: &'a mut Option<(
        crate::schema::export::SchemaSource,
        crate::schema::Conversion,
    )>,
) -> Result<&'a (
    crate::schema::export::SchemaSource,
    crate::schema::Conversion,
)> {
    if cache.is_none() {
        *cache = Some(
            crate::schema::export_and_convert(
                source,
                Some(target),
                &opts.export,
                opts.convert.clone(),
            )
            .await?,
        );
    }
    cache
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::Io, "conversion missing"))
}

async fn do_step(
    step: &str,
    source: &ConnInfo,
    target: &ConnInfo,
    opts: &RunOptions,
    state: &RunState,
    cache: &mut Option<(
        crate::schema::export::SchemaSource,
        crate::schema::Conversion,
    )>,
) -> Result<Value> {
    match step {
        "preflight" => {
            let checks = preflight::run(
                source,
                target,
                &opts.backup_dir,
                &opts.export,
                &opts.convert,
            )
            .await?;
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| c.status == preflight::Status::Fail)
                .map(|c| match &c.hint {
                    Some(h) => format!("{}: {} (fix: {h})", c.name, c.detail),
                    None => format!("{}: {}", c.name, c.detail),
                })
                .collect();
            if !failed.is_empty() {
                return Err(Error::invalid_input(format!(
                    "preflight failed, nothing was changed: {}",
                    failed.join("; ")
                ))
                .with_hint("fix what `supamigrate preflight` marks ✗, then run again: finished steps are kept"));
            }
            Ok(json(&checks))
        }
        "backup" => {
            let b = crate::backup::create(
                source,
                &crate::backup::BackupOptions {
                    out: opts.backup_dir.clone(),
                    schemas: opts.export.clone(),
                },
            )
            .await?;
            // The checklist's "Test backup restoration", on the target server.
            let check =
                crate::backup::restore::verify_backup(&b.dir, &target.with_dbname("postgres"))
                    .await?;
            if !check.ok() {
                return Err(Error::new(
                    ErrorKind::Tool,
                    format!(
                        "the backup in {} does not restore to its manifest: {}",
                        b.dir.display(),
                        crate::backup::restore::summarize(&check.tables)
                            .into_iter()
                            .map(|(t, why)| format!("{t} ({why})"))
                            .chain(check.file_problems.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Ok(serde_json::json!({
                "dir": b.dir, "files": b.manifest.files, "tables": b.manifest.tables.len(),
                "restore_test": "every table restored equal to the manifest",
            }))
        }
        "provision" => {
            let (src, conv) = converted(source, target, opts, cache).await?;
            let p = crate::provision::ProvisionOptions::for_conversion(
                &opts.convert.app_role,
                &opts.state_dir,
                src,
                conv,
            );
            let r = crate::provision::provision(target, &p).await?;
            Ok(json(&r))
        }
        "schema-pre-data" => {
            let (_, conv) = converted(source, target, opts, cache).await?;
            let a =
                crate::schema::apply::apply(target, conv, crate::schema::apply::Section::PreData)
                    .await?;
            Ok(serde_json::json!({"applied": a, "conversion": conv.report}))
        }
        "users-and-data" => {
            let (src, _) = converted(source, target, opts, cache).await?;
            let summary = crate::copy::copy(
                source,
                target,
                &crate::copy::CopyOptions {
                    schemas: src.schemas.clone(),
                    jobs: opts.jobs,
                    plan: crate::copy::PlanOptions::default(),
                    users: src.auth_users_columns.is_some(),
                    progress: opts.progress,
                    post_data: None,
                },
            )
            .await?;
            Ok(json(&summary))
        }
        "storage" => {
            let client = connect(source).await?;
            let has_storage: bool = client
                .query_one("select to_regclass('storage.objects') is not null", &[])
                .await
                .map_err(|e| Error::postgres("looking for storage.objects", e))?
                .get(0);
            if !has_storage {
                return Ok(serde_json::json!({"skipped": "the source has no storage.objects"}));
            }
            let Some((from, to)) = &opts.storage_stores else {
                let objects: i64 = client
                    .query_one("select count(*) from storage.objects", &[])
                    .await
                    .map_err(|e| Error::postgres("counting storage.objects", e))?
                    .get(0);
                if objects == 0 {
                    return Ok(serde_json::json!({"skipped": "storage.objects is empty"}));
                }
                return Err(Error::invalid_input(format!(
                    "the project has {objects} Storage objects, but no Storage source or destination is configured: {}",
                    opts.storage_missing.as_deref().unwrap_or("")
                ))
                .with_hint("give --source-dir or the SUPABASE_S3_* keys, and AWS_REGION (or --dest-dir); finished steps are kept"));
            };
            let plan = crate::storage::prepare(&client, from, &opts.storage).await?;
            let report = crate::storage::copy(from, to, &plan, &opts.storage).await?;
            if !report.failed.is_empty() {
                return Err(Error::new(
                    ErrorKind::ObjectStore,
                    format!(
                        "{} object(s) failed, first: {} ({}); run again to resume",
                        report.failed.len(),
                        report.failed[0].0,
                        report.failed[0].1
                    ),
                ));
            }
            let mut tgt = connect(target).await?;
            let r = crate::storage::plan_rewrite(&tgt, &plan, &opts.storage).await?;
            let rewritten = crate::storage::rewrite(&mut tgt, &r, &opts.storage).await?;
            Ok(serde_json::json!({
                "copy": report, "mb_per_s": report.mb_per_s(), "rewritten": rewritten,
                "unresolved": r.unresolved, "missing_in_store": plan.missing_in_store,
                "not_in_table": plan.not_in_table, "notes": plan.notes,
            }))
        }
        "post-data" => {
            let (_, conv) = converted(source, target, opts, cache).await?;
            let a = crate::copy::post_data::build(target, &conv.post_data, opts.jobs).await?;
            Ok(serde_json::json!({"applied": a}))
        }
        "sequences" => {
            let (src, _) = converted(source, target, opts, cache).await?;
            let n = crate::copy::sync_sequences(source, target, &src.schemas).await?;
            Ok(serde_json::json!({"sequences": n}))
        }
        "verify" => {
            let (src, conv) = converted(source, target, opts, cache).await?;
            let mut v = crate::verify::VerifyOptions::for_conversion(src, conv);
            v.jobs = opts.jobs;
            v.progress = opts.progress;
            if state
                .get("storage")
                .is_some_and(|s| s.detail.get("skipped").is_none())
            {
                v.rewritten = opts.storage.references.clone();
                v.rewrite_prefixes = (
                    opts.storage.bucket_prefix.clone(),
                    opts.storage.url_prefix.clone(),
                );
            }
            let report = crate::verify::verify(source, target, &v).await?;
            let n = report.mismatches();
            let mut detail = json(&report);
            if let Value::Object(m) = &mut detail {
                m.insert("mismatches".into(), Value::from(n));
                m.insert(
                    "text".into(),
                    Value::from(crate::verify::render::text(&report)),
                );
            }
            if n > 0 {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!(
                        "verify found {n} mismatch(es):\n{}",
                        crate::verify::render::text(&report)
                    ),
                )
                .with_hint("fix the cause and run again: the finished steps are kept"));
            }
            Ok(detail)
        }
        "report" => {
            let files = crate::report::write(&opts.report_dir, state)?;
            Ok(json(&files))
        }
        other => Err(Error::invalid_input(format!("unknown step {other}"))),
    }
}
