//! Names and what a statement uses: the vocabulary of [`super::uses`] and
//! [`super::tree`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A possibly schema-qualified name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Name {
    /// The schema, "" when not given.
    pub schema: String,
    /// The name.
    pub name: String,
}

impl Name {
    /// A name from its parts.
    pub fn new(schema: &str, name: &str) -> Name {
        Name {
            schema: schema.to_string(),
            name: name.to_string(),
        }
    }

    /// From dotted parts (`["auth", "users"]`, `["now"]`); the last two count.
    pub fn from_parts(parts: &[String]) -> Option<Name> {
        match parts {
            [] => None,
            [n] => Some(Name::new("", n)),
            [.., s, n] => Some(Name::new(s, n)),
        }
    }

    /// Whether it names `schema.name`.
    pub fn is(&self, schema: &str, name: &str) -> bool {
        self.schema == schema && self.name == name
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.schema.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}.{}", self.schema, self.name)
        }
    }
}

/// What a statement uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uses {
    /// Relations read or written (tables, views; CTE names left out).
    pub relations: BTreeSet<Name>,
    /// Functions called (triggers' functions included).
    pub functions: BTreeSet<Name>,
    /// The body runs SQL built at run time (`EXECUTE …`): what it uses is
    /// not known.
    pub dynamic_sql: bool,
    /// Parts of a body that could not be parsed (other languages count as
    /// one): what they use is not known.
    pub unparsed: usize,
    /// The names in its column references (`a.b` gives `a` and `b`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub columns: BTreeSet<String>,
}

impl Uses {
    /// Adds what `other` uses.
    pub fn extend(&mut self, other: Uses) {
        self.relations.extend(other.relations);
        self.functions.extend(other.functions);
        self.dynamic_sql |= other.dynamic_sql;
        self.unparsed += other.unparsed;
        self.columns.extend(other.columns);
    }

    /// Whether it uses relation `schema.name` or a function of `schema`.
    pub fn touches_schema(&self, schema: &str) -> bool {
        self.relations.iter().any(|n| n.schema == schema)
            || self.functions.iter().any(|n| n.schema == schema)
    }
}
