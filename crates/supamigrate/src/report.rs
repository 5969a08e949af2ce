//! The migration report: one self-contained HTML file (no scripts, no
//! network: inline CSS and SVG) and the same facts as JSON, built from the
//! run's state. Pure except for writing the two files.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::run::RunState;

/// A checklist item's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tick {
    /// Done by this step.
    Done(String),
    /// Not done yet; the step that does it.
    Pending(String),
    /// No tool can do it: yours to do.
    Manual,
}

/// One item of the runbook's Migration Execution Checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its section.
    pub section: &'static str,
    /// Its text.
    pub text: &'static str,
    /// Its state.
    pub tick: Tick,
}

/// (section, item, the step that does it or "" when manual).
const CHECKLIST: &[(&str, &str, &str)] = &[
    ("Pre-Migration", "Backup Supabase database", "backup"),
    ("Pre-Migration", "Test backup restoration", "backup"),
    ("Pre-Migration", "Verify RDS instance is ready", "preflight"),
    (
        "Pre-Migration",
        "Test network connectivity to RDS",
        "preflight",
    ),
    ("Pre-Migration", "Schedule maintenance window", ""),
    (
        "Schema Migration",
        "Export Supabase schema",
        "schema-pre-data",
    ),
    (
        "Schema Migration",
        "Convert schema (auth.users → app_users)",
        "schema-pre-data",
    ),
    ("Schema Migration", "Apply schema to RDS", "post-data"),
    ("Schema Migration", "Verify all tables created", "verify"),
    ("Schema Migration", "Verify all indexes created", "verify"),
    ("Schema Migration", "Verify all functions created", "verify"),
    ("Data Migration", "Export user data", "users-and-data"),
    ("Data Migration", "Export all table data", "users-and-data"),
    (
        "Data Migration",
        "Import users to app_users",
        "users-and-data",
    ),
    ("Data Migration", "Import all table data", "users-and-data"),
    ("Data Migration", "Reset sequences", "sequences"),
    ("Data Migration", "Validate row counts", "verify"),
    ("Data Migration", "Validate data integrity", "verify"),
    (
        "Storage Migration",
        "Download Supabase storage files",
        "storage",
    ),
    ("Storage Migration", "Upload to S3", "storage"),
    (
        "Storage Migration",
        "Update file path references",
        "storage",
    ),
    ("Storage Migration", "Verify file accessibility", "storage"),
    (
        "Application Updates",
        "Update database connection strings",
        "",
    ),
    (
        "Application Updates",
        "Update authentication to use new user table",
        "",
    ),
    (
        "Application Updates",
        "Deploy updated Edge Functions to Lambda",
        "",
    ),
    ("Application Updates", "Update storage references to S3", ""),
    ("Application Updates", "Test all critical paths", ""),
    ("Post-Migration", "Monitor error rates", ""),
    ("Post-Migration", "Verify tracking functionality", ""),
    ("Post-Migration", "Verify user authentication", ""),
    ("Post-Migration", "Performance testing", ""),
    ("Post-Migration", "Update documentation", ""),
];

/// The checklist as `state` has it.
pub fn checklist(state: &RunState) -> Vec<Item> {
    CHECKLIST
        .iter()
        .map(|(section, text, step)| Item {
            section,
            text,
            tick: if step.is_empty() {
                Tick::Manual
            } else if state.get(step).is_some() {
                Tick::Done(step.to_string())
            } else {
                Tick::Pending(step.to_string())
            },
        })
        .collect()
}

/// The checklist as text lines (`[x]`, `[ ]`, `[manual]`).
pub fn checklist_text(state: &RunState) -> String {
    let mut s = String::new();
    let mut section = "";
    for i in checklist(state) {
        if i.section != section {
            section = i.section;
            let _ = writeln!(s, "{section}");
        }
        let mark = match &i.tick {
            Tick::Done(_) => "[x]",
            Tick::Pending(_) => "[ ]",
            Tick::Manual => "[manual]",
        };
        let _ = writeln!(s, "  {mark} {}", i.text);
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Per-table copy figures: (table, rows, bytes, seconds).
fn copy_tables(state: &RunState) -> Vec<(String, i64, i64, f64)> {
    state
        .get("users-and-data")
        .and_then(|s| s.detail.get("tables"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["table"].as_str().unwrap_or("").to_string(),
                        t["rows"].as_i64().unwrap_or(0),
                        t["bytes"].as_i64().unwrap_or(0),
                        t["seconds"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Horizontal bars of MB/s per table (largest tables first), as inline SVG.
fn throughput_svg(tables: &[(String, i64, i64, f64)]) -> String {
    let mut rows: Vec<&(String, i64, i64, f64)> = tables.iter().filter(|t| t.2 > 0).collect();
    rows.sort_by_key(|b| std::cmp::Reverse(b.2));
    rows.truncate(15);
    let rate = |t: &(String, i64, i64, f64)| t.2 as f64 / 1e6 / t.3.max(1e-3);
    let max = rows
        .iter()
        .map(|t| rate(t))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (bar_h, left, width) = (22, 240, 420);
    let mut s = format!(
        "<svg role=\"img\" aria-label=\"Copy throughput per table\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        left + width + 90,
        rows.len() * bar_h + 10
    );
    for (i, t) in rows.iter().enumerate() {
        let y = i * bar_h + 5;
        let w = (rate(t) / max * width as f64).max(1.0);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#3b82f6\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{:.1} MB/s</text>",
            left - 6,
            y + 15,
            esc(&t.0),
            bar_h - 6,
            left as f64 + w + 4.0,
            y + 15,
            rate(t)
        );
    }
    s.push_str("</svg>");
    s
}

/// The HTML report for `state`.
pub fn html(state: &RunState) -> String {
    let mut h = String::new();
    let verify = state.get("verify");
    let green = verify
        .and_then(|v| v.detail.get("mismatches"))
        .and_then(Value::as_u64)
        == Some(0);
    let headline = match (verify, &state.failed) {
        (_, Some((step, msg))) => {
            format!("✗ stopped at {step}: {}", msg.lines().next().unwrap_or(""))
        }
        (Some(_), None) if green => {
            "✓ Migration complete: verify found every table, object and check matching".to_string()
        }
        (Some(_), None) => "✗ verify found mismatches".to_string(),
        (None, None) => "Migration in progress".to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>supamigrate report</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#111}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         td.n{{text-align:right}}.ok{{color:#15803d}}.bad{{color:#b91c1c}}.manual{{color:#92400e}}\
         pre{{background:#f4f4f5;padding:1em;overflow-x:auto}}</style></head><body>\
         <h1>supamigrate report</h1><p id=\"headline\" class=\"{}\"><strong>{}</strong></p>\
         <p>Source: {} → target: {}</p>",
        if green && state.failed.is_none() { "ok" } else { "bad" },
        esc(&headline),
        esc(&state.source),
        esc(&state.target)
    );

    if let Some((step, msg)) = &state.failed {
        let _ = write!(
            h,
            "<h2>Stopped</h2><p class=\"bad\">The run stopped at <strong>{}</strong>. \
             Fix the cause and run again: finished steps are kept.</p><pre id=\"failure\">{}</pre>",
            esc(step),
            esc(msg)
        );
    }
    h.push_str("<h2>Migration Execution Checklist</h2>");
    let mut section = "";
    for i in checklist(state) {
        if i.section != section {
            if !section.is_empty() {
                h.push_str("</ul>");
            }
            section = i.section;
            let _ = write!(h, "<h3>{}</h3><ul class=\"checklist\">", esc(section));
        }
        let (class, mark, note) = match &i.tick {
            Tick::Done(s) => ("ok", "☑", format!(" (step {s})")),
            Tick::Pending(s) => ("bad", "☐", format!(" (step {s}, not done)")),
            Tick::Manual => ("manual", "☐", " (manual: no tool can do this)".to_string()),
        };
        let _ = write!(
            h,
            "<li class=\"{class}\">{mark} {}{}</li>",
            esc(i.text),
            esc(&note)
        );
    }
    h.push_str("</ul>");

    h.push_str(
        "<h2>Steps</h2><table id=\"steps\"><tr><th>Step</th><th>Seconds</th><th>State</th></tr>",
    );
    for step in crate::run::STEPS {
        let (secs, st) = match state.get(step) {
            Some(r) => (
                format!("{:.1}", r.seconds),
                "<span class=\"ok\">done</span>".to_string(),
            ),
            None => match &state.failed {
                Some((f, _)) if f == step => (
                    String::new(),
                    "<span class=\"bad\">failed</span>".to_string(),
                ),
                _ if *step == "report" => (String::new(), "this report".to_string()),
                _ => (String::new(), "not run".to_string()),
            },
        };
        let _ = write!(
            h,
            "<tr><td>{step}</td><td class=\"n\">{secs}</td><td>{st}</td></tr>"
        );
    }
    h.push_str("</table>");

    let tables = copy_tables(state);
    if !tables.is_empty() {
        h.push_str("<h2>Data copy</h2><table id=\"copy\"><tr><th>Table</th><th>Rows</th><th>MB</th><th>Seconds</th></tr>");
        for (t, rows, bytes, secs) in &tables {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{rows}</td><td class=\"n\">{:.1}</td><td class=\"n\">{secs:.2}</td></tr>",
                esc(t),
                *bytes as f64 / 1e6
            );
        }
        h.push_str("</table><h3>Throughput</h3>");
        h.push_str(&throughput_svg(&tables));
    }

    if let Some(s) = state.get("storage") {
        let c = &s.detail["copy"];
        let _ = write!(
            h,
            "<h2>Storage</h2><p id=\"storage\">{} objects: {} copied, {} already there, {} failed; {:.1} MB uploaded; {} references rewritten.</p>",
            c["objects"].as_u64().unwrap_or(0),
            c["copied"].as_u64().unwrap_or(0),
            c["skipped"].as_u64().unwrap_or(0),
            c["failed"].as_array().map(Vec::len).unwrap_or(0),
            c["bytes_copied"].as_f64().unwrap_or(0.0) / 1e6,
            s.detail["rewritten"].as_u64().unwrap_or(0)
        );
        if let Some(notes) = s.detail["notes"].as_array() {
            h.push_str("<ul>");
            for n in notes {
                let _ = write!(h, "<li>{}</li>", esc(n.as_str().unwrap_or("")));
            }
            h.push_str("</ul>");
        }
    }

    if let Some(v) = verify {
        h.push_str("<h2>Verify</h2><table id=\"verify\"><tr><th>Table</th><th>Source rows</th><th>Target rows</th><th>Status</th></tr>");
        if let Some(ts) = v.detail["tables"].as_array() {
            for t in ts {
                let name = |x: &Value| {
                    format!(
                        "{}.{}",
                        x["schema"].as_str().unwrap_or(""),
                        x["name"].as_str().unwrap_or("")
                    )
                };
                let (src, tgt) = (name(&t["source"]), name(&t["target"]));
                let label = if src == tgt {
                    src
                } else {
                    format!("{src} → {tgt}")
                };
                let ok = t["source_rows"] == t["target_rows"]
                    && t["diffs"].as_array().is_none_or(Vec::is_empty)
                    && t["differing_chunks"].as_u64() == Some(0);
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&label),
                    t["source_rows"],
                    t["target_rows"],
                    if ok { "ok" } else { "bad" },
                    if ok { "✓ MATCH" } else { "✗ MISMATCH" }
                );
            }
        }
        h.push_str("</table>");
        let _ = write!(
            h,
            "<pre id=\"verify-text\">{}</pre>",
            esc(v.detail["text"].as_str().unwrap_or(""))
        );
    }

    if let Some(items) = state
        .get("schema-pre-data")
        .and_then(|s| s.detail.get("conversion"))
        .and_then(Value::as_array)
    {
        let _ = write!(
            h,
            "<h2>Schema conversion</h2><p>{} objects kept, rewritten, dropped or added.</p>\
             <table id=\"conversion\"><tr><th>Action</th><th>Object</th><th>Why</th></tr>",
            items.len()
        );
        for i in items {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(i["action"].as_str().unwrap_or("")),
                esc(i["object"].as_str().unwrap_or("")),
                esc(i["reason"].as_str().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The report files written.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFiles {
    /// `report.html`.
    pub html: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
}

/// Writes `report.html` and `report.json` into `dir`.
pub fn write(dir: &Path, state: &RunState) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let files = ReportFiles {
        html: dir.join("report.html"),
        json: dir.join("report.json"),
    };
    crate::fsutil::write_atomically(&files.html, html(state).as_bytes(), 0o644)?;
    let json = serde_json::json!({"state": state, "checklist": checklist(state)});
    let text = serde_json::to_vec_pretty(&json)
        .map_err(|e| Error::new(ErrorKind::Io, "writing the JSON report").with_source(e))?;
    crate::fsutil::write_atomically(&files.json, &text, 0o644)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::StepRecord;

    #[test]
    fn the_checklist_ticks_done_steps_and_lists_manual_items() {
        let mut st = RunState::default();
        st.done.push(StepRecord {
            name: "backup".into(),
            seconds: 1.0,
            finished_at: 0,
            detail: Value::Null,
        });
        let text = checklist_text(&st);
        assert!(text.contains("  [x] Backup Supabase database"));
        assert!(text.contains("  [ ] Reset sequences"));
        assert!(text.contains("  [manual] Deploy updated Edge Functions to Lambda"));
        let html = html(&st);
        assert!(html.contains("☑ Backup Supabase database"));
        assert!(!html.contains("<script"));
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
