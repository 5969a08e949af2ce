//! Which PostgreSQL version a new instance gets: the newest major the region
//! offers (from `DescribeDBEngineVersions`), at its newest minor that can be
//! created, or the one asked for when the region offers it. Never a version
//! the region no longer creates (the runbook's 15.4), never a major older
//! than the source's (pg_dump's output goes forward, not back).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One version `DescribeDBEngineVersions` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineVersion {
    /// `17.6`.
    pub version: String,
    /// The parameter group family (`postgres17`).
    pub family: String,
    /// `available`, or `deprecated` (listed, no longer created).
    pub status: String,
}

impl EngineVersion {
    /// The major (`17` of `17.6`).
    pub fn major(&self) -> Option<u32> {
        numbers(&self.version).first().copied()
    }

    fn creatable(&self) -> bool {
        self.status.eq_ignore_ascii_case("available")
    }
}

/// The numeric parts of a version (`[17, 6]`); `None` parts stop it.
fn numbers(v: &str) -> Vec<u32> {
    v.split('.').map_while(|p| p.parse().ok()).collect()
}

/// The version to create: `asked` is a major (`16`), a full version
/// (`16.4`), or none (the newest major); `source_major` the source's.
pub fn choose(
    offered: &[EngineVersion],
    asked: Option<&str>,
    source_major: Option<u32>,
) -> Result<EngineVersion> {
    let creatable: Vec<&EngineVersion> = offered.iter().filter(|v| v.creatable()).collect();
    let majors = || {
        let mut m: Vec<u32> = creatable.iter().filter_map(|v| v.major()).collect();
        m.sort_unstable();
        m.dedup();
        m.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    };
    if creatable.is_empty() {
        return Err(Error::invalid_input(
            "the region offers no PostgreSQL version that can be created (DescribeDBEngineVersions listed none available)",
        )
        .with_hint("check the region (AWS_REGION or the profile's region) and that RDS for PostgreSQL is offered there"));
    }
    let newest = |within: &dyn Fn(&EngineVersion) -> bool| {
        creatable
            .iter()
            .filter(|v| within(v))
            .max_by_key(|v| numbers(&v.version))
            .map(|v| (*v).clone())
    };
    let chosen = match asked {
        None => newest(&|_| true),
        Some(a) if !a.contains('.') => {
            let major: u32 = a.parse().map_err(|_| {
                Error::invalid_input(format!(
                    "--engine-version {a:?} is not a PostgreSQL version"
                ))
                .with_hint(format!(
                    "give a major (one of {}) or a full version such as 16.4",
                    majors()
                ))
            })?;
            let v = newest(&|v| v.major() == Some(major));
            if v.is_none() {
                return Err(Error::invalid_input(format!(
                    "--engine-version {a}: the region creates no PostgreSQL {a} instances"
                ))
                .with_hint(format!("the majors it offers: {}", majors())));
            }
            v
        }
        Some(a) => Some(exact(offered, &creatable, a, &majors())?),
    };
    let chosen = chosen.ok_or_else(|| Error::internal("no engine version chosen"))?;
    if let (Some(src), Some(m)) = (source_major, chosen.major()) {
        if m < src {
            return Err(Error::invalid_input(format!(
                "PostgreSQL {} is older than the source's PostgreSQL {src}: a dump goes to the same major or a newer one",
                chosen.version
            ))
            .with_hint(format!("give --engine-version {src} or newer (the region offers {})", majors())));
        }
    }
    Ok(chosen)
}

/// The exact version `a` (`16.4`), which must be creatable.
fn exact(
    offered: &[EngineVersion],
    creatable: &[&EngineVersion],
    a: &str,
    majors: &str,
) -> Result<EngineVersion> {
    if let Some(v) = creatable.iter().find(|v| v.version == a) {
        return Ok((*v).clone());
    }
    let listed = offered.iter().any(|v| v.version == a);
    let why = if listed {
        "is listed but can no longer be created"
    } else {
        "is not offered"
    };
    let same: Vec<&str> = creatable
        .iter()
        .filter(|v| v.major() == numbers(a).first().copied())
        .map(|v| v.version.as_str())
        .collect();
    let hint = if same.is_empty() {
        format!("the majors the region offers: {majors}")
    } else {
        format!(
            "give the major alone (--engine-version {}) for its newest minor, or one of: {}",
            numbers(a)[0],
            same.join(", ")
        )
    };
    Err(Error::invalid_input(format!("--engine-version {a} {why} in this region")).with_hint(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str, status: &str) -> EngineVersion {
        EngineVersion {
            version: version.into(),
            family: format!("postgres{}", version.split('.').next().unwrap()),
            status: status.into(),
        }
    }

    fn offered() -> Vec<EngineVersion> {
        vec![
            v("15.4", "deprecated"),
            v("15.15", "available"),
            v("15.9", "available"),
            v("16.11", "available"),
            v("17.2", "available"),
            v("17.10", "available"),
            v("18.1", "available"),
            v("18.2", "deprecated"),
        ]
    }

    #[test]
    fn choices() {
        // (asked, source major, chosen or the error's words)
        // (--engine-version, the source's major, the version chosen or words of the refusal)
        type Case<'a> = (Option<&'a str>, Option<u32>, Result<&'a str, &'a str>);
        let cases: &[Case] = &[
            (None, None, Ok("18.1")),
            (None, Some(15), Ok("18.1")),
            (Some("15"), Some(15), Ok("15.15")),
            (Some("17"), None, Ok("17.10")),
            (Some("16.11"), None, Ok("16.11")),
            (Some("15.4"), None, Err("can no longer be created")),
            (Some("15.3"), None, Err("is not offered")),
            (Some("14"), None, Err("creates no PostgreSQL 14")),
            (Some("fifteen"), None, Err("is not a PostgreSQL version")),
            (
                Some("15"),
                Some(16),
                Err("older than the source's PostgreSQL 16"),
            ),
        ];
        for (asked, src, want) in cases {
            let got = choose(&offered(), *asked, *src);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(&g.version, w, "{asked:?}"),
                (Err(w), Err(e)) => {
                    assert!(e.to_string().contains(w), "{asked:?}: {e}");
                    assert!(e.is_bad_input() && e.hint().is_some(), "{asked:?}");
                }
                (w, g) => panic!("{asked:?}: wanted {w:?}, got {g:?}"),
            }
        }
        let hint = choose(&offered(), Some("15.4"), None).unwrap_err();
        assert!(
            hint.hint().unwrap().contains("15.15, 15.9"),
            "{:?}",
            hint.hint()
        );
        assert!(choose(&[v("15.4", "deprecated")], None, None).is_err());
    }
}
