//! Parse trees walked generically, as JSON: the one untyped tree in the
//! library.
//!
//! - SQL trees: pg_query's own traversal (`NodeEnum::nodes`) skips many
//!   node kinds (policies' expressions, column defaults…), so the tree is
//!   serialized (its protobuf types derive `Serialize`) and every
//!   `RangeVar`, `FuncCall` and `CommonTableExpr` in it is found.
//! - plpgsql bodies: libpg_query parses them (`pg_query::parse_plpgsql`)
//!   and hands back the function as JSON. Every embedded SQL statement and
//!   expression in it is parsed again as SQL, so a body's uses are read
//!   from parse trees, never from its text.

use std::collections::BTreeSet;

use pg_query::NodeEnum;
use serde_json::Value;

use super::names::{Name, Uses};

/// What SQL text uses (several statements allowed); `None` when it does
/// not parse.
pub fn of_sql(sql: &str) -> Option<Uses> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    let mut uses = Uses::default();
    for raw in &parsed.protobuf.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            uses.extend(node_uses(node));
        }
    }
    Some(uses)
}

/// The relations (CTE names left out) and function calls in a SQL tree.
pub fn node_uses(node: &NodeEnum) -> Uses {
    let Ok(tree) = serde_json::to_value(node) else {
        return Uses {
            unparsed: 1,
            ..Uses::default()
        };
    };
    let mut found = Found::default();
    found.walk(&tree);
    let ctes = found.ctes;
    Uses {
        relations: found
            .relations
            .into_iter()
            .filter(|r| !(r.schema.is_empty() && ctes.contains(&r.name)))
            .collect(),
        functions: found.functions,
        columns: found.columns,
        ..Uses::default()
    }
}

#[derive(Default)]
struct Found {
    relations: BTreeSet<Name>,
    functions: BTreeSet<Name>,
    ctes: BTreeSet<String>,
    columns: BTreeSet<String>,
}

impl Found {
    fn walk(&mut self, v: &Value) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i)),
            Value::Object(map) => {
                // A RangeVar, tagged as a node or as a typed field (a
                // policy's table, an UPDATE's relation): known by its keys.
                if map.contains_key("relname") && map.contains_key("relpersistence") {
                    let s = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("");
                    self.relations
                        .insert(Name::new(s("schemaname"), s("relname")));
                }
                for (key, inner) in map {
                    match key.as_str() {
                        "FuncCall" => {
                            if let Some(n) = inner.get("funcname").and_then(name_list) {
                                self.functions.insert(n);
                            }
                        }
                        "ColumnRef" => {
                            let fields = inner.get("fields").and_then(Value::as_array);
                            for f in fields.into_iter().flatten() {
                                if let Some(n) =
                                    f.pointer("/node/String/sval").and_then(Value::as_str)
                                {
                                    self.columns.insert(n.to_string());
                                }
                            }
                        }
                        "CommonTableExpr" => {
                            if let Some(c) = inner.get("ctename").and_then(Value::as_str) {
                                self.ctes.insert(c.to_string());
                            }
                        }
                        _ => {}
                    }
                    self.walk(inner);
                }
            }
            _ => {}
        }
    }
}

/// A qualified name from a list of `String` nodes.
fn name_list(v: &Value) -> Option<Name> {
    let parts: Vec<String> = v
        .as_array()?
        .iter()
        .filter_map(|n| {
            n.get("node")?
                .get("String")?
                .get("sval")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    Name::from_parts(&parts)
}

/// What the plpgsql function defined by `create_function` (a whole
/// `CREATE FUNCTION` statement) uses. libpg_query's plpgsql parser refuses
/// some bodies (variables typed from schemas other than public and
/// pg_catalog; some row references): those are read token by token with
/// the SQL scanner instead, which finds their schema-qualified names.
pub fn plpgsql_uses(create_function: &str, body: &str) -> Uses {
    match pg_query::parse_plpgsql(create_function) {
        Ok(tree) => {
            let mut out = Uses::default();
            walk(&tree, &mut out);
            out
        }
        // What the scanner finds is all there is to know: it still counts
        // as not parsed (unqualified names are missed).
        Err(_) => Uses {
            unparsed: 1,
            ..scanned_uses(body).unwrap_or_default()
        },
    }
}

/// The schema-qualified names in `text`, from its tokens: `a.b(` is a
/// function call, any other `a.b` (or `a.b.c`, a column) a relation.
/// Unqualified names are not found this way.
pub fn scanned_uses(text: &str) -> Option<Uses> {
    use pg_query::protobuf::{KeywordKind, Token};
    let scanned = pg_query::scan(text).ok()?;
    let toks = &scanned.tokens;
    let name = |i: usize| -> Option<String> {
        let t = toks.get(i)?;
        let is_name = t.token == Token::Ident as i32
            || (t.keyword_kind != KeywordKind::NoKeyword as i32
                && t.keyword_kind != KeywordKind::ReservedKeyword as i32);
        let raw = text.get(t.start as usize..t.end as usize)?;
        is_name.then(|| {
            if raw.starts_with('"') {
                raw.trim_matches('"').replace("\"\"", "\"")
            } else {
                raw.to_ascii_lowercase()
            }
        })
    };
    let is = |i: usize, tok: Token| toks.get(i).is_some_and(|t| t.token == tok as i32);
    let mut out = Uses::default();
    let mut i = 0;
    while i < toks.len() {
        let qualified = !(i > 0 && is(i - 1, Token::Ascii46));
        match (qualified, name(i), is(i + 1, Token::Ascii46), name(i + 2)) {
            (true, Some(a), true, Some(b)) => {
                if is(i + 3, Token::Ascii40) {
                    out.functions.insert(Name::new(&a, &b));
                } else {
                    out.relations.insert(Name::new(&a, &b));
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Some(out)
}

fn walk(v: &Value, out: &mut Uses) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    "PLpgSQL_expr" => expr(inner, out),
                    "PLpgSQL_type" => row_type(inner, out),
                    "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => {
                        out.dynamic_sql = true;
                    }
                    "PLpgSQL_stmt_open" if inner.get("dynquery").is_some() => {
                        out.dynamic_sql = true;
                    }
                    _ => {}
                }
                walk(inner, out);
            }
        }
        _ => {}
    }
}

/// One embedded statement or expression. `parseMode` is PostgreSQL's
/// RawParseMode: 0 a statement, 2 an expression, 3–5 an assignment
/// (`target := expression`).
fn expr(v: &Value, out: &mut Uses) {
    let Some(query) = v.get("query").and_then(Value::as_str) else {
        return;
    };
    let mode = v.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
    let sql = match mode {
        0 => query.to_string(),
        3..=5 => match assignment_value(query) {
            Some(value) => format!("SELECT {value}"),
            None => {
                out.unparsed += 1;
                return;
            }
        },
        _ => format!("SELECT {query}"),
    };
    match of_sql(&sql) {
        Some(u) => out.extend(u),
        None => out.unparsed += 1,
    }
}

/// The value side of `target := value` (or `target = value`), found with
/// the SQL scanner so a `:=` inside a string is not taken for it.
fn assignment_value(query: &str) -> Option<&str> {
    let scanned = pg_query::scan(query).ok()?;
    let assign = scanned.tokens.iter().find(|t| {
        t.token == pg_query::protobuf::Token::ColonEquals as i32
            || t.token == pg_query::protobuf::Token::Ascii61 as i32
    })?;
    query.get(assign.end as usize..)
}

/// `auth.users%rowtype`, `public.t.col%type`: the relation they name.
fn row_type(v: &Value, out: &mut Uses) {
    let Some(name) = v.get("typname").and_then(Value::as_str) else {
        return;
    };
    let lower = name.to_ascii_lowercase();
    let (base, column_type) = if let Some(b) = lower.strip_suffix("%rowtype") {
        (b, false)
    } else if let Some(b) = lower.strip_suffix("%type") {
        (b, true)
    } else {
        return;
    };
    let mut parts: Vec<String> = base
        .split('.')
        .map(|p| p.trim_matches('"').to_string())
        .collect();
    if column_type {
        // a.b.c%type is column c of a.b; b%type alone is a variable's type.
        if parts.len() < 2 {
            return;
        }
        parts.pop();
    }
    if let Some(n) = Name::from_parts(&parts) {
        out.relations.insert(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_and_types_are_read() {
        let u = plpgsql_uses(
            "create function f() returns void language plpgsql as $$
             declare a public.t.c%type; b storage.objects%rowtype; x int;
             begin
               x := 'a:=b' || (select count(*) from public.u);
               x = length(':=');
             end $$",
            "",
        );
        let rels: Vec<String> = u.relations.iter().map(|n| n.to_string()).collect();
        assert_eq!(rels, ["public.t", "public.u", "storage.objects"]);
        assert_eq!(u.unparsed, 0);
        assert!(u.functions.iter().any(|f| f.name == "length"));
    }

    #[test]
    fn a_body_that_does_not_parse_counts_as_unparsed() {
        let u = plpgsql_uses(
            "create function f() returns void language plpgsql as $$ begin whatever; end $$",
            "begin whatever; end",
        );
        assert!(u.unparsed > 0);
    }

    #[test]
    fn bodies_libpg_query_refuses_are_scanned() {
        let body = "declare r extensions.http_response;
begin
  r := extensions.http_get('https://x?a=1' || cur);
  perform realtime.broadcast_changes('t', tg_op, new, old);
  select count(*) into n from public.notes where owner = auth.uid();
end";
        let f =
            format!("create function f(cur text) returns void language plpgsql as $$ {body} $$");
        let u = plpgsql_uses(&f, body);
        let funcs: Vec<String> = u.functions.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            funcs,
            [
                "auth.uid",
                "extensions.http_get",
                "realtime.broadcast_changes"
            ]
        );
        assert!(u.relations.iter().any(|r| r.is("public", "notes")));
        assert_eq!(u.unparsed, 1, "read by the scanner, not parsed");
    }
}
