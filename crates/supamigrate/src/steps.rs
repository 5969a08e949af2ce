//! The steps of a migration, in order: what `run` executes, the plan lists,
//! the report ticks.

use serde::{Deserialize, Serialize};

/// One step of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Every check, and the plan built; nothing written.
    Preflight,
    /// The plan shown and confirmed.
    Plan,
    /// The backup of the source, with a restore test.
    Backup,
    /// Database, extensions, roles on the target.
    Provision,
    /// Types, functions, tables.
    SchemaPreData,
    /// Every table, and `auth.users` into `app_users`.
    UsersAndData,
    /// Storage objects to S3, references rewritten.
    Storage,
    /// Keys, indexes, foreign keys, triggers, policies.
    PostData,
    /// Sequences set to the source's state.
    Sequences,
    /// The target compared with the source.
    Verify,
    /// The HTML and JSON report.
    Report,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 11] = [
        Step::Preflight,
        Step::Plan,
        Step::Backup,
        Step::Provision,
        Step::SchemaPreData,
        Step::UsersAndData,
        Step::Storage,
        Step::PostData,
        Step::Sequences,
        Step::Verify,
        Step::Report,
    ];

    /// Its name (`users-and-data`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Plan => "plan",
            Step::Backup => "backup",
            Step::Provision => "provision",
            Step::SchemaPreData => "schema-pre-data",
            Step::UsersAndData => "users-and-data",
            Step::Storage => "storage",
            Step::PostData => "post-data",
            Step::Sequences => "sequences",
            Step::Verify => "verify",
            Step::Report => "report",
        }
    }

    /// Whether it writes to the target (the plan must be confirmed first).
    pub fn writes_target(self) -> bool {
        !matches!(
            self,
            Step::Preflight | Step::Plan | Step::Backup | Step::Verify | Step::Report
        )
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for s in Step::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
            assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), s);
        }
        let confirm_at = Step::ALL.iter().position(|s| *s == Step::Plan).unwrap();
        assert!(Step::ALL[..confirm_at].iter().all(|s| !s.writes_target()));
    }
}
