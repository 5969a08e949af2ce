//! What the user chooses about a migration, and how a command's flags meet
//! a plan made earlier: a flag that is given must agree with the stored
//! plan; a flag that is not given takes the plan's choice.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::convert::{GeneratedChoice, PolicyMode, RestrictiveChoice};
use super::copy::SplitOptions;
use super::refs::RefColumn;
use super::storage::StorageChoices;
use crate::catalog::dump::SchemaSelection;

/// The application role when none is given.
pub const DEFAULT_APP_ROLE: &str = "app_user";

/// Every choice the plan depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Which schemas.
    pub schemas: SchemaSelection,
    /// RLS policies: keep them working (shim) or drop them.
    pub policies: PolicyMode,
    /// The application role.
    pub app_role: String,
    /// Extensions the user lets go, with what depends on them.
    pub allow_drop_extensions: BTreeSet<String>,
    /// Storage.
    pub storage: StorageChoices,
    /// Splitting of large tables.
    pub split: SplitOptions,
    /// Stale stored generated columns (`--stale-generated`).
    #[serde(default)]
    pub stale_generated: Option<GeneratedChoice>,
    /// Leave ANALYZE after the copy for later (`--no-analyze`).
    #[serde(default)]
    pub no_analyze: bool,
    /// A restrictive policy the target cannot keep (`--restrictive`).
    #[serde(default)]
    pub restrictive: RestrictiveChoice,
    /// Restrictive policies let go although access widens (`--allow-wider-access`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allow_wider_access: BTreeSet<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            schemas: SchemaSelection::default(),
            policies: PolicyMode::Shim,
            app_role: DEFAULT_APP_ROLE.to_string(),
            allow_drop_extensions: BTreeSet::new(),
            storage: StorageChoices::default(),
            split: SplitOptions::default(),
            stale_generated: None,
            no_analyze: false,
            restrictive: RestrictiveChoice::Refuse,
            allow_wider_access: BTreeSet::new(),
        }
    }
}

/// The choices a command was given (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOverrides {
    /// `--schema`.
    pub schemas: Option<Vec<String>>,
    /// `--exclude-schema`.
    pub exclude_schemas: Option<Vec<String>>,
    /// `--policies`.
    pub policies: Option<PolicyMode>,
    /// `--app-role` / `APP_DB_USER`.
    pub app_role: Option<String>,
    /// `--allow-drop-extension`.
    pub allow_drop_extensions: Option<BTreeSet<String>>,
    /// `--bucket-prefix`.
    pub bucket_prefix: Option<String>,
    /// `--storage-class`.
    pub storage_class: Option<String>,
    /// `--reference`.
    pub references: Option<Vec<RefColumn>>,
    /// `--url-prefix`.
    pub url_prefix: Option<String>,
    /// `--no-rewrite`.
    pub no_rewrite: Option<bool>,
    /// Splitting of large tables (tests and benchmarks).
    pub split: Option<SplitOptions>,
    /// `--stale-generated`.
    pub stale_generated: Option<GeneratedChoice>,
    /// `--no-analyze`.
    pub no_analyze: Option<bool>,
    /// `--restrictive`.
    pub restrictive: Option<RestrictiveChoice>,
    /// `--allow-wider-access`.
    pub allow_wider_access: Option<BTreeSet<String>>,
}

impl PlanOverrides {
    /// The options: the defaults, with what was given.
    pub fn resolve(&self) -> PlanOptions {
        let d = PlanOptions::default();
        PlanOptions {
            schemas: SchemaSelection {
                schemas: self.schemas.clone().unwrap_or(d.schemas.schemas),
                exclude: self.exclude_schemas.clone().unwrap_or(d.schemas.exclude),
            },
            policies: self.policies.unwrap_or(d.policies),
            app_role: self.app_role.clone().unwrap_or(d.app_role),
            allow_drop_extensions: self
                .allow_drop_extensions
                .clone()
                .unwrap_or(d.allow_drop_extensions),
            storage: StorageChoices {
                bucket_prefix: self.bucket_prefix.clone(),
                storage_class: self.storage_class.clone(),
                references: self.references.clone().unwrap_or_default(),
                url_prefix: self.url_prefix.clone(),
                no_rewrite: self.no_rewrite.unwrap_or(false),
            },
            split: self.split.unwrap_or(d.split),
            stale_generated: self.stale_generated.or(d.stale_generated),
            no_analyze: self.no_analyze.unwrap_or(d.no_analyze),
            restrictive: self.restrictive.unwrap_or(d.restrictive),
            allow_wider_access: self
                .allow_wider_access
                .clone()
                .unwrap_or(d.allow_wider_access),
        }
    }

    /// What was given that a plan made with `stored` did not choose, one
    /// line each (`--policies drop (the plan has shim)`).
    pub fn differences(&self, stored: &PlanOptions) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |flag: &str, given: String, planned: String| {
            if given != planned {
                out.push(format!("{flag} {given} (the plan has {planned})"));
            }
        };
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(",")
            }
        };
        if let Some(s) = &self.schemas {
            differ("--schema", list(s), list(&stored.schemas.schemas));
        }
        if let Some(s) = &self.exclude_schemas {
            differ("--exclude-schema", list(s), list(&stored.schemas.exclude));
        }
        if let Some(p) = self.policies {
            differ(
                "--policies",
                format!("{p:?}").to_lowercase(),
                format!("{:?}", stored.policies).to_lowercase(),
            );
        }
        if let Some(r) = &self.app_role {
            differ("--app-role", r.clone(), stored.app_role.clone());
        }
        if let Some(a) = &self.allow_drop_extensions {
            let given: Vec<String> = a.iter().cloned().collect();
            let planned: Vec<String> = stored.allow_drop_extensions.iter().cloned().collect();
            differ("--allow-drop-extension", list(&given), list(&planned));
        }
        if let Some(g) = self.stale_generated {
            let planned = stored.stale_generated.map(|c| c.name()).unwrap_or("none");
            differ(
                "--stale-generated",
                g.name().to_string(),
                planned.to_string(),
            );
        }
        if let Some(n) = self.no_analyze {
            differ("--no-analyze", n.to_string(), stored.no_analyze.to_string());
        }
        if let Some(r) = self.restrictive {
            differ(
                "--restrictive",
                r.name().to_string(),
                stored.restrictive.name().to_string(),
            );
        }
        if let Some(a) = &self.allow_wider_access {
            let given: Vec<String> = a.iter().cloned().collect();
            let planned: Vec<String> = stored.allow_wider_access.iter().cloned().collect();
            differ("--allow-wider-access", list(&given), list(&planned));
        }
        self.storage_differences(&stored.storage, &mut differ);
        out
    }

    fn storage_differences(
        &self,
        s: &StorageChoices,
        differ: &mut dyn FnMut(&str, String, String),
    ) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(default)".into());
        if self.bucket_prefix.is_some() {
            differ(
                "--bucket-prefix",
                opt(&self.bucket_prefix),
                opt(&s.bucket_prefix),
            );
        }
        if self.storage_class.is_some() {
            differ(
                "--storage-class",
                opt(&self.storage_class),
                opt(&s.storage_class),
            );
        }
        if let Some(r) = &self.references {
            let show = |v: &[RefColumn]| {
                v.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            differ("--reference", show(r), show(&s.references));
        }
        if self.url_prefix.is_some() {
            differ("--url-prefix", opt(&self.url_prefix), opt(&s.url_prefix));
        }
        if let Some(n) = self.no_rewrite {
            differ("--no-rewrite", n.to_string(), s.no_rewrite.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_flags_must_agree_with_the_stored_plan() {
        let stored = PlanOverrides {
            policies: Some(PolicyMode::Drop),
            app_role: Some("web".into()),
            ..PlanOverrides::default()
        }
        .resolve();
        // Nothing given: the plan's choices hold.
        assert!(PlanOverrides::default().differences(&stored).is_empty());
        let cases: &[(PlanOverrides, &[&str])] = &[
            (
                PlanOverrides {
                    policies: Some(PolicyMode::Drop),
                    ..Default::default()
                },
                &[],
            ),
            (
                PlanOverrides {
                    policies: Some(PolicyMode::Shim),
                    ..Default::default()
                },
                &["--policies shim (the plan has drop)"],
            ),
            (
                PlanOverrides {
                    app_role: Some("app_user".into()),
                    no_rewrite: Some(true),
                    ..Default::default()
                },
                &[
                    "--app-role app_user (the plan has web)",
                    "--no-rewrite true (the plan has false)",
                ],
            ),
            (
                PlanOverrides {
                    schemas: Some(vec!["app".into()]),
                    ..Default::default()
                },
                &["--schema app (the plan has none)"],
            ),
        ];
        for (given, want) in cases {
            assert_eq!(given.differences(&stored), *want, "{given:?}");
        }
    }
}
