//! The fixture applications (Supabase form, on the platform-faithful source)
//! migrated by `supamigrate run` with no application-specific flag, into an
//! RDS-like target, then checked by this test's own queries, not by verify:
//! every table and row count, `app_users` against `auth.users`, RLS flags,
//! every plpgsql function through plpgsql_check, each user seeing only
//! their rows, every Storage object copied and every reference pointing at
//! its copy. No secret of the fixtures appears in any output or file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use supamigrate::connect::connect;
use supamigrate_sandbox::apps::{self, App};
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{output_text, run};

/// The destination bucket prefix `run` picks for the sandbox's project ref.
const PREFIX: &str = "sbxtmsprojectref0001-";

fn app(name: &str) -> &'static App {
    apps::find(name).expect("a fixture application")
}

/// `supamigrate -q run --yes` with the Storage source and a destination
/// folder: nothing about the application.
pub fn run_cmd(sb: &Sandbox, work: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("SUPABASE_PROJECT_REF", sb.project_ref())
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG")
        .env_remove("APP_DB_USER")
        .current_dir(work)
        .args(["-q", "run", "--yes", "--source-dir"])
        .arg(sb.storage_dir())
        .arg("--dest-dir")
        .arg(work.join("s3"))
        .args(extra);
    c
}

/// Migrates `app` from a fresh sandbox; returns the sandbox, the work folder
/// and what `run` printed.
pub async fn migrate(name: &str) -> (Sandbox, tempfile::TempDir, Output) {
    let sb = Sandbox::ephemeral_app(app(name))
        .await
        .expect("sandbox starts");
    assert_eq!(
        sb.source_kind(),
        supamigrate_sandbox::SourceKind::Platform,
        "the fixture applications need the platform-faithful source: the Supabase platform kit \
         (../shared/supabase-platform), installed by scripts/setup.sh as root"
    );
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    (sb, work, out)
}

async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The application's schemas on the source: public and the schemas its
/// migrations created (owned by postgres), Supabase's own left out.
async fn app_schemas(src: &Client) -> Vec<String> {
    rows(
        src,
        "select nspname from pg_namespace where nspname = 'public' \
         or (nspowner = 'postgres'::regrole and nspname not in ('extensions', 'supabase_migrations')) order by 1",
    )
    .await
    .into_iter()
    .filter_map(|r| r[0].clone())
    .collect()
}

/// (table → (rows, RLS on)) of the application's tables.
async fn tables(c: &Client, schemas: &[String]) -> BTreeMap<String, (i64, bool, bool)> {
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = BTreeMap::new();
    for r in rows(
        c,
        &format!(
            "select n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') and not c.relispartition and n.nspname in ({list}) \
             and c.relname <> 'app_users'"
        ),
    )
    .await
    {
        let t = r[0].clone().unwrap();
        let n: i64 = rows(c, &format!("select count(*) from {t}")).await[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        out.insert(
            t,
            (n, r[1].as_deref() == Some("t"), r[2].as_deref() == Some("t")),
        );
    }
    out
}

/// The test's own check of a migrated application.
pub async fn check(sb: &Sandbox, work: &Path, name: &str) {
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let target_db = sb.target_url().dbname.clone();
    let tgt = connect(&sb.target_superuser(&target_db)).await.unwrap();
    let schemas = app_schemas(&src).await;
    let (a, b) = (tables(&src, &schemas).await, tables(&tgt, &schemas).await);
    assert_eq!(
        a, b,
        "{name}: tables, row counts and RLS flags (enabled, forced)"
    );
    assert_eq!(
        rows(&src, "select count(*) from auth.users").await,
        rows(&tgt, "select count(*) from public.app_users").await,
        "{name}: every user"
    );
    // plpgsql_check is one of RDS's extensions; the servers of other
    // majors (npm's embedded-postgres) ship contrib only.
    if rows(
        &tgt,
        "select 1 from pg_available_extensions where name = 'plpgsql_check'",
    )
    .await
    .is_empty()
    {
        assert_ne!(
            sb.target_cluster().major().unwrap(),
            15,
            "{name}: no plpgsql_check on a 15 target"
        );
    } else {
        plpgsql_check(&tgt, &schemas, name).await;
    }
    storage(sb, work, &src, name).await;
    comments(&src, &tgt, &schemas, work, name).await;
}

/// The comments on the application's objects (not an extension's), by
/// the object's identity.
async fn comments_of(c: &Client, schemas: &[String]) -> BTreeMap<String, String> {
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    rows(
        c,
        &format!(
            "select o.type || ' ' || o.identity, d.description from pg_description d, \
                    pg_identify_object(d.classoid, d.objoid, d.objsubid) o \
             where coalesce(o.schema, o.name) in ({list}) \
               and not exists (select from pg_depend e where e.classid = d.classoid and e.objid = d.objoid and e.deptype = 'e')"
        ),
    )
    .await
    .into_iter()
    .filter_map(|r| Some((r[0].clone()?, r[1].clone()?)))
    .collect()
}

/// Every comment of the source is on the target, or the plan says why not
/// (a line per comment it leaves out).
async fn comments(src: &Client, tgt: &Client, schemas: &[String], work: &Path, name: &str) {
    let (a, b) = (
        comments_of(src, schemas).await,
        comments_of(tgt, schemas).await,
    );
    let missing: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let reported = plan_lines(work)
        .iter()
        .filter(|l| l.starts_with("Dropped ") && l.contains("— comments on "))
        .count();
    assert_eq!(
        missing.len(),
        reported,
        "{name}: comments not on the target:\n{}\nthe plan reports {reported}",
        missing.join("\n")
    );
}

/// Every plpgsql function of the application passes plpgsql_check on the
/// target (trigger functions against their trigger's table).
async fn plpgsql_check(tgt: &Client, schemas: &[String], name: &str) {
    tgt.batch_execute("create extension if not exists plpgsql_check")
        .await
        .unwrap();
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let functions = rows(
        tgt,
        &format!(
            "select p.oid::regprocedure::text, \
                    (select t.tgrelid::regclass::text from pg_trigger t where t.tgfoid = p.oid limit 1), \
                    p.prorettype = 'trigger'::regtype \
             from pg_proc p join pg_language l on l.oid = p.prolang join pg_namespace n on n.oid = p.pronamespace \
             where l.lanname = 'plpgsql' and n.nspname in ({list})"
        ),
    )
    .await;
    let mut errors = Vec::new();
    for f in &functions {
        let (func, table, trigger) = (
            f[0].clone().unwrap(),
            f[1].clone(),
            f[2].as_deref() == Some("t"),
        );
        assert!(
            !trigger || table.is_some(),
            "{name}: trigger function {func} has no trigger on the target"
        );
        let rel = table
            .map(|t| format!(", '{t}'::regclass"))
            .unwrap_or_default();
        for e in rows(
            tgt,
            &format!("select message from plpgsql_check_function_tb('{func}'::regprocedure{rel}) where level = 'error'"),
        )
        .await
        {
            errors.push(format!("{func}: {}", e[0].clone().unwrap_or_default()));
        }
    }
    assert!(
        errors.is_empty(),
        "{name}: plpgsql_check:\n{}",
        errors.join("\n")
    );
}

/// Every object whose file the source has is in the destination with the
/// same bytes, and every reference value points at its copy.
async fn storage(sb: &Sandbox, work: &Path, src: &Client, name: &str) {
    let dest = work.join("s3");
    for r in rows(src, "select bucket_id, name from storage.objects").await {
        let (bucket, key) = (r[0].clone().unwrap(), r[1].clone().unwrap());
        let from = sb.storage_dir().join(&bucket).join(&key);
        if !from.exists() {
            continue;
        }
        let to: PathBuf = dest.join(format!("{PREFIX}{bucket}")).join(&key);
        assert_eq!(
            std::fs::read(&from).unwrap(),
            std::fs::read(&to).unwrap_or_default(),
            "{name}: {bucket}/{key} copied to {}",
            to.display()
        );
    }
}

/// Every rewritten reference of the files app is `s3://<dest bucket>/<key>`
/// of a copied object; '' and NULL stay as they were.
async fn references(sb: &Sandbox, work: &Path) {
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    let mut seen = 0;
    for (table, column) in [
        ("public.documents", "file_path"),
        ("public.documents", "public_url"),
        ("public.documents", "preview_url"),
        ("public.documents", "share_url"),
        ("media.images", "path"),
    ] {
        for r in rows(
            &tgt,
            &format!("select {column} from {table} where {column} is not null"),
        )
        .await
        {
            let v = r[0].clone().unwrap();
            let rest = v
                .strip_prefix("s3://")
                .unwrap_or_else(|| panic!("{table}.{column}: {v}"));
            let (bucket, key) = rest.split_once('/').unwrap();
            assert!(bucket.starts_with(PREFIX), "{v}");
            assert!(
                work.join("s3").join(bucket).join(key).is_file(),
                "{v} points at its copy"
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen} references checked");
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let q = "select count(*) filter (where note = ''), count(*) filter (where note is null) from public.documents";
    assert_eq!(
        rows(&tgt, q).await,
        rows(&src, q).await,
        "'' and NULL stay as they were"
    );
}

/// Each user's view of the notes through RLS and auth.uid(), on one side.
async fn notes_seen(c: &Client, user: &str) -> Vec<String> {
    let claims = format!("{{\"sub\":\"{user}\",\"role\":\"authenticated\"}}");
    c.batch_execute(&format!(
        "select set_config('request.jwt.claims', '{claims}', false); set role authenticated"
    ))
    .await
    .unwrap();
    let seen = rows(c, "select title from public.notes order by title").await;
    c.batch_execute("reset role").await.unwrap();
    seen.into_iter().filter_map(|r| r[0].clone()).collect()
}

/// The files each side's output, reports and state hold (the secrets file
/// and the copied data aside).
fn files_text(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name == "s3"
            || name == "secrets.json"
            || name.starts_with("supamigrate-backup")
            || name == "backups"
        {
            continue;
        }
        if p.is_dir() {
            files_text(&p, out);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push_str(&t);
        }
    }
}

fn assert_no_secret(text: &str, what: &str) {
    for s in apps::SECRETS {
        assert!(!text.contains(s), "{what} shows the fixture secret {s}");
    }
}

/// Each feature of a Supabase project the fixture applications use, and
/// the plan line it must produce: (feature, app, action, object contains,
/// reason contains). Lines are `Action object — reason`; the Storage plan's
/// reference lines count too (`Reference …`).
const FEATURES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "users with and without email",
        "notes",
        "Rewritten",
        "column public.app_users.email",
        "nullable",
    ),
    (
        "phone-only users",
        "notes",
        "Rewritten",
        "column public.app_users.email",
        "by phone",
    ),
    (
        "anonymous users",
        "notes",
        "Rewritten",
        "column public.app_users.email",
        "anonymously",
    ),
    (
        "SSO users",
        "notes",
        "Rewritten",
        "column public.app_users.email",
        "unique among non-SSO users",
    ),
    (
        "OAuth-only users, bcrypt and argon2 hashes",
        "notes",
        "Added",
        "table public.app_users",
        "password hashes (bcrypt, argon2) are copied as they are",
    ),
    (
        "an app schema besides public",
        "notes",
        "Rewritten",
        "CREATE SCHEMA private",
        "provision creates the schema",
    ),
    (
        "an app schema besides public (files)",
        "files",
        "Rewritten",
        "CREATE SCHEMA media",
        "provision creates the schema",
    ),
    (
        "foreign keys to auth.users",
        "notes",
        "Rewritten",
        "notes_owner_fkey",
        "now references public.app_users",
    ),
    (
        "foreign keys to storage.objects(id)",
        "files",
        "Kept",
        "documents_object_id_fkey",
        "Storage's metadata tables move to the target",
    ),
    (
        "views over auth.users",
        "notes",
        "Added",
        "view auth.users",
        "view public.user_directory",
    ),
    (
        "views over storage.objects",
        "files",
        "Kept",
        "view public.my_files",
        "Storage's metadata tables move to the target",
    ),
    (
        "policies with subqueries on auth.users",
        "notes",
        "Added",
        "view auth.users",
        "policy \"verified users read shared notes\" on public.notes",
    ),
    (
        "SQL functions reading auth.users",
        "notes",
        "Added",
        "view auth.users",
        "function public.user_email",
    ),
    (
        "SECURITY DEFINER plpgsql updating auth.users",
        "notes",
        "Added",
        "view auth.users",
        "function public.set_claim",
    ),
    (
        "auth.users' row level security",
        "notes",
        "Added",
        "row level security on public.app_users",
        "as on auth.users",
    ),
    (
        "triggers on auth.users",
        "notes",
        "Rewritten",
        "trigger on_auth_user_created on auth.users",
        "moved from auth.users to public.app_users",
    ),
    (
        "triggers on auth.identities",
        "notes",
        "Dropped",
        "trigger on_identity_linked on auth.identities",
        "Supabase Auth no longer writes it on the target",
    ),
    (
        "triggers on auth.mfa_factors",
        "notes",
        "Dropped",
        "trigger on_mfa_enrolled on auth.mfa_factors",
        "Supabase Auth no longer writes it on the target",
    ),
    (
        "trigger functions of left-out triggers",
        "notes",
        "Dropped",
        "function public.log_identity",
        "would never run",
    ),
    (
        "triggers on storage.objects",
        "files",
        "Dropped",
        "trigger on_object_uploaded on storage.objects",
        "uploads go to S3",
    ),
    (
        "functions reading storage.objects",
        "files",
        "Kept",
        "function public.bucket_usage",
        "Storage's metadata tables move to the target",
    ),
    (
        "buckets and their settings",
        "files",
        "Dropped",
        "bucket avatars settings",
        "no S3 equivalent",
    ),
    (
        "Storage policies",
        "files",
        "Dropped",
        "policy \"owners manage their documents\" on storage.objects",
        "no S3 equivalent",
    ),
    (
        "references: bare paths",
        "files",
        "Reference",
        "public.documents.file_path=documents",
        "discovered",
    ),
    (
        "references: public URLs",
        "files",
        "Reference",
        "public.documents.public_url=avatars",
        "discovered",
    ),
    (
        "references: authenticated render URLs",
        "files",
        "Reference",
        "public.documents.preview_url=documents",
        "discovered",
    ),
    (
        "references: signed URLs",
        "files",
        "Reference",
        "public.documents.share_url=documents",
        "discovered",
    ),
    (
        "the project's own event trigger",
        "hooks",
        "Dropped",
        "event trigger note_new_tables",
        "the project's own DDL hook",
    ),
    (
        "a database setting (built-in)",
        "hooks",
        "Kept",
        "database setting TimeZone = Asia/Kolkata",
        "provision sets it on the target database",
    ),
    (
        "a custom database setting its functions read",
        "hooks",
        "Dropped",
        "database setting app.region = eu-west-1",
        "only a superuser may store one",
    ),
    (
        "a custom database setting holding a key",
        "hooks",
        "Dropped",
        "database setting app.service_key = [secret-",
        "only a superuser may store one",
    ),
    (
        "references in a large table, found in sampled pages",
        "files",
        "Reference",
        "public.activity.attachment=documents",
        "discovered",
    ),
    (
        "references in an app schema",
        "files",
        "Reference",
        "media.images.path=avatars",
        "discovered",
    ),
    (
        "a CHECK that calls an extension the target lacks",
        "hooks",
        "Rewritten",
        "public.hook_settings",
        "constraint doc_shape removed",
    ),
    (
        "Database Webhooks and net.http_post call sites: into the outbox",
        "hooks",
        "Added",
        "HTTP outbox supamigrate_outbox.http_requests",
        "pg_net and Database Webhooks are not on RDS",
    ),
    (
        "http extension call sites",
        "hooks",
        "Dropped",
        "function public.fetch_rate",
        "calls extensions.http_get",
    ),
    (
        "pg_cron jobs carried",
        "hooks",
        "Kept",
        "pg_cron job purge-cancelled-orders",
        "scheduled from the target's postgres database",
    ),
    (
        "pg_cron jobs calling pg_net: kept, through the outbox",
        "hooks",
        "Kept",
        "pg_cron job ping-shipping",
        "scheduled from the target's postgres database",
    ),
    (
        "pg_cron jobs calling a left-out function",
        "hooks",
        "Dropped",
        "pg_cron job refresh-rates",
        "public.fetch_rate",
    ),
    (
        "pgmq queues",
        "hooks",
        "Kept",
        "pgmq queue order_events_queue",
        "created on the target by the pgmq shim",
    ),
    (
        "pgmq in plain SQL",
        "hooks",
        "Added",
        "pgmq in plain SQL",
        "the target does not offer the pgmq extension",
    ),
    (
        "Vault secrets: names carried, values never read",
        "hooks",
        "Added",
        "Vault shim",
        "stripe_secret_key",
    ),
    (
        "a wrappers FDW server with a key",
        "hooks",
        "Dropped",
        "foreign server stripe_server (stripe_wrapper wrapper)",
        "are not shown",
    ),
    (
        "its foreign tables",
        "hooks",
        "Dropped",
        "foreign table public.stripe_customers",
        "foreign server is not migrated",
    ),
    (
        "Realtime publication tables",
        "hooks",
        "Dropped",
        "publication supabase_realtime (public.orders)",
        "Supabase Realtime",
    ),
    (
        "realtime.broadcast_changes triggers",
        "hooks",
        "Dropped",
        "function public.broadcast_order",
        "calls realtime.broadcast_changes",
    ),
    (
        "their triggers",
        "hooks",
        "Dropped",
        "trigger broadcast_order_changes on public.orders",
        "left out",
    ),
    (
        "a policy on realtime.messages",
        "hooks",
        "Dropped",
        "policy \"users listen to their orders\" on realtime.messages",
        "Realtime authorization",
    ),
    (
        "secrets in definitions",
        "hooks",
        "Rewritten",
        "secrets in definitions",
        "[secret-N]",
    ),
    (
        "platform extensions nothing uses",
        "hooks",
        "Dropped",
        "extension pg_graphql",
        "left behind",
    ),
    (
        "vector in extensions",
        "search",
        "Kept",
        "extension vector",
        "schema extensions",
    ),
    (
        "HNSW indexes",
        "search",
        "Kept",
        "index articles_embedding_idx",
        "standard PostgreSQL",
    ),
    (
        "moddatetime triggers",
        "search",
        "Kept",
        "extension moddatetime",
        "offered by the target",
    ),
    (
        "vector in public",
        "catalog",
        "Kept",
        "extension vector",
        "schema public",
    ),
    (
        "the project's own role",
        "catalog",
        "Added",
        "role catalog_reporting",
        "provision creates it NOLOGIN",
    ),
    (
        "a publication that is not Realtime's: a list of tables",
        "catalog",
        "Added",
        "publication catalog_feed",
        "made again on the target after its tables",
    ),
    (
        "a publication with a column list and a row filter",
        "catalog",
        "Added",
        "publication catalog_partial",
        "column lists, row filters",
    ),
    (
        "the project's default privileges, for every schema",
        "catalog",
        "Rewritten",
        "default privileges of postgres: REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        "FOR ROLE left out",
    ),
    (
        "the project's default privileges in a schema, to its own role",
        "catalog",
        "Rewritten",
        "default privileges of postgres: IN SCHEMA public GRANT SELECT ON TABLES TO catalog_reporting",
        "FOR ROLE left out",
    ),
    (
        "an extension in public",
        "catalog",
        "Kept",
        "extension citext",
        "schema public",
    ),
];

/// Every line of a plan: its decisions and its Storage reference lines.
fn plan_lines(work: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(work.join(".supamigrate/plan.json")).unwrap();
    let plan: supamigrate::plan::MigrationPlan = serde_json::from_str(&text).unwrap();
    let mut lines: Vec<String> = plan
        .conversion
        .report
        .iter()
        .map(|d| format!("{:?} {} — {}", d.action, d.object, d.reason))
        .collect();
    lines.extend(
        plan.storage
            .reference_reasons
            .iter()
            .map(|r| format!("Reference {r}")),
    );
    lines
}

/// Every feature of `name` has its line.
fn assert_features(work: &Path, name: &str) {
    let lines = plan_lines(work);
    let mut missing = Vec::new();
    for (feature, app, action, object, reason) in FEATURES.iter().filter(|f| f.1 == name) {
        let hit = lines.iter().any(|l| {
            l.starts_with(&format!("{action} ")) && l.contains(object) && l.contains(reason)
        });
        if !hit {
            missing.push(format!(
                "{feature} ({app}): no line `{action} …{object}… — …{reason}…`"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "features without their plan line:\n{}\n\nthe plan's lines:\n{}",
        missing.join("\n"),
        lines.join("\n")
    );
}

async fn one_app(name: &str) {
    if !supamigrate_sandbox::platform::require(&format!("apps::{name}")) {
        return;
    }
    let (sb, work, out) = migrate(name).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{name}: {t}");
    // All green only when the plan left nothing of the application
    // behind; else the verdict says what (the apps that use pg_net, Storage
    // policies or Auth's internals).
    let verdict = if matches!(name, "accounts" | "catalog" | "search") {
        "✓ migration complete: verify is all green"
    } else {
        "✓ migration complete: data equal; "
    };
    assert!(t.contains(verdict), "{name}: {t}");
    assert_features(work.path(), name);
    check(&sb, work.path(), name).await;
    assert_no_secret(&t, &format!("{name}: run's output"));
    let mut files = String::new();
    files_text(work.path(), &mut files);
    assert_no_secret(&files, &format!("{name}: the state folder and reports"));
    match name {
        "notes" => notes_app(&sb, work.path(), &t).await,
        "files" => {
            references(&sb, work.path()).await;
            let tgt = connect(&sb.target_url()).await.unwrap();
            assert_eq!(
                rows(&tgt, "select count(*) from pg_indexes where schemaname = 'storage' and indexname = 'name_prefix_search'").await,
                [[Some("1".to_string())]],
                "Storage's index for folder listings"
            );
        }
        "search" => search_app(&sb).await,
        "catalog" => {
            let tgt = connect(&sb.target_url()).await.unwrap();
            assert_eq!(
                rows(&tgt, "select has_table_privilege('catalog_reporting', 'public.products', 'select')::text, \
                            (select rolcanlogin from pg_roles where rolname = 'catalog_reporting')::text").await,
                [[Some("true".to_string()), Some("false".to_string())]],
                "the project's role, NOLOGIN, with its grant"
            );
            assert_eq!(
                rows(&tgt, "select array_to_string(s.setconfig, ',') from pg_db_role_setting s \
                            join pg_roles r on r.oid = s.setrole join pg_database d on d.oid = s.setdatabase \
                            where r.rolname = 'catalog_reporting' and d.datname = current_database()").await,
                [[Some("statement_timeout=5s".to_string())]],
                "the project's role keeps its setting, in the target database"
            );
            default_privileges(&tgt).await;
            let publications = "select p.pubname::text, p.pubinsert::text, p.pubtruncate::text, \
                t.schemaname || '.' || t.tablename, t.attnames::text, t.rowfilter \
                from pg_publication p join pg_publication_tables t using (pubname) order by 1";
            let src = connect(&sb.source_superuser("postgres")).await.unwrap();
            let on_source = rows(&src, publications).await;
            assert_eq!(on_source.len(), 2, "{on_source:?}");
            assert_eq!(
                rows(&tgt, publications).await,
                on_source,
                "the project's publications made again, with their tables, column lists, row filters and operations"
            );
        }
        "accounts" => {
            let tgt = connect(&sb.target_url()).await.unwrap();
            assert_eq!(
                rows(&tgt, "select email, created_at is null from public.app_users where id = 'd4444444-4444-4444-8444-444444444444'").await,
                [[Some("helper@accounts.example".to_string()), Some("t".to_string())]],
                "the user without created_at, as on the source"
            );
            assert_eq!(
                rows(&tgt, "select public.sign_in_methods('a1111111-1111-4111-8111-111111111111'), \
                            (select count(*)::text from auth.identities), \
                            (select string_agg(email, ',') from auth.identities where provider = 'github')").await,
                [[Some("email, github".to_string()), Some("3".to_string()), Some("only@accounts.example".to_string())]],
                "auth.identities moved: the function reading it answers as on the source, its generated email computed"
            );
        }
        "hooks" => {
            hooks_app(&sb, &t).await;
            secrets_in_logs(&sb, work.path()).await;
            // Last: it writes on the target.
            runtime_shims(&sb).await;
        }
        _ => {}
    }
}

/// What the application creates on the target after the migration gets
/// the source's defaults: a function PUBLIC may not execute, a table the
/// project's reporting role may read; what the dump made keeps its own
/// privileges (a function made before the defaults stays executable).
async fn default_privileges(tgt: &Client) {
    tgt.batch_execute(
        "create function public.made_later() returns int language sql as 'select 1'; \
         create table public.made_later (id int)",
    )
    .await
    .unwrap();
    let public_may = "select coalesce(bool_or(a.grantee = 0), false)::text from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
                      where p.oid = $1::text::regprocedure and a.privilege_type = 'EXECUTE'";
    let mut seen = Vec::new();
    for f in [
        "public.made_later()",
        "public.similar_products(bigint, integer)",
    ] {
        let r = tgt.query_one(public_may, &[&f]).await.unwrap();
        seen.push(r.get::<_, String>(0));
    }
    assert_eq!(
        seen,
        ["false", "true"],
        "PUBLIC may execute: a function made later, one the dump made"
    );
    assert_eq!(
        rows(
            tgt,
            "select has_table_privilege('catalog_reporting', 'public.made_later', 'select')::text"
        )
        .await,
        [[Some("true".to_string())]],
        "a table made later is readable by the project's reporting role"
    );
    tgt.batch_execute("drop function public.made_later(); drop table public.made_later")
        .await
        .unwrap();
}

/// The materialized views the source populated hold the same rows on the
/// target (one read another; the never-populated one stays so), and the
/// foreign key between the partitioned tables holds and is enforced.
async fn search_app(sb: &Sandbox) {
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_url()).await.unwrap();
    for sql in [
        "select name, articles::text from public.tag_usage order by 1",
        "select name, articles::text from public.a_used_tags order by 1",
        "select relname::text, relispopulated::text from pg_class where relkind = 'm' and relnamespace = 'public'::regnamespace order by 1",
        "select conrelid::regclass::text, convalidated::text from pg_constraint where contype = 'f' and conparentid = 0 and conrelid = 'public.event_notes'::regclass",
    ] {
        let (a, b) = (rows(&src, sql).await, rows(&tgt, sql).await);
        assert!(!a.is_empty(), "{sql}");
        assert_eq!(a, b, "{sql}");
    }
    let refused = tgt
        .batch_execute(
            "insert into public.event_notes (event_id, event_at) values (-1, '2024-01-05')",
        )
        .await
        .expect_err("the foreign key is enforced on the target");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
    tgt.batch_execute("refresh materialized view concurrently public.tag_usage")
        .await
        .expect("the application's refresh works on the target");
}

/// Two users, each seeing only their rows, the same on both sides; the
/// functions that read and update auth.users work on the target.
async fn notes_app(sb: &Sandbox, work: &Path, run_output: &str) {
    // The Auth hook: reported before anything was written (nothing calls
    // it on the target), and it still answers as on the source.
    assert!(
        run_output.contains("custom_access_token_hook")
            && run_output.contains("an Auth hook (Supabase Auth calls it"),
        "{run_output}"
    );
    let hook = "select public.custom_access_token_hook(jsonb_build_object('user_id', 'a1111111-1111-4111-8111-111111111111', 'claims', '{}'::jsonb))->'claims'->>'notes'";
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_url()).await.unwrap();
    let (a, b) = (rows(&src, hook).await, rows(&tgt, hook).await);
    assert_ne!(a, [[Some("0".to_string())]], "alice owns notes");
    assert_eq!(a, b, "the hook answers as on the source");
    assert_eq!(
        rows(&tgt, "select obj_description('public.notes'::regclass), \
                           (select description from pg_description d join pg_policy p on p.oid = d.objoid where p.polname = 'own notes')").await,
        [[Some("A user's notes; shared ones are read by verified users".to_string()),
          Some("owners read and write their own notes".to_string())]],
        "the table's and the policy's comments"
    );
    // With plpgsql_check in the target database (the check created
    // it), verify runs it on every plpgsql function too.
    let mut v = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    v.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env_remove("RUST_LOG")
        .current_dir(work)
        .args(["-q", "verify"]);
    let out = run(v).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("plpgsql_check passed"), "{t}");
    notes_behave(sb).await;
}

/// The notes application's own behaviour on the target, as on the source:
/// each user sees only their notes; the functions that read and update
/// auth.users work; users without an email are there.
pub async fn notes_behave(sb: &Sandbox) {
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    let (alice, bob) = (
        "a1111111-1111-4111-8111-111111111111",
        "b2222222-2222-4222-8222-222222222222",
    );
    let (a, b) = (notes_seen(&tgt, alice).await, notes_seen(&tgt, bob).await);
    assert_eq!(
        a,
        notes_seen(&src, alice).await,
        "alice sees the same notes"
    );
    assert_eq!(b, notes_seen(&src, bob).await, "bob sees the same notes");
    assert!(
        a.contains(&"Alice 1".to_string()) && !a.contains(&"Bob 1".to_string()),
        "{a:?}"
    );
    assert!(
        b.contains(&"Bob 1".to_string()) && !b.contains(&"Alice 1".to_string()),
        "{b:?}"
    );
    let email = rows(&tgt, &format!("select public.user_email('{alice}')")).await;
    assert_eq!(email[0][0].as_deref(), Some("alice@notes.example"));
    let set = rows(
        &tgt,
        &format!("select public.set_claim('{bob}', 'tier', '\"gold\"')"),
    )
    .await;
    assert_eq!(set[0][0].as_deref(), Some("OK"));
    let meta = rows(
        &tgt,
        &format!("select raw_app_meta_data ->> 'tier' from public.app_users where id = '{bob}'"),
    )
    .await;
    assert_eq!(
        meta[0][0].as_deref(),
        Some("gold"),
        "set_claim updated app_users through auth.users"
    );
    let kinds = rows(
        &tgt,
        "select count(*) filter (where email is null), count(*) filter (where is_anonymous), count(*) filter (where is_sso_user) from public.app_users",
    )
    .await;
    assert_eq!(
        kinds[0],
        [Some("2".into()), Some("1".into()), Some("1".into())],
        "phone-only and anonymous users have no email"
    );
}

/// The purge job is scheduled on the target (from its postgres database)
/// into the application's database; the job calling pg_net is not.
async fn hooks_app(sb: &Sandbox, out: &str) {
    let cron = connect(&sb.target_superuser("postgres")).await.unwrap();
    let jobs = rows(&cron, "select jobname, database from cron.job order by 1").await;
    let db = Some(sb.target_url().dbname.clone());
    assert_eq!(
        jobs,
        [
            [Some("ping-shipping".into()), db.clone()],
            [Some("purge-cancelled-orders".into()), db]
        ],
        "{out}"
    );
    // The database's built-in settings, as a new session on the target
    // sees them; the custom one is the plan's to-do, and set per session
    // (as the to-do says) the function reads it.
    let tgt = connect(&sb.target_url()).await.unwrap();
    assert_eq!(
        rows(&tgt, "select current_setting('search_path'), current_setting('timezone'), public.region() is null").await,
        [[Some("\"$user\", public, extensions".to_string()), Some("Asia/Kolkata".to_string()), Some("t".to_string())]],
        "{out}"
    );
    assert_eq!(
        rows(&tgt, "set app.region = 'eu-west-1'; select public.region()").await,
        [[Some("eu-west-1".to_string())]]
    );
}

/// Supabase's runtime on the target: a webhook and net.http_post land in
/// the outbox; a Vault read works once the secret is set there (its value
/// was never read from Supabase); a pgmq queue sends and reads.
async fn runtime_shims(sb: &Sandbox) {
    let tgt = connect(&sb.target_url()).await.unwrap();
    tgt.batch_execute(
        "insert into public.orders (total_cents) values (4200);
         select public.notify_shipping(7);",
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&tgt, "select method, url, origin, body->>'type', body->'record'->>'total_cents', (delivered_at is null)::text \
                    from supamigrate_outbox.http_requests order by id").await,
        [
            ["POST", "https://hooks.example.com/orders", "webhook orders-webhook on public.orders", "INSERT", "4200", "true"].map(|s| Some(s.to_string())).to_vec(),
            vec![Some("POST".into()), Some("https://shipping.example.com/v1/notify".into()), Some("net.http_post".into()), None, None, Some("true".into())],
        ],
        "the webhook and the net.http_post call, each a row of the outbox"
    );
    assert_eq!(
        rows(&tgt, "select (public.stripe_key() is null)::text, count(*)::text from vault.secrets group by 1").await,
        [[Some("true".to_string()), Some("1".to_string())]],
        "the secret's row is there, without its value"
    );
    assert_eq!(
        rows(&tgt, "do $$ begin perform vault.update_secret(id, 'sk_test_set_on_target') from vault.secrets where name = 'stripe_secret_key'; end $$; \
                    select public.stripe_key()").await,
        [[Some("sk_test_set_on_target".to_string())]],
    );
    assert_eq!(
        rows(
            &tgt,
            "do $$ begin perform public.enqueue_order(9); end $$; \
                    select message->>'order' from pgmq.read('order_events_queue', 30, 10)"
        )
        .await,
        [[Some("9".to_string())]],
        "a pgmq queue sends and reads on the target"
    );
    assert_eq!(
        rows(
            &tgt,
            "do $$ begin perform public.enqueue_order(10); end $$; \
             select (public.queue_length('order_events_queue') = (select count(*) from pgmq.q_order_events_queue))::text, \
                    (select string_agg(message->>'order', ',') from public.queue_read('order_events_queue', 30, 10))"
        )
        .await,
        [[Some("true".to_string()), Some("10".to_string())]],
        "the project's wrappers over pgmq's record type and metrics work on the target"
    );
}

/// `plan --json`, `verify` and `schema export` with debug logs: no secret
/// of the fixture in their output, logs or files.
async fn secrets_in_logs(sb: &Sandbox, work: &Path) {
    let export = work.join("export");
    let (plan_out, converted) = (
        work.join("plan-out.json"),
        work.join("export/converted.sql"),
    );
    for args in [
        vec!["plan", "--json"],
        vec!["plan", "--out", plan_out.to_str().unwrap()],
        vec!["verify"],
        vec!["schema", "export", "--out", export.to_str().unwrap()],
        vec!["schema", "convert", "--out", converted.to_str().unwrap()],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
        c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
            .env("RDS_URL", sb.target_url().to_url_with_password())
            .env("RUST_LOG", "debug")
            .current_dir(work)
            .args(&args);
        let out = run(c).await;
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        assert_no_secret(&output_text(&out), &format!("{args:?} with debug logs"));
    }
    let mut files = String::new();
    files_text(&export, &mut files);
    assert!(
        files.contains("[secret-1]"),
        "the export shows placeholders"
    );
    assert_no_secret(&files, "schema export");
    assert_no_secret(&std::fs::read_to_string(&plan_out).unwrap(), "plan --out");
    // The plan stored on the target, and the target server's log (the
    // backup's restore test ran on that server).
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    let stored: String = tgt
        .query_one("select body from supamigrate.plan", &[])
        .await
        .unwrap()
        .get(0);
    assert_no_secret(&stored, "the plan stored on the target");
    let log = std::fs::read_to_string(sb.target_cluster().log_path()).unwrap();
    assert_no_secret(&log, "the target server's log");
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_migrates_and_works() {
    one_app("notes").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_migrates_and_works() {
    one_app("files").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_migrates_and_works() {
    one_app("hooks").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_migrates_and_works() {
    one_app("search").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_with_no_table_of_its_own_migrates_its_users() {
    one_app("accounts").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_migrates_and_works() {
    one_app("catalog").await;
}
