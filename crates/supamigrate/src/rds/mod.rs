//! The RDS instance (runbook Step 2.1) through the AWS API: what
//! `rds plan` shows and `rds create` does, as a pure function from what AWS
//! and the source say ([`RdsFacts`]) to an [`RdsPlan`]: every decision with
//! its reason and every API call, in order. [`api`] talks to AWS and carries
//! the plan out; it changes nothing the plan does not list.

pub mod api;
pub mod files;
pub mod settings;
pub mod versions;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use settings::{Phase, Setting};
use versions::EngineVersion;

/// The value that keeps RDS from enrolling the instance in paid Extended
/// Support when its major's standard support ends.
pub const EXTENDED_SUPPORT_DISABLED: &str = "open-source-rds-extended-support-disabled";
/// Its opposite, asked for with `--extended-support`.
pub const EXTENDED_SUPPORT_ENABLED: &str = "open-source-rds-extended-support";
/// gp3's smallest size, GiB.
pub const MIN_STORAGE_GIB: u32 = 20;
/// RDS's largest gp3 volume, GiB.
pub const MAX_STORAGE_GIB: u32 = 65_536;
/// The size when nothing says otherwise (the runbook's), GiB.
pub const DEFAULT_STORAGE_GIB: u32 = 100;

/// Where the master password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordMode {
    /// RDS makes it and keeps it in AWS Secrets Manager
    /// (`ManageMasterUserPassword`): no one types or sees it.
    Managed,
    /// supamigrate generates it into this owner-only file (mode 0600).
    File(PathBuf),
}

/// What the user asked for (`rds plan|create` options).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRequest {
    /// `DBInstanceIdentifier`.
    pub id: String,
    /// `db.t3.medium`.
    pub class: String,
    /// A major or a full version; `None`: the newest major offered.
    pub engine_version: Option<String>,
    /// GiB; `None`: from the source's size.
    pub storage_gib: Option<u32>,
    /// Storage autoscaling's ceiling, GiB.
    pub max_storage_gib: Option<u32>,
    /// A standby in a second availability zone.
    pub multi_az: bool,
    /// Days of automated backups.
    pub backup_retention_days: u32,
    /// `DBSubnetGroupName`; `None`: the default VPC's.
    pub subnet_group: Option<String>,
    /// `VpcSecurityGroupIds`.
    pub security_groups: Vec<String>,
    /// Reachable from the internet.
    pub publicly_accessible: bool,
    /// Let RDS enrol the instance in paid Extended Support.
    pub extended_support: bool,
    /// Refuse deletes until turned off.
    pub deletion_protection: bool,
    /// The master user.
    pub master_user: String,
    /// The database the migration goes into (created with the instance
    /// unless it is `postgres`, which RDS always has).
    pub database: String,
    /// The master password.
    pub password: PasswordMode,
    /// Set the bulk-load parameters for the copy.
    pub bulk_load: bool,
    /// Tags (`ManagedBy=supamigrate` is always added).
    pub tags: Vec<(String, String)>,
}

impl InstanceRequest {
    /// The request with the runbook's values where they still hold.
    pub fn new(id: &str) -> InstanceRequest {
        InstanceRequest {
            id: id.to_string(),
            class: "db.t3.medium".into(),
            engine_version: None,
            storage_gib: None,
            max_storage_gib: None,
            multi_az: true,
            backup_retention_days: 7,
            subnet_group: None,
            security_groups: Vec::new(),
            publicly_accessible: false,
            extended_support: false,
            deletion_protection: true,
            master_user: "postgres".into(),
            database: "postgres".into(),
            password: PasswordMode::Managed,
            bulk_load: true,
            tags: Vec::new(),
        }
    }
}

/// An instance as `DescribeDBInstances` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFacts {
    /// Identifier.
    pub id: String,
    /// `available`, `creating`, `deleting`…
    pub status: String,
    /// Class.
    pub class: String,
    /// Full engine version.
    pub engine_version: String,
    /// GiB.
    pub storage_gib: u32,
    /// `gp3`.
    pub storage_type: String,
    /// Multi-AZ.
    pub multi_az: bool,
    /// Storage encrypted.
    pub encrypted: bool,
    /// Publicly accessible.
    pub public: bool,
    /// Backup retention, days.
    pub backup_retention_days: u32,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Its parameter group.
    pub parameter_group: Option<String>,
    /// Master user.
    pub master_user: String,
    /// The database created with it.
    pub database: Option<String>,
    /// Endpoint host and port, once it has one.
    pub endpoint: Option<(String, u16)>,
    /// The Secrets Manager secret holding a managed master password.
    pub secret_arn: Option<String>,
    /// `EngineLifecycleSupport`.
    pub lifecycle: Option<String>,
}

/// The source's size and version, when a source is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFacts {
    /// Major version.
    pub major: u32,
    /// `pg_database_size`, bytes.
    pub database_bytes: u64,
}

/// What the plan is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdsFacts {
    /// `DescribeDBEngineVersions` for postgres.
    pub versions: Vec<EngineVersion>,
    /// The instance with the requested identifier, if it exists.
    pub instance: Option<InstanceFacts>,
    /// The family of the parameter group supamigrate would use, if it exists.
    pub parameter_group_family: Option<String>,
    /// The source, if configured.
    pub source: Option<SourceFacts>,
}

/// One decision, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdsDecision {
    /// What was decided (`engine version`).
    pub subject: String,
    /// The choice (`18.1`).
    pub choice: String,
    /// Why.
    pub why: String,
}

/// What `CreateDBInstance` is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Identifier.
    pub id: String,
    /// Class.
    pub class: String,
    /// Full engine version.
    pub engine_version: String,
    /// GiB.
    pub storage_gib: u32,
    /// Autoscaling ceiling, GiB.
    pub max_storage_gib: Option<u32>,
    /// Multi-AZ.
    pub multi_az: bool,
    /// Backup retention, days.
    pub backup_retention_days: u32,
    /// Subnet group.
    pub subnet_group: Option<String>,
    /// Security groups.
    pub security_groups: Vec<String>,
    /// Publicly accessible.
    pub publicly_accessible: bool,
    /// `EngineLifecycleSupport`.
    pub lifecycle: String,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Master user.
    pub master_user: String,
    /// `DBName`, unless `postgres`.
    pub database: Option<String>,
    /// Parameter group.
    pub parameter_group: String,
    /// Master password.
    pub password: PasswordMode,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

/// One AWS API call the plan makes, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum Call {
    /// `CreateDBParameterGroup`.
    CreateDBParameterGroup {
        /// Name.
        name: String,
        /// Family (`postgres18`).
        family: String,
    },
    /// `ModifyDBParameterGroup`.
    ModifyDBParameterGroup {
        /// Name.
        name: String,
        /// What is set.
        settings: Vec<Setting>,
    },
    /// `ResetDBParameterGroup` of some parameters (to the engine's defaults).
    ResetDBParameterGroup {
        /// Name.
        name: String,
        /// Parameter names.
        parameters: Vec<String>,
    },
    /// `CreateDBInstance`.
    CreateDBInstance(Box<InstanceSpec>),
    /// `DescribeDBInstances` until `available`.
    WaitAvailable {
        /// Identifier.
        id: String,
    },
}

impl Call {
    /// The API action's name.
    pub fn action(&self) -> &'static str {
        match self {
            Call::CreateDBParameterGroup { .. } => "CreateDBParameterGroup",
            Call::ModifyDBParameterGroup { .. } => "ModifyDBParameterGroup",
            Call::ResetDBParameterGroup { .. } => "ResetDBParameterGroup",
            Call::CreateDBInstance(_) => "CreateDBInstance",
            Call::WaitAvailable { .. } => "DescribeDBInstances (until available)",
        }
    }

    /// The call's parameters as the API names them, for people: a password
    /// is never among them, only where it comes from.
    pub fn params(&self) -> Vec<(String, String)> {
        let p = |k: &str, v: &dyn ToString| (k.to_string(), v.to_string());
        match self {
            Call::CreateDBParameterGroup { name, family } => vec![
                p("DBParameterGroupName", name),
                p("DBParameterGroupFamily", family),
            ],
            Call::ModifyDBParameterGroup { name, settings } => {
                let mut v = vec![p("DBParameterGroupName", name)];
                v.extend(settings.iter().map(|s| {
                    let unit = if s.unit.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", s.unit)
                    };
                    (
                        s.name.clone(),
                        format!("{}{unit} (immediate): {}", s.value, s.why),
                    )
                }));
                v
            }
            Call::ResetDBParameterGroup { name, parameters } => vec![
                p("DBParameterGroupName", name),
                p("Parameters", &parameters.join(", ")),
            ],
            Call::CreateDBInstance(s) => instance_params(s),
            Call::WaitAvailable { id } => vec![p("DBInstanceIdentifier", id)],
        }
    }
}

fn instance_params(s: &InstanceSpec) -> Vec<(String, String)> {
    let p = |k: &str, v: &dyn ToString| (k.to_string(), v.to_string());
    let mut v = vec![
        p("DBInstanceIdentifier", &s.id),
        p("DBInstanceClass", &s.class),
        p("Engine", &"postgres"),
        p("EngineVersion", &s.engine_version),
        p("EngineLifecycleSupport", &s.lifecycle),
        p("AllocatedStorage", &format!("{} GiB", s.storage_gib)),
        p("StorageType", &"gp3"),
        p("StorageEncrypted", &true),
        p("MultiAZ", &s.multi_az),
        p(
            "BackupRetentionPeriod",
            &format!("{} days", s.backup_retention_days),
        ),
        p("PubliclyAccessible", &s.publicly_accessible),
        p("DeletionProtection", &s.deletion_protection),
        p("CopyTagsToSnapshot", &true),
        p("DBParameterGroupName", &s.parameter_group),
        p("MasterUsername", &s.master_user),
    ];
    if let Some(m) = s.max_storage_gib {
        v.push(p("MaxAllocatedStorage", &format!("{m} GiB")));
    }
    if let Some(d) = &s.database {
        v.push(p("DBName", d));
    }
    if let Some(g) = &s.subnet_group {
        v.push(p("DBSubnetGroupName", g));
    }
    if !s.security_groups.is_empty() {
        v.push(p("VpcSecurityGroupIds", &s.security_groups.join(", ")));
    }
    match &s.password {
        PasswordMode::Managed => v.push(p(
            "ManageMasterUserPassword",
            &"true (RDS keeps the password in Secrets Manager)",
        )),
        PasswordMode::File(f) => v.push(p(
            "MasterUserPassword",
            &format!("(generated, in {} only)", f.display()),
        )),
    }
    let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.push(p("Tags", &tags.join(", ")));
    v
}

/// `rds plan`: what `rds create` will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdsPlan {
    /// Identifier.
    pub instance_id: String,
    /// The parameter group.
    pub parameter_group: String,
    /// The existing instance is used as it is.
    pub reuse: bool,
    /// Every decision, with why.
    pub decisions: Vec<RdsDecision>,
    /// Every API call that changes something, in order.
    pub calls: Vec<Call>,
    /// The database the migration goes into.
    pub database: String,
    /// The master user.
    pub master_user: String,
}

/// The parameter group supamigrate makes for an instance.
pub fn parameter_group_name(id: &str) -> String {
    format!("supamigrate-{id}")
}

/// RDS's rules for an instance identifier: 1–63 letters, digits and
/// hyphens, starting with a letter, no two hyphens in a row, none at the end.
pub fn check_identifier(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "--instance-id {id:?} is not a valid RDS instance identifier"
        ))
        .with_hint("use 1–63 letters, digits and hyphens, starting with a letter, with no two hyphens in a row and none at the end"))
    }
}

/// The storage to ask for: twice the source database (the copy, its
/// indexes built again, growth) plus the bulk load's WAL, in tens of GiB,
/// at least gp3's 20 GiB.
fn storage(req: &InstanceRequest, source: Option<&SourceFacts>) -> Result<RdsDecision> {
    if let Some(g) = req.storage_gib {
        if !(MIN_STORAGE_GIB..=MAX_STORAGE_GIB).contains(&g) {
            return Err(Error::invalid_input(format!(
                "--storage-gib {g} is outside what gp3 storage allows ({MIN_STORAGE_GIB}–{MAX_STORAGE_GIB} GiB)"
            ))
            .with_hint("give a size between 20 and 65536"));
        }
        return Ok(decision(
            "storage",
            &format!("{g} GiB gp3"),
            "--storage-gib",
        ));
    }
    Ok(match source {
        Some(s) => {
            let gib = (s.database_bytes as f64 / f64::from(1u32 << 30)).ceil() as u32;
            let want = (gib * 2 + 4).div_ceil(10) * 10;
            let g = want.clamp(MIN_STORAGE_GIB, MAX_STORAGE_GIB);
            decision(
                "storage",
                &format!("{g} GiB gp3"),
                &format!("the source database is {:.1} GiB: twice that (the data, its indexes built again, growth) and 4 GiB for the load's WAL, in tens of GiB, at least gp3's 20", s.database_bytes as f64 / f64::from(1u32 << 30)),
            )
        }
        None => decision(
            "storage",
            &format!("{DEFAULT_STORAGE_GIB} GiB gp3"),
            "no source configured to size it from: the runbook's 100 GiB (--storage-gib to choose)",
        ),
    })
}

fn decision(subject: &str, choice: &str, why: &str) -> RdsDecision {
    RdsDecision {
        subject: subject.into(),
        choice: choice.into(),
        why: why.into(),
    }
}

fn gib_of(choice: &str) -> u32 {
    choice
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_STORAGE_GIB)
}

/// The plan for `req`, from `facts`. Pure: it reads nothing and changes
/// nothing.
pub fn plan(req: &InstanceRequest, facts: &RdsFacts) -> Result<RdsPlan> {
    check_identifier(&req.id)?;
    let source_major = facts.source.map(|s| s.major);
    let version = versions::choose(&facts.versions, req.engine_version.as_deref(), source_major)?;
    let mut decisions = version_decisions(req, &version);
    let size = storage(req, facts.source.as_ref())?;
    let storage_gib = gib_of(&size.choice);
    decisions.push(size);
    decisions.extend(security_decisions(req));
    let group = parameter_group_name(&req.id);
    if let Some(family) = &facts.parameter_group_family {
        if family != &version.family {
            return Err(Error::invalid_input(format!(
                "the parameter group {group} exists for {family}, not for PostgreSQL {} ({})",
                version.version, version.family
            ))
            .with_hint(format!(
                "delete the parameter group {group} or give --engine-version for {family}"
            )));
        }
    }
    let spec = spec_of(req, &version, storage_gib, &group);
    let mut calls = Vec::new();
    if facts.parameter_group_family.is_none() {
        calls.push(Call::CreateDBParameterGroup {
            name: group.clone(),
            family: version.family.clone(),
        });
    }
    calls.push(Call::ModifyDBParameterGroup {
        name: group.clone(),
        settings: phase_settings(if req.bulk_load {
            Phase::Load
        } else {
            Phase::Production
        }),
    });
    let reuse = match &facts.instance {
        Some(existing) => {
            let diffs = differences(&spec, existing, req);
            if !diffs.is_empty() {
                return Err(Error::invalid_input(format!(
                    "an instance {} exists and differs from what was asked: {}",
                    req.id,
                    diffs.join("; ")
                ))
                .with_hint("give another --instance-id, or options that match the existing instance (`supamigrate rds status` shows it)"));
            }
            decisions.push(decision(
                "instance",
                "reuse",
                &format!(
                    "{} exists ({}) with the settings asked for",
                    req.id, existing.status
                ),
            ));
            true
        }
        None => {
            calls.push(Call::CreateDBInstance(Box::new(spec)));
            false
        }
    };
    calls.push(Call::WaitAvailable { id: req.id.clone() });
    Ok(RdsPlan {
        instance_id: req.id.clone(),
        parameter_group: group,
        reuse,
        decisions,
        calls,
        database: req.database.clone(),
        master_user: req.master_user.clone(),
    })
}

/// The decisions on the engine: which version, and Extended Support.
fn version_decisions(req: &InstanceRequest, version: &versions::EngineVersion) -> Vec<RdsDecision> {
    let mut decisions = vec![decision(
        "engine version",
        &format!("PostgreSQL {}", version.version),
        &match &req.engine_version {
            None => "the newest major the region offers, at its newest minor that can be created"
                .to_string(),
            Some(a) if !a.contains('.') => {
                format!("--engine-version {a}: its newest minor that can be created")
            }
            Some(a) => format!("--engine-version {a}"),
        },
    )];
    decisions.push(decision(
        "extended support",
        if req.extended_support { "enabled" } else { "disabled" },
        if req.extended_support {
            "--extended-support: RDS enrols the instance in paid Extended Support when the major's standard support ends"
        } else {
            "the API enrols older majors in paid Extended Support unless told not to (--extended-support to allow it)"
        },
    ));
    decisions
}

/// The instance `CreateDBInstance` makes.
fn spec_of(
    req: &InstanceRequest,
    version: &versions::EngineVersion,
    storage_gib: u32,
    group: &str,
) -> InstanceSpec {
    let mut tags = vec![("ManagedBy".to_string(), "supamigrate".to_string())];
    tags.extend(req.tags.iter().filter(|(k, _)| k != "ManagedBy").cloned());
    InstanceSpec {
        id: req.id.clone(),
        class: req.class.clone(),
        engine_version: version.version.clone(),
        storage_gib,
        max_storage_gib: req.max_storage_gib,
        multi_az: req.multi_az,
        backup_retention_days: req.backup_retention_days,
        subnet_group: req.subnet_group.clone(),
        security_groups: req.security_groups.clone(),
        publicly_accessible: req.publicly_accessible,
        lifecycle: if req.extended_support {
            EXTENDED_SUPPORT_ENABLED
        } else {
            EXTENDED_SUPPORT_DISABLED
        }
        .into(),
        deletion_protection: req.deletion_protection,
        master_user: req.master_user.clone(),
        database: (req.database != "postgres").then(|| req.database.clone()),
        parameter_group: group.to_string(),
        password: req.password.clone(),
        tags,
    }
}

/// The parameter group's settings for `phase`.
pub fn phase_settings(phase: Phase) -> Vec<Setting> {
    let mut s = settings::always();
    if phase == Phase::Load {
        s.extend(settings::bulk_load());
    }
    s
}

fn security_decisions(req: &InstanceRequest) -> Vec<RdsDecision> {
    vec![
        decision(
            "storage encryption",
            "on",
            "always: the data at rest is the project's",
        ),
        decision(
            "public access",
            if req.publicly_accessible { "on" } else { "off" },
            if req.publicly_accessible {
                "--publicly-accessible"
            } else {
                "reachable only from its VPC (--publicly-accessible to change)"
            },
        ),
        decision(
            "deletion protection",
            if req.deletion_protection { "on" } else { "off" },
            if req.deletion_protection {
                "`rds delete` turns it off first, after asking"
            } else {
                "--no-deletion-protection"
            },
        ),
        decision(
            "master password",
            match &req.password {
                PasswordMode::Managed => "managed by RDS in Secrets Manager".to_string(),
                PasswordMode::File(f) => format!("generated into {} (mode 0600)", f.display()),
            }
            .as_str(),
            "never printed, never on a command line",
        ),
        decision(
            "availability",
            &format!(
                "{}, {} days of backups",
                if req.multi_az {
                    "Multi-AZ"
                } else {
                    "single-AZ"
                },
                req.backup_retention_days
            ),
            "the runbook's",
        ),
    ]
}

/// How an existing instance differs from the spec (what cannot be reused).
fn differences(spec: &InstanceSpec, have: &InstanceFacts, req: &InstanceRequest) -> Vec<String> {
    let mut d = Vec::new();
    let mut differs = |what: &str, has: String, asked: String| {
        if has != asked {
            d.push(format!("{what}: it has {has}, asked {asked}"));
        }
    };
    differs("class", have.class.clone(), spec.class.clone());
    let major = |v: &str| v.split('.').next().unwrap_or(v).to_string();
    match &req.engine_version {
        Some(v) if v.contains('.') => {
            differs("engine version", have.engine_version.clone(), v.clone())
        }
        _ => differs(
            "engine major",
            major(&have.engine_version),
            major(&spec.engine_version),
        ),
    }
    // More than asked is fine (storage only grows); less is not.
    if have.storage_gib < spec.storage_gib {
        differs(
            "storage (GiB, at least)",
            have.storage_gib.to_string(),
            spec.storage_gib.to_string(),
        );
    }
    differs(
        "Multi-AZ",
        have.multi_az.to_string(),
        spec.multi_az.to_string(),
    );
    differs(
        "storage encryption",
        have.encrypted.to_string(),
        "true".into(),
    );
    differs(
        "public access",
        have.public.to_string(),
        spec.publicly_accessible.to_string(),
    );
    differs(
        "backup retention (days)",
        have.backup_retention_days.to_string(),
        spec.backup_retention_days.to_string(),
    );
    differs(
        "master user",
        have.master_user.clone(),
        spec.master_user.clone(),
    );
    differs(
        "parameter group",
        have.parameter_group
            .clone()
            .unwrap_or_else(|| "none".into()),
        spec.parameter_group.clone(),
    );
    if have.status == "deleting" {
        d.push("status: it is being deleted".into());
    }
    d
}

#[cfg(test)]
mod tests;
