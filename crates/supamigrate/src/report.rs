//! The migration report: one self-contained HTML file (no scripts, no
//! network: inline CSS and SVG) and the same facts as JSON, rendered from
//! the run's journal and its plan. Pure except for writing the two files.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::copy::TableSummary;
use crate::error::{Error, Result};
use crate::journal::{ReportFiles, RunState, StorageOutcome};
use crate::plan::MigrationPlan;
use crate::steps::Step;

/// A checklist item's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tick {
    /// Done by this step.
    Done(Step),
    /// Not done yet; the step that does it.
    Pending(Step),
    /// Proved by one of `verify --app`'s checks (named).
    Proved(String),
    /// One of `verify --app`'s checks would prove it, but it has not run or
    /// found something (said).
    Unproved(String),
    /// Yours to do: precisely what.
    Yours(&'static str),
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

/// What settles an item.
#[derive(Debug, Clone, Copy)]
enum How {
    /// A step of `run`.
    Step(Step),
    /// A check of `verify --app`.
    App(AppCheck),
    /// The user, doing this.
    Yours(&'static str),
}

/// The `verify --app` checks that prove checklist items.
#[derive(Debug, Clone, Copy)]
enum AppCheck {
    Logins,
    Plans,
    Settings,
}

/// (section, item, what settles it).
const CHECKLIST: &[(&str, &str, How)] = &[
    ("Pre-Migration", "Backup Supabase database", How::Step(Step::Backup)),
    ("Pre-Migration", "Test backup restoration", How::Step(Step::Backup)),
    ("Pre-Migration", "Verify RDS instance is ready", How::Step(Step::Preflight)),
    ("Pre-Migration", "Test network connectivity to RDS", How::Step(Step::Preflight)),
    (
        "Pre-Migration",
        "Schedule maintenance window",
        How::Yours("size it from the plan's copy estimate (`supamigrate plan`), or keep it to the cutover's seconds with `run --follow` and `supamigrate cutover`; tell your users when"),
    ),
    ("Schema Migration", "Export Supabase schema", How::Step(Step::Preflight)),
    ("Schema Migration", "Convert schema (auth.users → app_users)", How::Step(Step::Plan)),
    ("Schema Migration", "Apply schema to RDS", How::Step(Step::PostData)),
    ("Schema Migration", "Verify all tables created", How::Step(Step::Verify)),
    ("Schema Migration", "Verify all indexes created", How::Step(Step::Verify)),
    ("Schema Migration", "Verify all functions created", How::Step(Step::Verify)),
    ("Data Migration", "Export user data", How::Step(Step::UsersAndData)),
    ("Data Migration", "Export all table data", How::Step(Step::UsersAndData)),
    ("Data Migration", "Import users to app_users", How::Step(Step::UsersAndData)),
    ("Data Migration", "Import all table data", How::Step(Step::UsersAndData)),
    ("Data Migration", "Reset sequences", How::Step(Step::Sequences)),
    ("Data Migration", "Validate row counts", How::Step(Step::Verify)),
    ("Data Migration", "Validate data integrity", How::Step(Step::Verify)),
    ("Storage Migration", "Download Supabase storage files", How::Step(Step::Storage)),
    ("Storage Migration", "Upload to S3", How::Step(Step::Storage)),
    ("Storage Migration", "Update file path references", How::Step(Step::Storage)),
    ("Storage Migration", "Verify file accessibility", How::Step(Step::Storage)),
    (
        "Application Updates",
        "Update database connection strings",
        How::App(AppCheck::Settings),
    ),
    (
        "Application Updates",
        "Update authentication to use new user table",
        How::Yours("point your sign-in code at public.app_users (auth.users stays readable as a view over it); the Logins check above says what each kind of user needs"),
    ),
    (
        "Application Updates",
        "Deploy updated Edge Functions to Lambda",
        How::Yours("deploy each Edge Function as a Lambda function (behind API Gateway or a function URL) with app-settings.md's DATABASE_URL; enter its secrets again (`supabase secrets list` names them)"),
    ),
    (
        "Application Updates",
        "Update storage references to S3",
        How::Yours("replace the Supabase Storage client calls with the AWS SDK's S3 calls on the buckets app-settings.md lists; references stored in the database were rewritten by the storage step"),
    ),
    (
        "Application Updates",
        "Test all critical paths",
        How::Yours("run your end-to-end tests against the target with app-settings.md; verify --app has compared each user's access and every view's and function's answers"),
    ),
    (
        "Post-Migration",
        "Monitor error rates",
        How::Yours("watch the instance's CloudWatch metrics (DatabaseConnections, CPUUtilization, ReadLatency, WriteLatency) and the PostgreSQL log's ERROR lines for the first days"),
    ),
    (
        "Post-Migration",
        "Verify tracking functionality",
        How::Yours("run the application's flows that write (create a record, change its state, read it back, as a signed-in user) against the target: verify --app proved what each user reads, not what the policies' WITH CHECK lets them write"),
    ),
    ("Post-Migration", "Verify user authentication", How::App(AppCheck::Logins)),
    ("Post-Migration", "Performance testing", How::App(AppCheck::Plans)),
    (
        "Post-Migration",
        "Update documentation",
        How::Yours("record the RDS instance, app-settings.md's settings and the S3 buckets in your runbook; this report and the plan are in the state folder"),
    ),
];

/// How a `verify --app` check settles its item.
fn app_tick(state: &RunState, check: AppCheck) -> Tick {
    let Some(app) = state.verify().and_then(|v| v.app.as_ref()) else {
        return Tick::Unproved("verify --app has not run".into());
    };
    match check {
        AppCheck::Logins => match (&app.logins.not_checked, app.logins.mismatches()) {
            (Some(why), _) => Tick::Unproved(format!("logins not checked: {why}")),
            (None, 0) if app.logins.users == 0 => Tick::Unproved(
                "the source has no user yet: nothing was proved; once users sign up, `supamigrate verify --app` counts how each signs in".into(),
            ),
            (None, 0) => Tick::Proved(format!(
                "verify --app: the sign-in data of all {} user(s) is kept ({} kind(s)); `verify --login EMAIL` checks a password",
                app.logins.users,
                app.logins.kinds.len()
            )),
            (None, n) => Tick::Unproved(format!("verify --app: {n} sign-in kind(s) differ on the target")),
        },
        AppCheck::Plans => match (&app.plans.not_checked, app.plans.findings.len()) {
            (Some(why), _) => Tick::Unproved(why.clone()),
            (None, 0) if app.plans.compared == 0 => Tick::Unproved(
                "pg_stat_statements holds no read of the application's tables yet: let the application run against the source, then `supamigrate verify --app`".into(),
            ),
            (None, 0) => Tick::Proved(format!(
                "verify --app: {} of the source's busiest reads planned on both sides, none worse",
                app.plans.compared
            )),
            (None, n) => Tick::Unproved(format!("verify --app: {n} query plan(s) worse on the target")),
        },
        AppCheck::Settings => match &app.settings_file {
            Some(p) => Tick::Proved(format!(
                "verify --app: written to {}; deploy them",
                p.display()
            )),
            None => Tick::Unproved("verify --app writes them".into()),
        },
    }
}

/// The checklist as `state` has it.
pub fn checklist(state: &RunState) -> Vec<Item> {
    CHECKLIST
        .iter()
        .map(|(section, text, how)| Item {
            section,
            text,
            tick: match how {
                How::Yours(what) => Tick::Yours(what),
                How::App(check) => app_tick(state, *check),
                How::Step(s) if state.get(*s).is_some() => Tick::Done(*s),
                How::Step(s) => Tick::Pending(*s),
            },
        })
        .collect()
}

/// The checklist as text lines (`[x]`, `[ ]`, `[you]`).
pub fn checklist_text(state: &RunState) -> String {
    let mut s = String::new();
    let mut section = "";
    for i in checklist(state) {
        if i.section != section {
            section = i.section;
            let _ = writeln!(s, "{section}");
        }
        let line = match &i.tick {
            Tick::Done(_) => format!("[x] {}", i.text),
            Tick::Pending(_) => format!("[ ] {}", i.text),
            Tick::Proved(by) => format!("[x] {} ({by})", i.text),
            Tick::Unproved(why) => format!("[ ] {} ({why})", i.text),
            Tick::Yours(what) => format!("[you] {}: {what}", i.text),
        };
        let _ = writeln!(s, "  {line}");
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars of MB/s per table (largest tables first), as inline SVG.
fn throughput_svg(tables: &[TableSummary]) -> String {
    let mut rows: Vec<&TableSummary> = tables.iter().filter(|t| t.bytes > 0).collect();
    rows.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    rows.truncate(15);
    let rate = |t: &TableSummary| t.bytes as f64 / 1e6 / t.seconds.max(1e-3);
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
            esc(&t.table),
            bar_h - 6,
            left as f64 + w + 4.0,
            y + 15,
            rate(t)
        );
    }
    s.push_str("</svg>");
    s
}

fn headline(state: &RunState) -> (bool, String) {
    let green = state.all_green();
    let text = match (state.verify(), &state.failed) {
        (_, Some(f)) => format!(
            "✗ stopped at {}: {}",
            f.step,
            f.message.lines().next().unwrap_or("")
        ),
        (Some(_), None) if green => {
            "✓ Migration complete: verify found every table, object and check matching".to_string()
        }
        (Some(v), None) if state.data_green() => format!(
            "✓ Migration complete: data equal; the application differs on the target in {} place(s) (see Verify)",
            v.app_mismatches()
        ),
        (Some(_), None) => "✗ verify found mismatches".to_string(),
        (None, None) => "Migration in progress".to_string(),
    };
    (state.data_green() && state.failed.is_none(), text)
}

fn head(state: &RunState, h: &mut String) {
    let (ok, headline) = headline(state);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>supamigrate report</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#111}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         td.n{{text-align:right}}.ok{{color:#15803d}}.bad{{color:#b91c1c}}.manual{{color:#92400e}}\
         pre{{background:#f4f4f5;padding:1em;overflow-x:auto}}</style></head><body>\
         <h1>supamigrate report</h1><p id=\"headline\" class=\"{}\"><strong>{}</strong></p>\
         <p>Source: {} → target: {}</p>",
        if ok { "ok" } else { "bad" },
        esc(&headline),
        esc(&state.source),
        esc(&state.target)
    );
    if let Some(f) = &state.failed {
        let _ = write!(
            h,
            "<h2>Stopped</h2><p class=\"bad\">The run stopped at <strong>{}</strong>. \
             Fix the cause and run again: finished steps are kept.</p><pre id=\"failure\">{}</pre>",
            esc(f.step.name()),
            esc(&f.message)
        );
    }
}

fn checklist_html(state: &RunState, h: &mut String) {
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
            Tick::Proved(by) => ("ok", "☑", format!(" ({by})")),
            Tick::Unproved(why) => ("bad", "☐", format!(" ({why})")),
            Tick::Yours(what) => ("manual", "☐", format!(" (yours: {what})")),
        };
        let _ = write!(
            h,
            "<li class=\"{class}\">{mark} {}{}</li>",
            esc(i.text),
            esc(&note)
        );
    }
    h.push_str("</ul>");
}

fn steps_html(state: &RunState, h: &mut String) {
    h.push_str(
        "<h2>Steps</h2><table id=\"steps\"><tr><th>Step</th><th>Seconds</th><th>State</th></tr>",
    );
    for step in Step::ALL {
        let (secs, st) = match state.get(step) {
            Some(r) => (
                format!("{:.1}", r.seconds),
                "<span class=\"ok\">done</span>".to_string(),
            ),
            None => match &state.failed {
                Some(f) if f.step == step => (
                    String::new(),
                    "<span class=\"bad\">failed</span>".to_string(),
                ),
                _ if step == Step::Report => (String::new(), "this report".to_string()),
                _ => (String::new(), "not run".to_string()),
            },
        };
        let _ = write!(
            h,
            "<tr><td>{step}</td><td class=\"n\">{secs}</td><td>{st}</td></tr>"
        );
    }
    h.push_str("</table>");
}

/// `freeze-analyze` → what people read.
fn ready_label(action: &str) -> &str {
    use crate::plan::ready::ReadyAction;
    ReadyAction::from_name(action)
        .map(ReadyAction::describe)
        .unwrap_or(action)
}

fn plan_ready(plan: Option<&MigrationPlan>, table: &str) -> String {
    plan.and_then(|p| p.ready.iter().find(|r| r.table.to_string() == table))
        .map_or_else(|| "–".to_string(), |r| r.action.describe().to_string())
}

fn copy_html(state: &RunState, plan: Option<&MigrationPlan>, h: &mut String) {
    let Some(copy) = state.copy() else { return };
    if copy.tables.is_empty() {
        return;
    }
    h.push_str("<h2>Data copy</h2><table id=\"copy\"><tr><th>Table</th><th>Rows</th><th>MB</th><th>Seconds</th><th>Made ready for traffic</th></tr>");
    for t in &copy.tables {
        let ready = match (&t.ready, t.ready_seconds) {
            (Some(a), Some(s)) => format!("{} ({s:.2} s)", ready_label(a)),
            (Some(a), None) => ready_label(a).to_string(),
            // Done after the copy's summary (with post-data): the plan's decision.
            _ => plan_ready(plan, &t.table),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.2}</td><td>{}</td></tr>",
            esc(&t.table),
            t.rows,
            t.bytes as f64 / 1e6,
            t.seconds,
            esc(&ready)
        );
    }
    h.push_str("</table>");
    if !copy.extension_config.is_empty() {
        h.push_str("<h3>Extensions' configuration</h3><ul id=\"extension-config\">");
        for c in &copy.extension_config {
            let what = match &c.refused {
                Some(why) => format!("not copied: {why}"),
                None => format!(
                    "{} row(s) copied, {} already on the target{}",
                    c.rows_copied,
                    c.rows_present,
                    c.owner_taken
                        .as_ref()
                        .map(|o| format!(", the table taken over from {o}"))
                        .unwrap_or_default()
                ),
            };
            let _ = write!(
                h,
                "<li>extension {} configuration {}: {}</li>",
                esc(&c.extension),
                esc(&c.relation.to_string()),
                esc(&what)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("<h3>Throughput</h3>");
    h.push_str(&throughput_svg(&copy.tables));
}

fn storage_html(state: &RunState, plan: Option<&MigrationPlan>, h: &mut String) {
    match state.storage() {
        Some(StorageOutcome::Copied(s)) => {
            let _ = write!(
                h,
                "<h2>Storage</h2><p id=\"storage\">{} objects: {} copied, {} already there, {} failed; {:.1} MB uploaded; {} references rewritten.</p>",
                s.copy.objects,
                s.copy.copied,
                s.copy.skipped,
                s.copy.failed.len(),
                s.copy.bytes_copied as f64 / 1e6,
                s.rewritten.unwrap_or(0)
            );
            let notes = plan.map(|p| p.storage.notes.clone()).unwrap_or_default();
            h.push_str("<ul>");
            for n in notes.iter().chain(&s.objects.notes) {
                let _ = write!(h, "<li>{}</li>", esc(n));
            }
            for m in &s.objects.missing_in_store {
                let _ = write!(
                    h,
                    "<li>missing from the Storage source, not copied (--allow-missing-objects): {}</li>",
                    esc(&m.to_string())
                );
            }
            for u in &s.to_missing_objects {
                let _ = write!(
                    h,
                    "<li>{} [{}] still names a missing object: {}</li>",
                    esc(&u.column),
                    esc(&u.key),
                    esc(&u.value)
                );
            }
            h.push_str("</ul>");
        }
        Some(StorageOutcome::Skipped { reason }) => {
            let _ = write!(
                h,
                "<h2>Storage</h2><p id=\"storage\">Skipped: {}.</p>",
                esc(reason)
            );
        }
        None => {}
    }
}

fn verify_html(state: &RunState, h: &mut String) {
    let Some(v) = state.verify() else { return };
    h.push_str("<h2>Verify</h2><table id=\"verify\"><tr><th>Table</th><th>Source rows</th><th>Target rows</th><th>Status</th></tr>");
    for t in &v.tables {
        let ok = t.matches();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>",
            esc(&t.label()),
            t.source_rows,
            t.target_rows,
            if ok { "ok" } else { "bad" },
            if ok { "✓ MATCH" } else { "✗ MISMATCH" }
        );
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<pre id=\"verify-text\">{}</pre>",
        esc(&crate::verify::render::text(v))
    );
}

fn conversion_html(plan: Option<&MigrationPlan>, h: &mut String) {
    let Some(plan) = plan else { return };
    let items = &plan.conversion.report;
    let _ = write!(
        h,
        "<h2>Schema conversion</h2><p>{} objects kept, rewritten, dropped or added (plan {}).</p>\
         <table id=\"conversion\"><tr><th>Action</th><th>Object</th><th>Why</th></tr>",
        items.len(),
        esc(&plan.id)
    );
    for i in items {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&format!("{:?}", i.action).to_lowercase()),
            esc(&i.object),
            esc(&i.reason)
        );
    }
    h.push_str("</table>");
}

/// The HTML report for `state` (and its plan, when made).
pub fn html(state: &RunState, plan: Option<&MigrationPlan>) -> String {
    let mut h = String::new();
    head(state, &mut h);
    checklist_html(state, &mut h);
    steps_html(state, &mut h);
    copy_html(state, plan, &mut h);
    storage_html(state, plan, &mut h);
    verify_html(state, &mut h);
    conversion_html(plan, &mut h);
    h.push_str("</body></html>\n");
    h
}

/// Writes `report.html` and `report.json` into `dir`.
pub fn write(dir: &Path, state: &RunState, plan: Option<&MigrationPlan>) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let files = ReportFiles {
        html: dir.join("report.html"),
        json: dir.join("report.json"),
    };
    crate::fsutil::write_atomically(&files.html, html(state, plan).as_bytes(), 0o644)?;
    #[derive(Serialize)]
    struct Json<'a> {
        state: &'a RunState,
        checklist: Vec<Item>,
        decisions: Option<&'a [crate::plan::Decision]>,
    }
    let json = Json {
        state,
        checklist: checklist(state),
        decisions: plan.map(|p| p.conversion.report.as_slice()),
    };
    let text = serde_json::to_vec_pretty(&json)
        .map_err(|e| Error::internal(format!("serializing the JSON report: {e}")))?;
    crate::fsutil::write_atomically(&files.json, &text, 0o644)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{BackupOutcome, StepOutcome, StepRecord};

    #[test]
    fn the_checklist_ticks_done_steps_and_lists_manual_items() {
        let mut st = RunState::default();
        st.done.push(StepRecord {
            step: Step::Backup,
            seconds: 1.0,
            finished_at: 0,
            outcome: StepOutcome::Backup(BackupOutcome {
                dir: "b".into(),
                files: vec![],
                tables: 0,
                restore_test: String::new(),
            }),
        });
        let text = checklist_text(&st);
        assert!(text.contains("  [x] Backup Supabase database"));
        assert!(text.contains("  [ ] Reset sequences"));
        assert!(text.contains("  [you] Deploy updated Edge Functions to Lambda: deploy each Edge Function as a Lambda function"));
        assert!(text.contains("  [ ] Verify user authentication (verify --app has not run)"));
        let html = html(&st, None);
        assert!(html.contains("☑ Backup Supabase database"));
        assert!(!html.contains("<script"));
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn the_data_copy_lists_extensions_configuration_carried_or_refused() {
        use crate::copy::extension_config::ConfigCopied;
        let config = |refused: Option<&str>, owner: Option<&str>| ConfigCopied {
            extension: "postgis".into(),
            relation: crate::pg::TableName::new("extensions", "spatial_ref_sys"),
            rows_copied: if refused.is_some() { 0 } else { 2 },
            rows_present: 1,
            owner_taken: owner.map(str::to_string),
            earlier: false,
            refused: refused.map(str::to_string),
        };
        let mut st = RunState::default();
        st.done.push(StepRecord {
            step: Step::UsersAndData,
            seconds: 1.0,
            finished_at: 0,
            outcome: StepOutcome::UsersAndData(crate::copy::CopySummary {
                tables: vec![crate::copy::TableSummary {
                    table: "public.places".into(),
                    rows: 3,
                    bytes: 10,
                    seconds: 0.1,
                    ready: None,
                    ready_seconds: None,
                }],
                extension_config: vec![
                    config(None, Some("rdsadmin")),
                    config(Some("the target user may not insert <into> it"), None),
                ],
                ..crate::copy::CopySummary::default()
            }),
        });
        let html = html(&st, None);
        assert!(html.contains("extension postgis configuration extensions.spatial_ref_sys: 2 row(s) copied, 1 already on the target, the table taken over from rdsadmin"), "{html}");
        assert!(
            html.contains("not copied: the target user may not insert &lt;into&gt; it"),
            "{html}"
        );
    }
}
