//! The run's journal: which steps finished, with each one's typed outcome,
//! and where the last run stopped. `run.json` in the state folder, written
//! atomically after every step; the report renders from it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apply::Applied;
use crate::backup::FileEntry;
use crate::connect::ConnInfo;
use crate::copy::CopySummary;
use crate::error::{Error, Result};
use crate::preflight::Check;
use crate::provision::ProvisionReport;
use crate::steps::Step;
use crate::storage::StorageSummary;
use crate::verify::VerifyReport;

/// The journal format this version writes and reads.
pub const RUN_FORMAT: u32 = 2;

pub use crate::migration::{Confirmation, RUN_FILE};

/// The plan step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanConfirmed {
    /// The plan's id.
    pub plan_id: String,
    /// How.
    pub confirmed: Confirmation,
}

/// The backup step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOutcome {
    /// The backup folder.
    pub dir: PathBuf,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// Tables whose data it holds.
    pub tables: usize,
    /// What the restore test showed.
    pub restore_test: String,
}

/// The Storage step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StorageOutcome {
    /// Nothing to copy, and why.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Objects copied (and references rewritten).
    Copied(Box<StorageSummary>),
}

/// One step's typed outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", content = "outcome", rename_all = "kebab-case")]
pub enum StepOutcome {
    /// The checks.
    Preflight(Vec<Check>),
    /// The plan, confirmed.
    Plan(PlanConfirmed),
    /// The backup.
    Backup(BackupOutcome),
    /// What provisioning did.
    Provision(ProvisionReport),
    /// Pre-data.
    SchemaPreData(Applied),
    /// The copy.
    UsersAndData(CopySummary),
    /// Storage.
    Storage(StorageOutcome),
    /// Post-data.
    PostData(Applied),
    /// Sequences set.
    Sequences(usize),
    /// Verify.
    Verify(Box<VerifyReport>),
    /// The report's files.
    Report(ReportFiles),
}

/// The report files written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFiles {
    /// `report.html`.
    pub html: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
}

/// One finished step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Which.
    pub step: Step,
    /// Seconds it took (the run that finished it).
    pub seconds: f64,
    /// When it finished (UTC, seconds since the epoch).
    pub finished_at: u64,
    /// What it produced.
    pub outcome: StepOutcome,
}

/// Where a run stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The step.
    pub step: Step,
    /// Why.
    pub message: String,
}

/// The journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// [`RUN_FORMAT`].
    pub format: u32,
    /// Which migration (source and target, without passwords).
    pub source: String,
    /// Target.
    pub target: String,
    /// The plan this run executes, once made.
    pub plan_id: Option<String>,
    /// Finished steps, in order.
    pub done: Vec<StepRecord>,
    /// The last failure.
    pub failed: Option<Stopped>,
}

impl RunState {
    /// The record of `step`, when finished.
    pub fn get(&self, step: Step) -> Option<&StepRecord> {
        self.done.iter().find(|s| s.step == step)
    }

    /// The copy's summary, when done.
    pub fn copy(&self) -> Option<&CopySummary> {
        self.done.iter().find_map(|r| match &r.outcome {
            StepOutcome::UsersAndData(c) => Some(c),
            _ => None,
        })
    }

    /// Verify's report, when done.
    pub fn verify(&self) -> Option<&VerifyReport> {
        self.done.iter().find_map(|r| match &r.outcome {
            StepOutcome::Verify(v) => Some(v.as_ref()),
            _ => None,
        })
    }

    /// The Storage step's outcome, when done.
    pub fn storage(&self) -> Option<&StorageOutcome> {
        self.done.iter().find_map(|r| match &r.outcome {
            StepOutcome::Storage(s) => Some(s),
            _ => None,
        })
    }

    /// Verify ran and everything matched.
    pub fn all_green(&self) -> bool {
        self.verify().is_some_and(|v| v.all_match())
    }

    /// Verify found the data, schema and objects equal (the application's
    /// checks may still have found differences).
    pub fn data_green(&self) -> bool {
        self.verify().is_some_and(|v| v.data_mismatches() == 0)
    }
}

/// Reads the journal of `dir`, checking it belongs to this source and target.
pub fn load(dir: &Path, source: &ConnInfo, target: &ConnInfo) -> Result<RunState> {
    let path = dir.join(RUN_FILE);
    let (s, t) = (source.to_string(), target.to_string());
    let state = match std::fs::read(&path) {
        Ok(bytes) => parse(&bytes, &path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunState {
            format: RUN_FORMAT,
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

fn parse(bytes: &[u8], path: &Path) -> Result<RunState> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        format: u32,
    }
    let not_ours = |e: serde_json::Error| {
        Error::invalid_input(format!(
            "{} is not a supamigrate run state: {e}",
            path.display()
        ))
        .with_hint("move it away to start over")
    };
    let head: Head = serde_json::from_slice(bytes).map_err(not_ours)?;
    if head.format != RUN_FORMAT {
        return Err(Error::invalid_input(format!(
            "{} was written by another supamigrate version (format {}, this one reads {RUN_FORMAT})",
            path.display(),
            head.format
        ))
        .with_hint("finish that migration with the version that started it, or move the folder away to start over"));
    }
    serde_json::from_slice(bytes).map_err(not_ours)
}

/// Writes the journal into `dir`, whole or not at all.
pub fn save(dir: &Path, state: &RunState) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::internal(format!("serializing the run state: {e}")))?;
    crate::fsutil::write_atomically(&dir.join(RUN_FILE), &text, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_and_tell_their_step() {
        let st = RunState {
            format: RUN_FORMAT,
            source: "s".into(),
            target: "t".into(),
            plan_id: Some("abc".into()),
            done: vec![
                StepRecord {
                    step: Step::Sequences,
                    seconds: 0.5,
                    finished_at: 1,
                    outcome: StepOutcome::Sequences(3),
                },
                StepRecord {
                    step: Step::Storage,
                    seconds: 0.1,
                    finished_at: 2,
                    outcome: StepOutcome::Storage(StorageOutcome::Skipped {
                        reason: "no Storage".into(),
                    }),
                },
            ],
            failed: Some(Stopped {
                step: Step::Verify,
                message: "x".into(),
            }),
        };
        let json = serde_json::to_string(&st).unwrap();
        assert!(json.contains(r#""step":"sequences","outcome":3"#), "{json}");
        let back: RunState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
        assert!(!back.all_green());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUN_FILE), r#"{"format": 1, "done": []}"#).unwrap();
        let e = parse(
            &std::fs::read(dir.path().join(RUN_FILE)).unwrap(),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("format 1"),
            "{e}"
        );
    }
}
