//! Schema drift: the source's objects as the plan knew them against the
//! source now, each difference named (a column added, a column whose type
//! changed, a function redefined…). The plan keeps one [`ObjectDef`] per
//! object of its schemas (a digest, never a definition's text), read by
//! `sql/schema_objects.sql` from the same definitions the schema
//! fingerprint digests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// One object of the source's schema, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDef {
    /// What a person reads of it (a column's type and nullability), or empty.
    pub shown: String,
    /// A digest of its whole definition.
    pub digest: String,
}

/// The source's objects, keyed by kind and name (`column public.t.c`).
pub type Objects = BTreeMap<String, ObjectDef>;

/// Reads the source's objects in `schemas` (and `auth.users`' columns and
/// triggers, and the extensions, as the fingerprint does).
pub async fn read(client: &Client, schemas: &[String]) -> Result<Objects> {
    Ok(client
        .query(include_str!("sql/schema_objects.sql"), &[&schemas])
        .await
        .map_err(|e| Error::postgres("reading the source's schema objects", e))?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                ObjectDef {
                    shown: r.get(1),
                    digest: r.get(2),
                },
            )
        })
        .collect())
}

/// What changed in the source's schema since a plan made with `fingerprint`
/// and `planned` objects: nothing when the fingerprint is unchanged; the
/// whole schema as one entry for a plan that kept no objects.
pub async fn since(
    client: &Client,
    schemas: &[String],
    fingerprint: &str,
    planned: &Objects,
) -> Result<Vec<Drift>> {
    if super::schema_fingerprint(client, schemas).await? == fingerprint {
        return Ok(Vec::new());
    }
    let found = if planned.is_empty() {
        Vec::new()
    } else {
        compare(planned, &read(client, schemas).await?)
    };
    if found.is_empty() {
        return Ok(vec![Drift {
            object: "the source's schema".into(),
            change: Change::Changed {
                was: String::new(),
                now: String::new(),
            },
        }]);
    }
    Ok(found)
}

/// One difference between the planned schema and the source's now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The object (`column public.t.c`).
    pub object: String,
    /// What happened to it.
    pub change: Change,
}

/// What happened to an object since the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "change")]
pub enum Change {
    /// New on the source.
    Added {
        /// What it is now.
        now: String,
    },
    /// Gone from the source.
    Dropped,
    /// Defined otherwise.
    Changed {
        /// As planned.
        was: String,
        /// Now.
        now: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.change {
            Change::Added { now } if now.is_empty() => write!(f, "{} added", self.object),
            Change::Added { now } => write!(f, "{} added ({now})", self.object),
            Change::Dropped => write!(f, "{} dropped", self.object),
            Change::Changed { was, now } if was != now && !was.is_empty() => {
                write!(f, "{} changed: {was} → {now}", self.object)
            }
            Change::Changed { .. } => write!(f, "{} redefined", self.object),
        }
    }
}

/// Every difference between `planned` and `now`, in name order.
pub fn compare(planned: &Objects, now: &Objects) -> Vec<Drift> {
    let mut out = Vec::new();
    for (k, p) in planned {
        match now.get(k) {
            None => out.push(Drift {
                object: k.clone(),
                change: Change::Dropped,
            }),
            Some(n) if n.digest != p.digest => out.push(Drift {
                object: k.clone(),
                change: Change::Changed {
                    was: p.shown.clone(),
                    now: n.shown.clone(),
                },
            }),
            Some(_) => {}
        }
    }
    for (k, n) in now {
        if !planned.contains_key(k) {
            out.push(Drift {
                object: k.clone(),
                change: Change::Added {
                    now: n.shown.clone(),
                },
            });
        }
    }
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

/// The drifts as one phrase for a message: the first few, and how many more.
pub fn describe(drifts: &[Drift]) -> String {
    const SHOWN: usize = 8;
    let mut s = drifts
        .iter()
        .take(SHOWN)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if drifts.len() > SHOWN {
        s.push_str(&format!("; and {} more", drifts.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(shown: &str, digest: &str) -> ObjectDef {
        ObjectDef {
            shown: shown.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn each_change_is_named() {
        let planned: Objects = [
            ("column public.t.amount", def("numeric(12,2)", "a")),
            ("column public.t.id", def("bigint not null", "b")),
            ("function public.f()", def("", "c")),
            ("index public.t_old", def("", "d")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut now = planned.clone();
        now.insert("column public.t.amount".into(), def("numeric(14,4)", "a2"));
        now.insert("column public.t.extra".into(), def("integer", "e"));
        now.insert("function public.f()".into(), def("", "c2"));
        now.remove("index public.t_old");
        let got: Vec<String> = compare(&planned, &now)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "column public.t.amount changed: numeric(12,2) → numeric(14,4)",
                "column public.t.extra added (integer)",
                "function public.f() redefined",
                "index public.t_old dropped",
            ]
        );
        assert!(compare(&planned, &planned).is_empty());
    }
}
