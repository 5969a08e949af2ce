//! The project's default privileges (`ALTER DEFAULT PRIVILEGES`): what
//! objects created later get. A dump of some schemas holds only the per
//! schema ones, and names the roles that create objects on Supabase; the
//! catalog holds them all. On the target every migrated object belongs to
//! the role that applies the schema, so the defaults are set for it
//! (`FOR ROLE` left out), at the end of pre-data: the dump's objects keep
//! the privileges it gives them, and whatever the application creates
//! afterwards gets the source's defaults.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Conversion, ConvertOptions, Impact};
use crate::catalog::dump::SchemaSource;
use crate::error::Result;
use crate::pg::quote_ident;
use crate::plan::statements::added;
use crate::plan::Section;

/// One statement's worth: same schema, kind, grantee and direction.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a> {
    schema: Option<&'a str>,
    kind: &'a str,
    grantee: &'a str,
    grantable: bool,
    revoke: bool,
}

/// The keyword for pg_default_acl's kind, and the major version that
/// first has it.
fn kind_word(kind: &str) -> Option<(&'static str, u32)> {
    Some(match kind {
        "r" => ("TABLES", 0),
        "S" => ("SEQUENCES", 0),
        "f" => ("FUNCTIONS", 0),
        "T" => ("TYPES", 0),
        "n" => ("SCHEMAS", 10),
        "L" => ("LARGE OBJECTS", 18),
        _ => return None,
    })
}

/// The major version that first has a privilege (PostgreSQL 17's MAINTAIN).
fn privilege_since(privilege: &str) -> u32 {
    if privilege == "MAINTAIN" {
        17
    } else {
        0
    }
}

/// Plans the source's default privileges for the target.
pub(super) fn plan(src: &SchemaSource, opts: &ConvertOptions, out: &mut Conversion) -> Result<()> {
    let mut groups: BTreeMap<Key, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for d in &src.default_privileges {
        let key = Key {
            schema: d.schema.as_deref(),
            kind: &d.kind,
            grantee: &d.grantee,
            grantable: d.grantable,
            revoke: d.revoke,
        };
        let (privileges, roles) = groups.entry(key).or_default();
        privileges.insert(&d.privilege);
        roles.insert(&d.role);
    }
    for (key, (privileges, roles)) in groups {
        one(src, opts, &key, &privileges, &roles, out)?;
    }
    Ok(())
}

impl Key<'_> {
    /// `[IN SCHEMA s] GRANT p, … ON KIND TO g [WITH GRANT OPTION]`: names
    /// quoted for SQL, as they are for the plan's lines.
    fn clause(&self, privileges: &[&str], word: &str, sql: bool) -> String {
        let q = |s: &str| if sql { quote_ident(s) } else { s.to_string() };
        let grantee = if self.grantee.is_empty() {
            "PUBLIC".to_string()
        } else {
            q(self.grantee)
        };
        let in_schema = self
            .schema
            .map(|s| format!(" IN SCHEMA {}", q(s)))
            .unwrap_or_default();
        let (verb, to) = if self.revoke {
            ("REVOKE", "FROM")
        } else {
            ("GRANT", "TO")
        };
        let option = if sql && self.grantable && !self.revoke {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        format!(
            "{in_schema} {verb} {} ON {word} {to} {grantee}{option}",
            privileges.join(", ")
        )
    }
}

fn one(
    src: &SchemaSource,
    opts: &ConvertOptions,
    key: &Key,
    privileges: &BTreeSet<&str>,
    roles: &BTreeSet<&str>,
    out: &mut Conversion,
) -> Result<()> {
    let roles = roles.iter().copied().collect::<Vec<_>>().join(", ");
    let all: Vec<&str> = privileges.iter().copied().collect();
    let kind = kind_word(key.kind);
    let word = kind.map_or(key.kind, |(w, _)| w);
    let object = format!(
        "default privileges of {roles}:{}",
        key.clause(&all, word, false)
    );
    if let Some(s) = key.schema.filter(|s| !src.schemas.iter().any(|a| a == s)) {
        out.note_with(
            Action::Dropped,
            object,
            format!("schema {s} is not migrated"),
            Impact::None,
        );
        return Ok(());
    }
    let Some((word, _)) = kind.filter(|(_, since)| *since <= opts.target_major) else {
        out.note_todo(
            Action::Dropped,
            object,
            format!(
                "PostgreSQL {} has no default privileges for this kind of object",
                opts.target_major
            ),
            "grant them on each such object the application creates",
        );
        return Ok(());
    };
    let (kept, unknown): (Vec<&str>, Vec<&str>) = all
        .iter()
        .partition(|p| privilege_since(p) <= opts.target_major);
    if !unknown.is_empty() {
        out.note_todo(
            Action::Dropped,
            format!(
                "default privileges of {roles}:{}",
                key.clause(&unknown, word, false)
            ),
            format!("PostgreSQL {} has no such privilege", opts.target_major),
            "nothing to do: the target has no such privilege to give",
        );
    }
    if kept.is_empty() {
        return Ok(());
    }
    let sql = format!("ALTER DEFAULT PRIVILEGES{};", key.clause(&kept, word, true));
    out.push(added(&sql, Section::PreData)?);
    out.note_with(
        Action::Rewritten,
        object,
        format!(
            "the source's default privileges for what {roles} creates{}: on the target, {} for the role that applies the schema (FOR ROLE left out: it owns every migrated object), after the schema's objects, so what the application creates later gets the same",
            key.schema.map(|s| format!(" in schema {s}")).unwrap_or_default(),
            sql.trim_end_matches(';')
        ),
        Impact::None,
    );
    Ok(())
}
