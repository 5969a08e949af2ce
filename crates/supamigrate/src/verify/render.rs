//! The verify report as terminal text or Markdown. Pure.

use std::fmt::Write;

use super::content::{DiffKind, RowDiff};
use super::{Method, TableResult, VerifyReport};

const OK: &str = "✓";
const BAD: &str = "✗";

fn value(v: &Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) => {
            let short: String = s.chars().take(60).collect();
            let tail = if s.chars().count() > 60 { "…" } else { "" };
            format!("'{}{tail}'", short.replace('\'', "''"))
        }
    }
}

/// One differing row as a line: `changed id='…': status 'a' → 'b'`.
pub fn row_line(d: &RowDiff) -> String {
    let key = d
        .key
        .iter()
        .map(|kv| format!("{}={}", kv.column, value(&kv.value)))
        .collect::<Vec<_>>()
        .join(", ");
    let copies = if d.copies > 1 {
        format!(" ×{}", d.copies)
    } else {
        String::new()
    };
    match d.kind {
        DiffKind::Missing => format!("missing on the target{copies}: {key}"),
        DiffKind::Extra => format!("extra on the target{copies}: {key}"),
        DiffKind::Changed => {
            let cols = d
                .columns
                .iter()
                .map(|c| format!("{}: {} → {}", c.column, value(&c.source), value(&c.target)))
                .collect::<Vec<_>>()
                .join("; ");
            format!("changed{copies} ({key}): {cols}")
        }
    }
}

fn status(t: &TableResult) -> &'static str {
    if t.matches() {
        "✓ MATCH"
    } else if t.method == Method::NotOnTarget {
        "✗ NOT ON TARGET"
    } else if t.source_rows != t.target_rows {
        "✗ COUNT MISMATCH"
    } else {
        "✗ CONTENT MISMATCH"
    }
}

/// One group of findings: a title and (ok, line) pairs.
type Group = (&'static str, Vec<(bool, String)>);

fn foreign_keys(r: &VerifyReport) -> Group {
    let mut fk = Vec::new();
    let bad: Vec<_> = r.orphans.iter().filter(|o| !o.matches()).collect();
    for o in &bad {
        let fkey = &o.foreign_key;
        let nv = if fkey.validated { "" } else { " (NOT VALID)" };
        fk.push((
            false,
            format!(
                "{} on {}{nv}: {} row(s) on the target reference no row of {}{}",
                fkey.name,
                fkey.table,
                o.target_rows,
                fkey.ref_table,
                o.source_rows
                    .map(|n| format!(" (source: {n})"))
                    .unwrap_or_default()
            ),
        ));
    }
    if bad.is_empty() {
        let not_valid = r
            .orphans
            .iter()
            .filter(|o| !o.foreign_key.validated)
            .count();
        fk.push((
            true,
            format!(
                "{} foreign keys ({not_valid} NOT VALID), no orphan rows",
                r.orphans.len()
            ),
        ));
    }
    ("Foreign keys", fk)
}

fn sequences(r: &VerifyReport) -> Group {
    let mut seq: Vec<(bool, String)> = r
        .sequences
        .iter()
        .filter(|s| !s.problems.is_empty())
        .map(|s| (false, format!("{}: {}", s.sequence, s.problems.join("; "))))
        .collect();
    if seq.is_empty() {
        seq.push((
            true,
            format!(
                "{} sequences equal to the source and ahead of their columns",
                r.sequences.len()
            ),
        ));
    }
    ("Sequences", seq)
}

fn checks(r: &VerifyReport) -> Group {
    let lines = r
        .checks
        .iter()
        .map(|c| match &c.skipped {
            Some(why) => (true, format!("{}: skipped ({why})", c.name)),
            None if c.matches() => (
                true,
                format!("{}: same {} row(s) on both sides", c.name, c.source.len()),
            ),
            None => (
                false,
                format!(
                    "{}: source [{}] target [{}]",
                    c.name,
                    c.source.join(" | "),
                    c.target.join(" | ")
                ),
            ),
        })
        .collect();
    ("Application checks", lines)
}

fn references(r: &VerifyReport) -> Option<Group> {
    let rewritten: Vec<String> = r
        .tables
        .iter()
        .flat_map(|t| {
            t.not_compared
                .iter()
                .map(move |c| format!("{}.{c}", t.source))
        })
        .collect();
    if rewritten.is_empty() {
        return None;
    }
    let mut lines: Vec<(bool, String)> = r
        .storage_references
        .iter()
        .map(|r| {
            (
                false,
                format!(
                    "{}: {} value(s) still point at Supabase Storage",
                    r.column, r.rows
                ),
            )
        })
        .collect();
    for m in &r.reference_mismatches {
        lines.push((
            false,
            format!(
                "{} [{}]: {} is not where {} went",
                m.column,
                m.key,
                value(&m.target),
                value(&m.source)
            ),
        ));
    }
    if lines.is_empty() {
        lines.push((
            true,
            format!(
                "{} rewritten by storage copy: every value is the new location of the source's, none points at Supabase Storage",
                rewritten.join(", ")
            ),
        ));
    }
    Some(("Storage references", lines))
}

fn inventory(r: &VerifyReport) -> Group {
    let inv = &r.inventory;
    let mut lines = Vec::new();
    for o in &inv.missing {
        lines.push((false, format!("missing on the target: {o}")));
    }
    for o in &inv.unexpected {
        lines.push((false, format!("not planned by the conversion: {o}")));
    }
    for d in &inv.different {
        let (o, planned, found) = (&d.object, &d.planned, &d.found);
        let show = |s: &str| {
            if s.is_empty() {
                "(plain)".to_string()
            } else {
                s.to_string()
            }
        };
        lines.push((
            false,
            format!("{o}: planned {}, found {}", show(planned), show(found)),
        ));
    }
    if lines.is_empty() {
        lines.push((
            true,
            format!("all {} planned objects present, nothing else", inv.planned),
        ));
    }
    ("Schema inventory", lines)
}

fn code(r: &VerifyReport) -> Group {
    let c = &r.code;
    let mut lines = Vec::new();
    for u in &c.unresolved {
        lines.push((
            false,
            format!(
                "{} uses {}, which the target does not have: it would fail when it runs",
                u.object, u.reference
            ),
        ));
    }
    for e in &c.body_errors {
        let line = e.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        lines.push((
            false,
            format!("plpgsql_check: {}{line}: {}", e.function, e.message),
        ));
    }
    for e in &c.sql_errors {
        lines.push((
            false,
            format!(
                "SQL function {} does not compile on the target (it does on the source): {}; it would fail when it runs",
                e.function, e.message
            ),
        ));
    }
    for d in &c.column_differences {
        lines.push((
            false,
            format!(
                "column {}: {} is {} on the source, {} on the target",
                d.column, d.what, d.source, d.target
            ),
        ));
    }
    if lines.is_empty() {
        lines.push((
            true,
            format!(
                "{} functions, views, policies and triggers resolve what they use; {} SQL functions compile{}; {} columns keep NOT NULL and defaults",
                c.objects,
                c.sql_checked,
                if c.plpgsql_check {
                    format!("; plpgsql_check passed {} functions", c.bodies_checked)
                } else {
                    " (plpgsql_check is not installed on the target: checked against its catalog)".to_string()
                },
                c.columns
            ),
        ));
    }
    ("Application code", lines)
}

/// Planner statistics: each table that lacks them, or one line for all.
fn statistics(r: &VerifyReport, every_table: bool) -> Option<Group> {
    if r.statistics.is_empty() {
        return None;
    }
    let mut lines: Vec<(bool, String)> = r
        .statistics
        .iter()
        .filter(|s| every_table || !s.matches())
        .map(|s| (s.matches(), s.describe()))
        .collect();
    if !every_table && lines.is_empty() {
        let (pages, visible) = r
            .statistics
            .iter()
            .fold((0, 0), |(p, v), s| (p + s.pages, v + s.all_visible));
        lines.push((
            true,
            format!(
                "{} tables have planner statistics, estimates within 10% of their rows; {}% of {pages} pages all-visible",
                r.statistics.len(),
                if pages > 0 { visible * 100 / pages } else { 100 }
            ),
        ));
    }
    Some(("Statistics", lines))
}

/// Findings other than the per-table ones.
fn findings(r: &VerifyReport) -> Vec<Group> {
    findings_with(r, false)
}

fn findings_with(r: &VerifyReport, every_table: bool) -> Vec<Group> {
    let mut out = Vec::new();
    if !r.schema_drift.is_empty() {
        out.push((
            "The source's schema changed since the plan (not on the target, not compared)",
            r.schema_drift
                .iter()
                .map(|d| (false, d.to_string()))
                .collect(),
        ));
    }
    out.extend([foreign_keys(r), sequences(r)]);
    out.extend(statistics(r, every_table));
    if !r.extension_config.is_empty() {
        out.push((
            "Extension configuration",
            r.extension_config
                .iter()
                .map(|c| (c.matches(), c.describe()))
                .collect(),
        ));
    }
    if !r.checks.is_empty() {
        out.push(checks(r));
    }
    out.extend(references(r));
    out.push(inventory(r));
    out.push(code(r));
    if let Some(app) = &r.app {
        out.extend(super::app::groups(app));
    }
    out
}

fn summary(r: &VerifyReport) -> String {
    let n = r.mismatches();
    if n == 0 {
        format!(
            "verify: everything matches ({} tables, {:.1} s)",
            r.tables.len(),
            r.seconds
        )
    } else {
        format!("verify: {n} mismatch(es) ({:.1} s)", r.seconds)
    }
}

fn table_details(t: &TableResult) -> Vec<String> {
    let mut lines = Vec::new();
    if !t.missing_columns.is_empty() {
        lines.push(format!(
            "columns missing on the target (not compared): {}",
            t.missing_columns.join(", ")
        ));
    }
    lines.extend(t.diffs.iter().map(row_line));
    if t.truncated {
        lines.push("… more rows differ (raise --max-rows to list them)".to_string());
    }
    if t.diffs.is_empty() && t.differing_chunks > 0 && !t.truncated {
        lines.push(format!("{} chunk(s) differ", t.differing_chunks));
    }
    lines
}

/// The report for a terminal.
pub fn text(r: &VerifyReport) -> String {
    let mut s = String::new();
    let width = r
        .tables
        .iter()
        .map(|t| t.label().chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        s,
        "{:<width$} {:>12} {:>12}  STATUS",
        "TABLE", "SOURCE", "TARGET"
    );
    for t in &r.tables {
        // Format widths count characters, so `→` takes one column.
        let _ = writeln!(
            s,
            "{:<width$} {:>12} {:>12}  {}",
            t.label(),
            t.source_rows,
            t.target_rows,
            status(t)
        );
    }
    for t in r.tables.iter().filter(|t| !t.matches()) {
        let details = table_details(t);
        if details.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{BAD} {}", t.label());
        for l in details {
            let _ = writeln!(s, "    {l}");
        }
    }
    for (title, lines) in findings(r) {
        let _ = writeln!(s, "\n{title}");
        for (ok, l) in lines {
            let _ = writeln!(s, "  {} {l}", if ok { OK } else { BAD });
        }
    }
    let _ = writeln!(s, "\n{}", summary(r));
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown.
pub fn markdown(r: &VerifyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# supamigrate verify\n\n**{}**\n", summary(r));
    let _ = writeln!(
        s,
        "## Tables\n\n| Table | Source rows | Target rows | Status |\n|---|---:|---:|---|"
    );
    for t in &r.tables {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            md_cell(&t.label()),
            t.source_rows,
            t.target_rows,
            status(t)
        );
    }
    for t in r.tables.iter().filter(|t| !t.matches()) {
        let details = table_details(t);
        if details.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {BAD} {}\n", md_cell(&t.label()));
        for l in details {
            let _ = writeln!(s, "- {}", md_cell(&l));
        }
    }
    for (title, lines) in findings_with(r, true) {
        let _ = writeln!(s, "\n## {title}\n");
        for (ok, l) in lines {
            let _ = writeln!(s, "- {} {}", if ok { OK } else { BAD }, md_cell(&l));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::content::{ColumnDiff, KeyValue};

    #[test]
    fn row_lines_name_the_key_and_each_column() {
        let d = RowDiff {
            kind: DiffKind::Changed,
            key: vec![KeyValue {
                column: "id".into(),
                value: Some("7".into()),
            }],
            columns: vec![
                ColumnDiff {
                    column: "note".into(),
                    source: None,
                    target: Some(String::new()),
                },
                ColumnDiff {
                    column: "name".into(),
                    source: Some("O'Brien".into()),
                    target: Some("x".repeat(70)),
                },
            ],
            copies: 1,
        };
        assert_eq!(
            row_line(&d),
            format!(
                "changed (id='7'): note: NULL → ''; name: 'O''Brien' → '{}…'",
                "x".repeat(60)
            )
        );
        let m = RowDiff {
            kind: DiffKind::Extra,
            key: vec![KeyValue {
                column: "a".into(),
                value: None,
            }],
            columns: vec![],
            copies: 3,
        };
        assert_eq!(row_line(&m), "extra on the target ×3: a=NULL");
    }
}
