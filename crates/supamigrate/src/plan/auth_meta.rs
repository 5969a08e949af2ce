//! Supabase Auth's tables beyond `auth.users` on the target
//! ([`crate::supabase::AUTH_TABLES`]): the same tables in `auth`, with the
//! source's columns, enum types, keys and row level security, copied like
//! any table. GoTrue is gone: nothing updates them by itself on the target
//! (no new identity, factor or session is written but by the application).

use crate::catalog::dump::AuthTable;
use crate::pg::{quote_ident, quote_literal};

/// Pre-data: the enum types the carried tables' columns use, then the
/// tables (no defaults: GoTrue wrote them; generated columns as generated).
pub fn pre_data(tables: &[&AuthTable], enums: &[(String, Vec<String>)]) -> Vec<String> {
    let mut sql = Vec::new();
    for (name, labels) in enums {
        let used = tables.iter().any(|t| {
            t.columns
                .iter()
                .any(|c| c.data_type.trim_end_matches("[]") == name.as_str())
        });
        if used {
            let labels: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
            let (schema, typ) = name.split_once('.').unwrap_or(("auth", name));
            sql.push(format!(
                "CREATE TYPE {}.{} AS ENUM ({});",
                quote_ident(schema),
                quote_ident(typ),
                labels.join(", ")
            ));
        }
    }
    for t in tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let mut def = format!("    {} {}", quote_ident(&c.name), c.data_type);
                if let Some(g) = &c.generated {
                    def.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
                }
                if c.not_null {
                    def.push_str(" NOT NULL");
                }
                def
            })
            .collect();
        sql.push(format!(
            "CREATE TABLE auth.{} (\n{}\n);",
            quote_ident(&t.name),
            cols.join(",\n")
        ));
    }
    sql
}

/// Post-data: their primary keys and unique constraints, and row level
/// security where the source has it on (no policy: as on Supabase, only
/// their owner reads them).
pub fn post_data(tables: &[&AuthTable]) -> Vec<String> {
    let mut sql = Vec::new();
    for t in tables {
        for (name, def) in &t.keys {
            sql.push(format!(
                "ALTER TABLE ONLY auth.{} ADD CONSTRAINT {} {def};",
                quote_ident(&t.name),
                quote_ident(name)
            ));
        }
        if t.rls {
            sql.push(format!(
                "ALTER TABLE auth.{} ENABLE ROW LEVEL SECURITY;",
                quote_ident(&t.name)
            ));
        }
    }
    sql
}
