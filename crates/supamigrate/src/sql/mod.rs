//! SQL text ↔ parsed statements, through libpg_query.
//!
//! Statements we keep are re-emitted as their original text; only statements
//! we change are deparsed (libpg_query's deparser is faithful but not perfect,
//! e.g. with quoted identifiers that start with a digit).

pub mod names;
pub mod reads;
pub mod tree;
pub mod uses;

use pg_query::protobuf::{self, RangeVar};
use pg_query::NodeEnum;

use crate::error::{Error, Result};

/// The comment that starts each query of ours reading the application's
/// tables, so that `pg_stat_statements` (which keeps a statement's text,
/// comments included) tells them from the application's own reads.
pub const OWN: &str = "/* supamigrate */";

/// `query`, marked as ours ([`OWN`]).
pub fn own(query: &str) -> String {
    format!("{OWN} {query}")
}

/// One statement of a dump.
///
/// Its parse tree is kept encoded (protobuf bytes, a few hundred bytes for
/// most statements) and decoded when asked for: decoded trees take about
/// 10 KB a statement, 200 MB for a schema of 5,000 tables. A tree being
/// edited ([`Statement::node_mut`]) stays decoded until it is deparsed.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The original text, without the trailing semicolon.
    pub text: String,
    /// Its parse tree (exactly one statement), protobuf-encoded.
    encoded: Vec<u8>,
    /// The tree being edited, when it is.
    edited: Option<Box<protobuf::ParseResult>>,
}

impl Statement {
    /// Parses one statement.
    pub fn parse(text: &str) -> Result<Statement> {
        let parsed = pg_query::parse(text, pg_query::ParserOptions::DEFAULT).map_err(|e| {
            Error::invalid_input(format!(
                "cannot parse SQL statement: {e}: {}",
                excerpt(text)
            ))
            .with_hint("the schema dump must be valid PostgreSQL; report this statement if it is")
        })?;
        if parsed.protobuf.stmts.len() != 1 {
            return Err(Error::invalid_input(format!(
                "expected one statement, found {}: {}",
                parsed.protobuf.stmts.len(),
                excerpt(text)
            )));
        }
        Ok(Statement {
            text: text.trim().to_string(),
            encoded: prost::Message::encode_to_vec(&parsed.protobuf),
            edited: None,
        })
    }

    /// The whole tree, decoded (or the one being edited).
    fn tree(&self) -> protobuf::ParseResult {
        match &self.edited {
            Some(t) => (**t).clone(),
            // Our own encoding of a tree libpg_query gave: it decodes.
            None => prost::Message::decode(self.encoded.as_slice()).unwrap_or_default(),
        }
    }

    /// The statement's node (decoded: an owned copy).
    pub fn node(&self) -> Option<NodeEnum> {
        self.tree()
            .stmts
            .into_iter()
            .next()
            .and_then(|s| s.stmt)
            .and_then(|n| n.node)
    }

    /// The statement's node, to edit; [`Statement::deparse`] renders the edit.
    pub fn node_mut(&mut self) -> Option<&mut NodeEnum> {
        if self.edited.is_none() {
            self.edited = Some(Box::new(self.tree()));
        }
        self.edited
            .as_mut()?
            .stmts
            .first_mut()?
            .stmt
            .as_mut()
            .and_then(|n| n.node.as_mut())
    }

    /// SQL for the (possibly edited) tree.
    pub fn deparse(&self) -> Result<String> {
        pg_query::deparse(&self.tree(), pg_query::DeparseOptions::default()).map_err(|e| {
            Error::new(
                crate::error::ErrorKind::Database,
                format!("cannot deparse {}: {e}", excerpt(&self.text)),
            )
        })
    }

    /// The original text with a semicolon, for statements kept as they are.
    pub fn original(&self) -> String {
        format!("{};", strip_leading_comments(&self.text))
    }
}

/// A short, single-line excerpt for messages.
pub fn excerpt(text: &str) -> String {
    let one_line: String = strip_leading_comments(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() > 90 {
        format!("{}…", one_line.chars().take(90).collect::<String>())
    } else {
        one_line
    }
}

fn strip_leading_comments(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        rest = after
            .split_once('\n')
            .map(|(_, r)| r)
            .unwrap_or("")
            .trim_start();
    }
    rest
}

/// A psql meta-command line (`\restrict …`, `\connect …`) removed from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaCommand(pub String);

/// Splits a dump into statements, removing psql meta-commands (which are not
/// SQL) and comment-only fragments.
pub fn split(dump: &str) -> Result<(Vec<Statement>, Vec<MetaCommand>)> {
    let mut meta = Vec::new();
    let mut sql = String::with_capacity(dump.len());
    let mut in_dollar: Option<String> = None;
    for line in dump.lines() {
        // Meta-commands start a line outside any dollar-quoted body.
        if in_dollar.is_none() && line.starts_with('\\') {
            let word = line.split_whitespace().next().unwrap_or(line);
            meta.push(MetaCommand(word.to_string()));
            sql.push('\n');
            continue;
        }
        track_dollar_quotes(line, &mut in_dollar);
        sql.push_str(line);
        sql.push('\n');
    }
    let pieces = match pg_query::split_with_parser(&sql) {
        Ok(p) => p,
        Err(e) => {
            // Name the statement that does not parse: split by the scanner
            // (which does not need valid syntax) and parse piece by piece.
            for piece in pg_query::split_with_scanner(&sql).unwrap_or_default() {
                if !strip_leading_comments(piece).trim().is_empty() {
                    Statement::parse(piece)?;
                }
            }
            return Err(Error::invalid_input(format!(
                "cannot split the schema dump into statements: {e}"
            ))
            .with_hint("the dump must be plain SQL as pg_dump writes it"));
        }
    };
    let mut out = Vec::new();
    for piece in pieces {
        if strip_leading_comments(piece).trim().is_empty() {
            continue;
        }
        out.push(Statement::parse(piece)?);
    }
    Ok((out, meta))
}

/// Follows `$tag$ … $tag$` quoting across lines, so a backslash line inside a
/// function body is not taken for a meta-command.
pub(crate) fn track_dollar_quotes(line: &str, open: &mut Option<String>) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if let Some(end) = line[i + 1..].find('$') {
                let tag = &line[i..i + end + 2];
                let valid = tag[1..tag.len() - 1]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_');
                if valid {
                    match open {
                        Some(t) if t == tag => *open = None,
                        None => *open = Some(tag.to_string()),
                        _ => {}
                    }
                    i += tag.len();
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// `schema.name` of a RangeVar (schema may be empty).
pub fn rangevar_name(rv: &RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

/// The names in a list of `String` nodes (a qualified name), in order.
pub fn parts(names: &[protobuf::Node]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// The names in a list of `String` nodes (qualified names), joined with dots.
pub fn qualified(names: &[protobuf::Node]) -> String {
    names
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands_are_removed_but_not_inside_bodies() {
        let dump = "\\restrict abc123\nSET x = 1;\ncreate function f() returns text language sql as $body$\n\\notmeta\nselect 'x'\n$body$;\n\\unrestrict abc123\n";
        let (stmts, meta) = split(dump).unwrap();
        assert_eq!(
            meta,
            vec![
                MetaCommand("\\restrict".into()),
                MetaCommand("\\unrestrict".into())
            ]
        );
        assert_eq!(stmts.len(), 2);
        assert!(stmts[1].text.contains("\\notmeta"));
    }

    #[test]
    fn comments_are_not_statements() {
        let (stmts, _) = split(
            "-- only a comment\n\n--\n-- Name: x\n--\ncreate table t (a int);\n-- trailing\n",
        )
        .unwrap();
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].original(), "create table t (a int);");
    }

    #[test]
    fn bad_sql_is_bad_input() {
        let e = split("create tabel t (a int);").unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("create tabel"), "{e}");
    }
}
