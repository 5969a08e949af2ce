//! What a query of the application's reads: a statement from
//! `pg_stat_statements`, parsed (libpg_query) to tell a plain read of the
//! application's tables from anything else, and how many parameters it
//! takes.

/// A single SELECT (no locking clause, no INTO, no data-modifying WITH)
/// reading at least one table of `schemas` and nothing of the catalogs or
/// of supamigrate's own, and not one of our own reads ([`is_own`]).
pub fn reads_only(query: &str, schemas: &[String]) -> bool {
    if is_own(query) {
        return false;
    }
    let Ok(parsed) = pg_query::parse(query, pg_query::ParserOptions::DEFAULT) else {
        return false;
    };
    if parsed.protobuf.stmts.len() != 1 {
        return false;
    }
    let node = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref());
    let Some(pg_query::NodeEnum::SelectStmt(sel)) = node else {
        return false;
    };
    if !sel.locking_clause.is_empty() || sel.into_clause.is_some() {
        return false;
    }
    // A WITH whose queries write (`with d as (delete …) select …`).
    let writes = sel.with_clause.as_ref().is_some_and(|w| {
        w.ctes.iter().any(|c| match &c.node {
            Some(pg_query::NodeEnum::CommonTableExpr(cte)) => !matches!(
                cte.ctequery.as_ref().and_then(|q| q.node.as_ref()),
                Some(pg_query::NodeEnum::SelectStmt(_))
            ),
            _ => true,
        })
    });
    if writes {
        return false;
    }
    let tables = parsed.select_tables();
    if tables.is_empty() {
        return false;
    }
    let ours = |t: &str| {
        let schema = t.split_once('.').map_or("public", |(s, _)| s);
        schemas.iter().any(|s| s == schema)
    };
    let foreign = |t: &str| {
        let schema = t.split_once('.').map(|(s, _)| s);
        matches!(
            schema,
            Some("pg_catalog" | "information_schema" | "supamigrate" | "extensions")
        ) || t.starts_with("pg_")
    };
    tables.iter().any(|t| ours(t)) && !tables.iter().any(|t| foreign(t))
}

/// The relations a statement reads (`schema.name`, or a bare name), from
/// its parse tree.
pub fn relations(query: &str) -> Vec<String> {
    pg_query::parse(query, pg_query::ParserOptions::DEFAULT)
        .map(|p| p.select_tables())
        .unwrap_or_default()
}

/// Whether `query` is one of ours: its first token is the comment
/// [`crate::sql::OWN`].
pub fn is_own(query: &str) -> bool {
    let Ok(tokens) = pg_query::scan_tokens(query) else {
        return false;
    };
    tokens.first().is_some_and(|t| {
        t.token == pg_query::protobuf::Token::CComment as i32
            && usize::try_from(t.start)
                .ok()
                .zip(usize::try_from(t.end).ok())
                .and_then(|(a, b)| query.get(a..b))
                == Some(super::OWN)
    })
}

/// The highest `$n` of a normalized statement, from libpg_query's scanner
/// (its parameter tokens, wherever they stand: the parse tree's walk does
/// not reach every clause, e.g. OFFSET; a `$1` in a string or a comment is
/// not a parameter token).
pub fn parameters(query: &str) -> usize {
    let Ok(tokens) = pg_query::scan_tokens(query) else {
        return 0;
    };
    tokens
        .iter()
        .filter(|t| t.token == pg_query::protobuf::Token::Param as i32)
        .filter_map(|t| {
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            query.get(start + 1..end)?.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_of_the_application_s_tables_are_compared() {
        let app = vec!["public".to_string()];
        for (q, want) in [
            ("select * from public.notes where owner = $1", true),
            (
                "select n.* from notes n join teams t on t.id = n.team_id",
                true,
            ),
            ("update public.notes set title = $1", false),
            ("select * from public.notes for update", false),
            ("select count(*) from pg_catalog.pg_class", false),
            ("select * from supamigrate.follow", false),
            ("select $1", false),
            ("select 1; select 2", false),
            ("/* supamigrate */ select count(*) from public.notes", false),
            ("/* the app */ select count(*) from public.notes", true),
            (&crate::sql::own("select * from notes where id = $1"), false),
            (
                "with d as (delete from public.notes returning *) select * from d",
                false,
            ),
        ] {
            assert_eq!(reads_only(q, &app), want, "{q}");
        }
    }

    #[test]
    fn parameters_are_counted() {
        assert_eq!(parameters("select * from t where a = $1 and b = $12"), 12);
        assert_eq!(parameters("select 1"), 0);
        // In a subquery of FROM, in a cast's argument, in OFFSET.
        assert_eq!(
            parameters("select count(*), sum(($1 || left(h, $2))::bit(64)::bigint) from (select md5(x) as h from t where $4 offset $5) s"),
            5
        );
        assert_eq!(
            parameters("select (h.event_time at time zone $1)::date as day from h where h.a > now() - $2::interval"),
            2
        );
        assert_eq!(parameters("select '$7' /* $8 */ from t where a = $1"), 1);
    }
}
