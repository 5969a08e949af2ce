//! What a query of the application's reads: a statement from
//! `pg_stat_statements`, parsed (libpg_query) to tell a plain read of the
//! application's tables from anything else, and how many parameters it
//! takes.

/// A single SELECT (no locking clause, no INTO, no data-modifying WITH)
/// reading at least one table of `schemas` and nothing of the catalogs or
/// of supamigrate's own.
pub fn reads_only(query: &str, schemas: &[String]) -> bool {
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
    let tables = parsed.tables();
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

/// The highest `$n` of a normalized statement (from its parse tree).
pub fn parameters(query: &str) -> usize {
    let Ok(parsed) = pg_query::parse(query, pg_query::ParserOptions::DEFAULT) else {
        return 0;
    };
    parsed
        .protobuf
        .nodes()
        .iter()
        .filter_map(|(n, ..)| match n {
            pg_query::NodeRef::ParamRef(p) => usize::try_from(p.number).ok(),
            _ => None,
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
    }
}
