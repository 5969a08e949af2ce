//! The platform features the application uses outside its own schemas,
//! each decided with one line: carried over where the target has an
//! equivalent (pg_cron jobs on RDS), else left out with what replaces it.

use serde::{Deserialize, Serialize};

use super::reach::{Context, Reach};
use super::{Action, Conversion, ConvertOptions, Impact, PG_CRON};
use crate::catalog::dump::SchemaSource;
use crate::catalog::platform::CronJob;
use crate::error::Result;

/// The database RDS runs pg_cron in (`cron.database_name`'s default).
pub const CRON_DATABASE: &str = "postgres";

/// pg_cron on the target: created in [`CRON_DATABASE`], the jobs scheduled
/// from there into the application's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronPlan {
    /// Where pg_cron is created.
    pub cron_database: String,
    /// Where the jobs run.
    pub database: String,
    /// The jobs.
    pub jobs: Vec<PlannedJob>,
}

/// One job to schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// Its name (`job-<id>` for a job that had none).
    pub name: String,
    /// The cron schedule.
    pub schedule: String,
    /// The SQL (secrets as placeholders).
    pub command: String,
    /// Whether it is active.
    pub active: bool,
}

/// Adds a line for each platform feature used, and the cron plan.
pub(super) fn note(
    src: &SchemaSource,
    opts: &ConvertOptions,
    reach: &Reach,
    ctx: &Context,
    out: &mut Conversion,
) -> Result<()> {
    cron(&src.platform.cron_jobs, opts, reach, ctx, out);
    for q in &src.platform.queues {
        out.note_todo(
            Action::Kept,
            format!("pgmq queue {q}"),
            if ctx.runtime.pgmq {
                "created on the target by the pgmq shim (plain SQL); the messages in it are not moved"
            } else {
                "created on the target (it offers pgmq); the messages in it are not moved"
            },
            "let its consumers empty it before the cutover (or send what is left again on the target)",
        );
    }
    match (src.platform.vault_secrets, src.platform.vault_unreadable) {
        // Readable: the Vault shim says what moves (runtime.rs).
        (_, false) => {}
        (_, true) => out.note_todo(
            Action::Dropped,
            "Vault secrets",
            "Supabase Vault is not on the target (the secrets could not be counted: no read access)",
            "store them in AWS Secrets Manager and read them from the application",
        ),
    }
    for s in &src.platform.foreign_servers {
        out.note_todo(
            Action::Dropped,
            format!("foreign server {} ({} wrapper)", s.name, s.wrapper),
            format!(
                "not migrated, with its foreign tables ({}); its options ({}) are not shown: they may hold keys",
                if s.foreign_tables.is_empty() { "none".to_string() } else { s.foreign_tables.join(", ") },
                if s.option_names.is_empty() { "none".to_string() } else { s.option_names.join(", ") },
            ),
            "read the external API from the application, or create the server on the target yourself (RDS offers postgres_fdw)",
        );
    }
    triggers_and_policies(src, out);
    publications(src, out)?;
    buckets_and_event_triggers(src, out);
    if src.secrets_found > 0 {
        out.note_with(
            Action::Rewritten,
            format!("{} secrets in definitions", src.secrets_found),
            "JWTs and keys found in function, trigger and job definitions are shown as [secret-N] in every output; the objects migrated keep their values (kept apart in the state folder, owner-only)",
            Impact::None,
        );
    }
    Ok(())
}

fn cron(
    jobs: &[CronJob],
    opts: &ConvertOptions,
    reach: &Reach,
    ctx: &Context,
    out: &mut Conversion,
) {
    if jobs.is_empty() {
        return;
    }
    let offered = opts
        .available_extensions
        .as_ref()
        .is_none_or(|a| a.contains(PG_CRON));
    let mut planned = Vec::new();
    for j in jobs {
        let object = format!(
            "pg_cron job {} ({})",
            if j.name.is_empty() {
                format!("#{}", j.id)
            } else {
                j.name.clone()
            },
            j.schedule
        );
        let missing = match crate::sql::uses::of_sql(&j.command) {
            Some(u) => reach.missing(&u, ctx),
            None => None,
        };
        match (offered, missing) {
            (true, None) => {
                out.note(
                    Action::Kept,
                    object,
                    format!("scheduled from the target's {CRON_DATABASE} database (where RDS runs pg_cron) into {}", opts.target_database),
                );
                planned.push(PlannedJob {
                    name: if j.name.is_empty() { format!("job-{}", j.id) } else { j.name.clone() },
                    schedule: j.schedule.clone(),
                    command: j.command.clone(),
                    active: j.active,
                });
            }
            (true, Some(m)) => out.note_todo(
                Action::Dropped,
                object,
                format!("its command {}", m.reason),
                format!("{}; then schedule it with Amazon EventBridge Scheduler or pg_cron", m.todo),
            ),
            (false, _) => out.note_todo(
                Action::Dropped,
                object,
                "the target does not offer pg_cron",
                "schedule it with Amazon EventBridge Scheduler (running a Lambda function or an ECS task that runs the SQL), or enable pg_cron on the target",
            ),
        }
    }
    if !planned.is_empty() {
        out.note_with(
            Action::Added,
            format!("extension {PG_CRON} in database {CRON_DATABASE}"),
            format!("RDS runs pg_cron in the {CRON_DATABASE} database only; {} jobs are scheduled from there", planned.len()),
            Impact::None,
        );
        out.cron = Some(CronPlan {
            cron_database: CRON_DATABASE.into(),
            database: opts.target_database.clone(),
            jobs: planned,
        });
    }
}

/// The application's triggers and policies on Supabase's own tables (the
/// triggers on auth.users move with it, see the rules).
fn triggers_and_policies(src: &SchemaSource, out: &mut Conversion) {
    for t in &src.platform.internal_triggers {
        let object = format!("trigger {} on {}.{}", t.name, t.schema, t.table);
        match (t.schema.as_str(), t.table.as_str()) {
            ("auth", "users") => {}
            ("storage", "objects") | ("storage", "buckets") => out.note_todo(
                Action::Dropped,
                object,
                format!("uploads go to S3, not through {}.{}: {} would never run", t.schema, t.table, t.function),
                "run it from S3 Event Notifications (an AWS Lambda function on s3:ObjectCreated/ObjectRemoved)",
            ),
            ("auth", table) if out.auth_tables.iter().any(|c| c == table) => out.note_todo(
                Action::Dropped,
                object,
                format!("{}.{} moves as a table, but Supabase Auth no longer writes it on the target: {} would never run", t.schema, t.table, t.function),
                "run it from your identity provider's events (Amazon Cognito Lambda triggers) or from the application",
            ),
            ("auth", _) => out.note_todo(
                Action::Dropped,
                object,
                format!("{}.{} is Supabase Auth's own table, not migrated: {} would never run", t.schema, t.table, t.function),
                "run it from your identity provider's events (Amazon Cognito Lambda triggers) or from the application",
            ),
            _ => out.note_todo(
                Action::Dropped,
                object,
                format!("{}.{} is not migrated: {} would never run", t.schema, t.table, t.function),
                "run it from the service that replaces this Supabase feature",
            ),
        }
    }
    for p in &src.platform.internal_policies {
        let object = format!("policy \"{}\" on {}.{}", p.name, p.schema, p.table);
        match p.schema.as_str() {
            "storage" => out.note_todo(
                Action::Dropped,
                object,
                "Storage policies have no S3 equivalent",
                "use bucket policies, IAM, or presigned URLs issued by the application",
            ),
            "realtime" => out.note_todo(
                Action::Dropped,
                object,
                "Realtime authorization: Supabase Realtime is not on the target",
                "authorize channels in the service that replaces Realtime (AWS AppSync, API Gateway WebSockets)",
            ),
            _ => out.note_todo(
                Action::Dropped,
                object,
                format!("{}.{} is not migrated", p.schema, p.table),
                "enforce it in the application",
            ),
        }
    }
}

/// The project's publications, made again on the target when a list of
/// its tables is all they are; Realtime's, and the others (FOR ALL TABLES,
/// TABLES IN SCHEMA, column lists, row filters), are to-dos.
fn publications(src: &SchemaSource, out: &mut Conversion) -> Result<()> {
    // The platform's publication with no table published carries nothing.
    for p in src.publications.iter().filter(|p| !p.tables.is_empty()) {
        let object = format!("publication {} ({})", p.name, p.tables.join(", "));
        let ours = p.tables.iter().all(|t| {
            t.split_once('.')
                .is_some_and(|(s, _)| src.schemas.iter().any(|a| a == s))
        });
        if p.name.starts_with("supabase_realtime") {
            out.note_todo(
                Action::Dropped,
                object,
                "serves Supabase Realtime, which the target does not run",
                "publish changes from the application (AWS AppSync, API Gateway WebSockets), or create a publication on the target for logical replication",
            );
        } else if p.table_list && ours {
            let tables = if p.table_specs.is_empty() {
                &p.quoted_tables
            } else {
                &p.table_specs
            };
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {}, publish_via_partition_root = {});",
                crate::pg::quote_ident(&p.name),
                tables.join(", "),
                crate::pg::quote_literal(&p.publish),
                p.via_root
            );
            out.push(crate::plan::statements::added(
                &sql,
                crate::plan::Section::PostData,
            )?);
            out.note_todo(
                Action::Added,
                object,
                "the project's publication for logical replication, made again on the target after its tables (same tables, column lists, row filters and operations)",
                "its subscribers keep reading the source until they move; on the target they need rds.logical_replication = 1 in the instance's parameter group",
            );
        } else {
            out.note_todo(
                Action::Dropped,
                object,
                "the project's publication for logical replication: FOR ALL TABLES or TABLES IN SCHEMA (only a superuser may create those, which RDS's master is not), a partitioned table publishing its partitions, or a table outside the migrated schemas; its subscribers read the source",
                format!(
                    "when its subscribers move to the target, create it there (CREATE PUBLICATION {} …, with its column lists and filters) with rds.logical_replication on",
                    p.name
                ),
            );
        }
    }
    Ok(())
}

/// Event triggers and bucket settings: the platform's, left behind; the
/// project's own event triggers, a to-do with the statement that makes
/// each again.
fn buckets_and_event_triggers(src: &SchemaSource, out: &mut Conversion) {
    for e in &src.event_triggers {
        out.note_with(
            Action::Dropped,
            format!("event trigger {e}"),
            "Supabase platform (PostgREST schema reload, extension grants)",
            Impact::None,
        );
    }
    for e in &src.project_event_triggers {
        out.note_todo(
            Action::Dropped,
            format!("event trigger {}", e.name),
            "the project's own DDL hook: a schema dump does not hold event triggers, and creating one takes a superuser (on RDS, a member of rds_superuser may), so supamigrate does not make it: where the master may not, the schema would fail",
            format!(
                "as rds_superuser, once its function is there: {}{}",
                e.create,
                if e.disabled {
                    format!("; ALTER EVENT TRIGGER {} DISABLE (disabled on the source)", crate::pg::quote_ident(&e.name))
                } else {
                    String::new()
                }
            ),
        );
    }
    for b in &src.storage_buckets {
        let mut settings = Vec::new();
        if b.public {
            settings.push("public".to_string());
        }
        if let Some(l) = b.file_size_limit {
            settings.push(format!("file_size_limit {l}"));
        }
        if !b.allowed_mime_types.is_empty() {
            settings.push(format!(
                "allowed_mime_types {}",
                b.allowed_mime_types.join(",")
            ));
        }
        if !settings.is_empty() {
            out.note(
                Action::Dropped,
                format!("bucket {} settings: {}", b.id, settings.join(", ")),
                "no S3 equivalent: use bucket policies, Block Public Access or presigned URLs (the objects move in the storage step)",
            );
        }
    }
}
