//! The instance's parameter group: TLS forced always, and for the copy
//! window the bulk-load settings AWS's own bulk-loading guide uses, put back
//! to the engine's defaults once the load is done. Each with why, for the
//! plan and the report.

use serde::{Deserialize, Serialize};

/// One parameter set in the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// `rds.force_ssl`.
    pub name: String,
    /// `1`.
    pub value: String,
    /// The unit RDS counts it in, for people.
    pub unit: String,
    /// Why.
    pub why: String,
}

fn setting(name: &str, value: &str, unit: &str, why: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
        unit: unit.into(),
        why: why.into(),
    }
}

/// Kept for the instance's whole life.
pub fn always() -> Vec<Setting> {
    vec![setting(
        "rds.force_ssl",
        "1",
        "",
        "connections without TLS are refused (the written configuration uses sslmode=verify-full)",
    )]
}

/// Set for the copy, reset to the engine's defaults after it. All are
/// dynamic: they take effect without a reboot.
pub fn bulk_load() -> Vec<Setting> {
    vec![
        setting(
            "maintenance_work_mem",
            "1048576",
            "kB (1 GiB)",
            "index and constraint builds after the data sort in memory",
        ),
        setting(
            "max_wal_size",
            "4096",
            "MB (4 GiB)",
            "fewer checkpoints forced by the load's WAL volume",
        ),
        setting(
            "checkpoint_timeout",
            "1800",
            "s (30 min)",
            "fewer timed checkpoints (and full-page writes after each) during the load",
        ),
        setting(
            "autovacuum",
            "0",
            "",
            "no autovacuum competing with the load; the copy analyzes and freezes each table itself",
        ),
    ]
}

/// What the group holds in each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// During the copy: [`always`] and [`bulk_load`].
    Load,
    /// For the application's traffic: [`always`], the bulk-load settings
    /// reset.
    Production,
}
