//! The plan as people read it: what `supamigrate plan` prints and `run`
//! shows before its first write. Every decision that changes how the
//! application behaves gets its own line; plumbing is counted by reason.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::convert::{AccessEffect, Action, Impact};
use super::MigrationPlan;
use crate::plan::statements::Section;
use crate::steps::Step;

/// The plan's summary.
pub fn describe(plan: &MigrationPlan) -> String {
    let mut s = String::new();
    header(plan, &mut s);
    versions(plan, &mut s);
    schema(plan, &mut s);
    provision(plan, &mut s);
    data(plan, &mut s);
    storage(plan, &mut s);
    s
}

fn header(plan: &MigrationPlan, s: &mut String) {
    let _ = writeln!(s, "Plan {} (made {})", plan.id, plan.created_at);
    let _ = writeln!(
        s,
        "  source  {}  PostgreSQL {}",
        plan.source.url, plan.source.server_version
    );
    let _ = writeln!(
        s,
        "  target  {}  PostgreSQL {}{}",
        plan.target.url,
        plan.target.server_version,
        if plan.provision.create_database {
            format!(" (database {} will be created)", plan.provision.database)
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "\nSteps of `supamigrate run`:");
    for (i, step) in Step::ALL.iter().enumerate() {
        let _ = writeln!(s, "  {}. {step}", i + 1);
    }
}

fn versions(plan: &MigrationPlan, s: &mut String) {
    if plan.versions.is_empty() {
        return;
    }
    let _ = writeln!(s, "\nTarget version:");
    for n in &plan.versions {
        let _ = writeln!(s, "  {}: {}", n.what, n.happens);
        if !n.todo.is_empty() {
            let _ = writeln!(s, "      to do: {}", n.todo);
        }
    }
}

fn schema(plan: &MigrationPlan, s: &mut String) {
    let conv = &plan.conversion;
    let counts = conv.counts();
    let n = |a| counts.get(&a).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "\nSchema: {} ({} pre-data, {} post-data statements)",
        plan.schemas.join(", "),
        plan.statements(Section::PreData).len(),
        plan.statements(Section::PostData).len()
    );
    let _ = writeln!(
        s,
        "  decisions: {} kept, {} rewritten, {} dropped, {} added",
        n(Action::Kept),
        n(Action::Rewritten),
        n(Action::Dropped),
        n(Action::Added)
    );
    let behaviour: Vec<_> = conv
        .report
        .iter()
        .filter(|d| d.action != Action::Kept && d.impact == Impact::Behaviour)
        .collect();
    if !behaviour.is_empty() {
        let _ = writeln!(s, "  what changes for the application:");
        for d in behaviour {
            let access = match d.access {
                AccessEffect::Unchanged => "",
                AccessEffect::Narrows => " [access narrows]",
                AccessEffect::Widens => " [access WIDENS]",
            };
            let _ = writeln!(s, "  {:?} {}: {}{access}", d.action, d.object, d.reason);
            if !d.todo.is_empty() {
                let _ = writeln!(s, "      to do: {}", d.todo);
            }
        }
    }
    let mut plumbing: BTreeMap<(Action, &str), usize> = BTreeMap::new();
    for d in conv
        .report
        .iter()
        .filter(|d| d.action != Action::Kept && d.impact == Impact::None)
    {
        *plumbing.entry((d.action, d.reason.as_str())).or_default() += 1;
    }
    if !plumbing.is_empty() {
        let _ = writeln!(s, "  plumbing (nothing the application sees):");
        for ((action, reason), count) in plumbing {
            let _ = writeln!(s, "  {action:?} {count}×: {reason}");
        }
    }
}

fn provision(plan: &MigrationPlan, s: &mut String) {
    let p = &plan.provision;
    let _ = writeln!(
        s,
        "\nProvision: database {} ({}); extensions {}; role {}{}",
        p.database,
        if p.create_database {
            "created"
        } else {
            "exists"
        },
        if p.extensions.is_empty() {
            "none".to_string()
        } else {
            p.extensions
                .iter()
                .map(|e| format!("{} (schema {})", e.name, e.schema))
                .collect::<Vec<_>>()
                .join(", ")
        },
        p.app_role,
        if p.shim_roles {
            "; NOLOGIN roles anon, authenticated, service_role for the RLS shim"
        } else {
            ""
        }
    );
    if !p.project_roles.is_empty() {
        let _ = writeln!(
            s,
            "  the project's own roles, NOLOGIN: {}",
            p.project_roles
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !p.database_settings.is_empty() {
        let _ = writeln!(
            s,
            "  database settings (ALTER DATABASE … SET): {}",
            p.database_settings
                .iter()
                .map(|d| format!("{} = {}", d.name, d.value))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let role_settings: Vec<String> = p
        .project_roles
        .iter()
        .flat_map(|r| {
            r.settings
                .iter()
                .map(move |d| format!("{}: {} = {}", r.name, d.name, d.value))
        })
        .collect();
    if !role_settings.is_empty() {
        let _ = writeln!(
            s,
            "  role settings (ALTER ROLE … IN DATABASE … SET): {}",
            role_settings.join(", ")
        );
    }
}

fn data(plan: &MigrationPlan, s: &mut String) {
    let users = plan
        .users()
        .map(|u| format!(", {} → {}", u.source, u.target))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "\nData: {} tables{users}; {} copy tasks; {:.1} MB; predicted copy about {:.0} s at the {:.0} MB/s bench/copy.sh measured (more over a network)",
        plan.tables.len(),
        plan.copy_tasks.len(),
        plan.copy_bytes() as f64 / 1e6,
        plan.predicted_copy_seconds(),
        super::MEASURED_MB_PER_S
    );
    for t in plan.tables.iter().filter(|t| !t.is_users()) {
        for l in &t.left_out {
            let _ = writeln!(s, "  left out: {}.{}: {}", t.source, l.column, l.reason);
        }
    }
    for c in &plan.conversion.extension_config {
        let what = if c.sequence {
            "its value set before the data".to_string()
        } else {
            format!(
                "{} row(s) the project added, copied before the data (CREATE EXTENSION makes only its own)",
                c.rows.unwrap_or(0)
            )
        };
        let _ = writeln!(
            s,
            "  extension {} configuration {}: {what}",
            c.extension, c.relation
        );
    }
    let _ = writeln!(
        s,
        "  sequences set to the source's state: {}",
        plan.sequences.len()
    );
    let mut by_action: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &plan.ready {
        by_action
            .entry(r.action.describe())
            .or_default()
            .push(r.table.to_string());
    }
    let _ = writeln!(s, "  ready for traffic as each table's indexes are in:");
    for (action, tables) in by_action {
        let shown = if tables.len() > 6 {
            format!("{}, … ({} tables)", tables[..6].join(", "), tables.len())
        } else {
            tables.join(", ")
        };
        let _ = writeln!(s, "    {action}: {shown}");
    }
}

fn storage(plan: &MigrationPlan, s: &mut String) {
    let st = &plan.storage;
    if !st.present {
        let _ = writeln!(s, "\nStorage: the source has no Supabase Storage");
        return;
    }
    let _ = writeln!(
        s,
        "\nStorage: {} objects ({:.1} MB) in {} bucket(s)",
        st.objects(),
        st.bytes() as f64 / 1e6,
        st.buckets.len()
    );
    for b in &st.buckets {
        let _ = writeln!(s, "  bucket {} → {} ({} objects)", b.id, b.dest, b.objects);
    }
    match (&st.rewrite, st.references.is_empty()) {
        (_, true) => {
            let _ = writeln!(s, "  references: no column holds Storage paths or URLs (none found in the sampled values): objects are copied, no column is rewritten (name one with --reference SCHEMA.TABLE.COLUMN=BUCKET)");
        }
        (None, false) => {
            let _ = writeln!(s, "  references: left alone (--no-rewrite)");
            for r in &st.reference_reasons {
                let _ = writeln!(s, "    {r}");
            }
        }
        (Some(r), false) => {
            let _ = writeln!(
                s,
                "  references: {} column(s) will be rewritten once the data is copied, to {}",
                st.references.len(),
                match &r.url_prefix {
                    Some(u) => format!("{u}/BUCKET/KEY"),
                    None => "s3://BUCKET/KEY".to_string(),
                }
            );
            for r in &st.reference_reasons {
                let _ = writeln!(s, "    {r}");
            }
        }
    }
    for n in &st.notes {
        let _ = writeln!(s, "  note: {n}");
    }
}
