//! What a statement uses: the relations it reads or writes and the
//! functions it calls, from its parse tree, function bodies included (SQL
//! bodies parsed as SQL, plpgsql bodies through libpg_query's plpgsql
//! parser, see [`super::plpgsql`]).

use pg_query::protobuf::CreateFunctionStmt;
use pg_query::NodeEnum;

pub use super::names::{Name, Uses};
use super::{parts, Statement};

/// What `st` uses: its tree, and for `CREATE FUNCTION` its body.
pub fn of_statement(st: &Statement) -> Uses {
    let Some(node) = st.node() else {
        return Uses::default();
    };
    let node = &node;
    let mut uses = of_node(node);
    if let NodeEnum::CreateFunctionStmt(f) = node {
        uses.extend(of_function_body(f, &st.text));
    }
    // The relation a statement creates is not one it uses.
    let created = match node {
        NodeEnum::ViewStmt(v) => v.view.as_ref(),
        NodeEnum::CreateStmt(c) => c.relation.as_ref(),
        NodeEnum::CreateTableAsStmt(c) => c.into.as_ref().and_then(|i| i.rel.as_ref()),
        _ => None,
    };
    if let Some(rv) = created {
        uses.relations
            .remove(&Name::new(&rv.schemaname, &rv.relname));
    }
    if let NodeEnum::CreateTrigStmt(t) = node {
        let parts = parts(&t.funcname);
        if let Some(n) = Name::from_parts(&parts) {
            uses.functions.insert(n);
        }
    }
    uses
}

/// What a parsed tree uses (relations, function calls), CTE names left out.
pub fn of_node(node: &NodeEnum) -> Uses {
    super::tree::node_uses(node)
}

pub use super::tree::of_sql;

/// The language of a `CREATE FUNCTION` (lowercase; `sql` by default).
pub fn language(f: &CreateFunctionStmt) -> String {
    option(f, "language")
        .and_then(|a| match a {
            NodeEnum::String(s) => Some(s.sval.to_ascii_lowercase()),
            _ => None,
        })
        .unwrap_or_else(|| "sql".to_string())
}

/// The body of a `CREATE FUNCTION … AS '…'` (not for `BEGIN ATOMIC`).
pub fn body(f: &CreateFunctionStmt) -> Option<String> {
    match option(f, "as")? {
        NodeEnum::List(l) => l.items.first().and_then(|i| match i.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        }),
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

fn option<'a>(f: &'a CreateFunctionStmt, name: &str) -> Option<&'a NodeEnum> {
    f.options.iter().find_map(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == name => {
            d.arg.as_ref().and_then(|a| a.node.as_ref())
        }
        _ => None,
    })
}

/// What a function's body uses. `text` is the whole `CREATE FUNCTION`
/// statement (the plpgsql parser reads it).
fn of_function_body(f: &CreateFunctionStmt, text: &str) -> Uses {
    if f.sql_body.is_some() {
        // BEGIN ATOMIC: the body is part of the tree, walked already.
        return Uses::default();
    }
    let Some(body) = body(f) else {
        return Uses::default();
    };
    match language(f).as_str() {
        "sql" => of_sql(&body).unwrap_or(Uses {
            unparsed: 1,
            ..Uses::default()
        }),
        "plpgsql" => super::tree::plpgsql_uses(text, &body),
        "c" | "internal" => Uses::default(),
        _ => Uses {
            unparsed: 1,
            ..Uses::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(sql: &str) -> (Vec<String>, Vec<String>, bool) {
        let st = Statement::parse(sql).unwrap();
        let u = of_statement(&st);
        (
            u.relations.iter().map(|n| n.to_string()).collect(),
            u.functions.iter().map(|n| n.to_string()).collect(),
            u.dynamic_sql,
        )
    }

    #[test]
    fn statements_and_bodies_name_what_they_use() {
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            bool,
        );
        let cases: &[Case] = &[
            (
                "create view public.v as with x as (select 1) select * from x join auth.users u on true",
                &["auth.users"],
                &[],
                false,
            ),
            (
                "create policy p on public.t using (exists (select 1 from auth.users where id = auth.uid()))",
                &["auth.users", "public.t"],
                &["auth.uid"],
                false,
            ),
            (
                "create function public.f() returns int language sql as $$ select count(*) from storage.objects where storage.foldername(name) is not null $$",
                &["storage.objects"],
                &["count", "storage.foldername"],
                false,
            ),
            (
                "create function public.g(uid uuid) returns void language plpgsql security definer set search_path = '' as $$
                 declare r auth.users%rowtype; n int;
                 begin
                   update auth.users set raw_app_meta_data = '{}' where id = uid;
                   n := (select count(*) from public.notes);
                   if exists (select 1 from auth.identities) then perform net.http_post(url := 'x'); end if;
                   execute format('select 1');
                 end $$",
                &["auth.identities", "auth.users", "public.notes"],
                &["count", "format", "net.http_post"],
                true,
            ),
            (
                "create trigger t after insert on public.orders for each row execute function supabase_functions.http_request('https://x', 'POST', '{}', '{}', '1000')",
                &["public.orders"],
                &["supabase_functions.http_request"],
                false,
            ),
            (
                "create function public.h() returns int language sql begin atomic select count(*) from public.notes; end",
                &["public.notes"],
                &["count"],
                false,
            ),
        ];
        for (sql, rels, funcs, dynamic) in cases {
            let (r, f, d) = uses(sql);
            assert_eq!(r, *rels, "relations of {sql}");
            assert_eq!(f, *funcs, "functions of {sql}");
            assert_eq!(d, *dynamic, "dynamic sql in {sql}");
        }
    }

    #[test]
    fn other_languages_count_as_unparsed() {
        let st = Statement::parse(
            "create function public.j() returns int language plv8 as $$ return 1 $$",
        )
        .unwrap();
        assert_eq!(of_statement(&st).unparsed, 1);
    }
}
