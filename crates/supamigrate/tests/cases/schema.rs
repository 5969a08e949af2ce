//! The schema phase against real clusters: provision + apply on the RDS-like
//! target, as its non-superuser master, compared with the seed runbook's own
//! converted schema; the RLS shim; unsupported extensions.

use std::collections::{BTreeMap, BTreeSet};

use supamigrate::apply::{apply, Applied};
use supamigrate::connect::{connect, Password};
use supamigrate::ops::{AlwaysYes, Context};
use supamigrate::plan::{PlanOverrides, PolicyMode, Section};
use supamigrate::provision::{provision, ProvisionRequest};
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::context;

/// The seed runbook, in `../shared`.
const SEED: &str = "seed/000_5582c1bb4dae8c4c.txt";

fn seed_sql() -> String {
    let path = supamigrate_sandbox::shared::path(SEED);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The runbook's Step 1.2 is the one ```sql block that starts with the converted schema.
    let start = text
        .find("-- migration/schema/03_converted_schema.sql")
        .expect("Step 1.2 in the seed");
    let end = start + text[start..].find("```").expect("end of the block");
    text[start..end].to_string()
}

fn options(policies: PolicyMode) -> PlanOverrides {
    PlanOverrides {
        policies: Some(policies),
        app_role: Some("tms_app".into()),
        ..PlanOverrides::default()
    }
}

fn ctx(sb: &Sandbox, overrides: PlanOverrides, state: &std::path::Path) -> Context {
    context(sb.source_url(), sb.target_url(), overrides, state)
}

fn request(secrets: &std::path::Path, password: Option<&str>) -> ProvisionRequest {
    ProvisionRequest {
        password: password.map(Password::new),
        secrets_dir: secrets.to_path_buf(),
    }
}

async fn migrate_schema(sb: &Sandbox, policies: PolicyMode) -> supamigrate::Result<()> {
    let state = tempfile::tempdir().unwrap();
    let ctx = ctx(sb, options(policies), state.path());
    let plan = ctx.plan().await?.plan;
    supamigrate::ops::provision(&ctx, &request(state.path(), None), &AlwaysYes).await?;
    let m = crate::common::migration(&ctx, plan.clone());
    assert_eq!(
        apply(&m, Section::PreData).await?,
        Applied::Now(plan.statements(Section::PreData).len())
    );
    assert_eq!(
        apply(&m, Section::PostData).await?,
        Applied::Now(plan.statements(Section::PostData).len())
    );
    Ok(())
}

/// The `public` schema's catalog, one line per fact, by kind.
async fn catalog(c: &Client) -> BTreeMap<&'static str, BTreeSet<String>> {
    c.batch_execute("set search_path = ''").await.unwrap();
    let queries: &[(&str, &str)] = &[
        ("table", "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'"),
        (
            "column",
            "select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                 || case when a.attnotnull then ' not null' else '' end \
                 || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
             where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped",
        ),
        (
            "constraint",
            "select conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
             from pg_constraint where connamespace = 'public'::regnamespace and contype in ('p', 'u', 'f', 'c')",
        ),
        ("index", "select pg_get_indexdef(indexrelid) from pg_index i join pg_class c on c.oid = i.indexrelid where c.relnamespace = 'public'::regnamespace"),
        (
            "enum",
            "select t.typname || ' ' || string_agg(e.enumlabel, ',' order by e.enumsortorder) \
             from pg_type t join pg_enum e on e.enumtypid = t.oid where t.typnamespace = 'public'::regnamespace group by t.typname",
        ),
        (
            "function",
            "select p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || pg_get_function_result(p.oid) \
                 || ' ' || l.lanname || ' ' || p.provolatile::text \
             from pg_proc p join pg_language l on l.oid = p.prolang where p.pronamespace = 'public'::regnamespace",
        ),
        (
            "function attributes",
            "select p.proname || ' security definer=' || p.prosecdef::text || ' config=' || coalesce(array_to_string(p.proconfig, ','), '') \
             from pg_proc p where p.pronamespace = 'public'::regnamespace",
        ),
        (
            "trigger",
            "select pg_get_triggerdef(t.oid) from pg_trigger t join pg_class c on c.oid = t.tgrelid \
             where c.relnamespace = 'public'::regnamespace and not t.tgisinternal",
        ),
    ];
    let mut out = BTreeMap::new();
    for (kind, sql) in queries {
        let rows = c
            .query(*sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        out.insert(*kind, rows.iter().map(|r| r.get::<_, String>(0)).collect());
    }
    out
}

/// Differences we keep on purpose: (kind, "seed" or "ours", fact, why).
const INTENTIONAL: &[(&str, &str, &str, &str)] = &[
    (
        "column",
        "seed",
        "app_users.email text not null",
        "users who signed up by phone, anonymously or through SSO have no email: every user migrates",
    ),
    ("column", "ours", "app_users.email text", "see above"),
    (
        "constraint",
        "seed",
        "public.app_users app_users_email_key UNIQUE (email)",
        "auth.users lets an SSO user share a non-SSO user's email: unique among non-SSO users, as users_email_partial_key",
    ),
    ("index", "seed", "CREATE UNIQUE INDEX app_users_email_key ON public.app_users USING btree (email)", "see above"),
    (
        "index",
        "ours",
        "CREATE UNIQUE INDEX app_users_email_partial_key ON public.app_users USING btree (email) WHERE (is_sso_user = false)",
        "see above",
    ),
    // auth.users' other columns move as they are: the auth.users view over
    // app_users shows them to the application's code.
    ("column", "ours", "app_users.aud character varying(255)", "carried from auth.users"),
    ("column", "ours", "app_users.confirmed_at timestamp with time zone default LEAST(email_confirmed_at, phone_confirmed_at)", "carried from auth.users (generated)"),
    ("column", "ours", "app_users.email_change_confirm_status smallint default 0", "carried from auth.users"),
    ("column", "ours", "app_users.email_change_token_current character varying(255) default ''::character varying", "carried from auth.users"),
    ("column", "ours", "app_users.instance_id uuid", "carried from auth.users"),
    ("column", "ours", "app_users.is_anonymous boolean not null default false", "carried from auth.users"),
    ("column", "ours", "app_users.is_sso_user boolean not null default false", "carried from auth.users"),
    ("column", "ours", "app_users.phone_change text default ''::character varying", "carried from auth.users"),
    ("column", "ours", "app_users.phone_change_sent_at timestamp with time zone", "carried from auth.users"),
    ("column", "ours", "app_users.phone_change_token character varying(255) default ''::character varying", "carried from auth.users"),
    ("column", "ours", "app_users.reauthentication_sent_at timestamp with time zone", "carried from auth.users"),
    ("column", "ours", "app_users.reauthentication_token character varying(255) default ''::character varying", "carried from auth.users"),
    ("column", "ours", "app_users.role character varying(255)", "carried from auth.users"),
    (
        "column",
        "seed",
        "app_users.encrypted_password text not null",
        "OAuth, magic-link and SSO users have no password: NOT NULL would refuse them",
    ),
    (
        "column",
        "ours",
        "app_users.encrypted_password text",
        "see above",
    ),
    (
        "column",
        "seed",
        "app_users.created_at timestamp with time zone not null default now()",
        "auth.users.created_at is nullable, and users inserted with only an id and an email have none: NOT NULL would refuse them (kept where auth.users has it)",
    ),
    ("column", "ours", "app_users.created_at timestamp with time zone default now()", "see above"),
    ("column", "seed", "app_users.updated_at timestamp with time zone not null default now()", "as created_at"),
    ("column", "ours", "app_users.updated_at timestamp with time zone default now()", "as created_at"),
    (
        "function attributes",
        "seed",
        "has_role security definer=false config=",
        "the runbook rewrote the functions by hand and lost SECURITY DEFINER and the pinned search_path; \
         has_role() runs inside RLS policies and must read user_roles whatever the caller may see",
    ),
    ("function attributes", "ours", "has_role security definer=true config=search_path=public", "see above"),
    ("function attributes", "seed", "is_superadmin security definer=false config=", "as has_role"),
    ("function attributes", "ours", "is_superadmin security definer=true config=search_path=public", "as has_role"),
    (
        "function attributes",
        "seed",
        "handle_new_user security definer=false config=",
        "kept from the source: the trigger inserts into profiles whoever inserts the user",
    ),
    ("function attributes", "ours", "handle_new_user security definer=true config=search_path=public", "see above"),
    (
        "function attributes",
        "seed",
        "update_updated_at_column security definer=false config=",
        "kept from the source: a pinned search_path protects the trigger from search_path tricks",
    ),
    (
        "function attributes",
        "ours",
        "update_updated_at_column security definer=false config=search_path=public",
        "see above",
    ),
];

#[tokio::test]
async fn converted_schema_matches_the_runbooks() {
    if !supamigrate_sandbox::shared::require("schema::converted_schema_matches_the_runbooks", SEED)
    {
        return;
    }
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    migrate_schema(&sb, PolicyMode::Drop)
        .await
        .expect("provision and apply as the non-superuser master");

    // The runbook's converted schema, on a fresh database of the same server.
    let master = connect(&sb.target_url().with_dbname("postgres"))
        .await
        .unwrap();
    master
        .batch_execute("create database seed_reference")
        .await
        .unwrap();
    let seed_db = connect(&sb.target_url().with_dbname("seed_reference"))
        .await
        .unwrap();
    seed_db
        .batch_execute(&seed_sql())
        .await
        .expect("the seed's SQL applies");

    let ours = catalog(&connect(&sb.target_url()).await.unwrap()).await;
    let seed = catalog(&seed_db).await;
    let mut unexplained = Vec::new();
    let mut seen = BTreeSet::new();
    for (kind, seed_facts) in &seed {
        let our_facts = &ours[kind];
        for (side, only) in [
            ("seed", seed_facts.difference(our_facts)),
            ("ours", our_facts.difference(seed_facts)),
        ] {
            for fact in only {
                match INTENTIONAL
                    .iter()
                    .position(|(k, s, f, _)| k == kind && *s == side && f == fact)
                {
                    Some(i) => {
                        seen.insert(i);
                    }
                    None => unexplained.push(format!("{kind} only in {side}: {fact}")),
                }
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "unexplained differences:\n{}",
        unexplained.join("\n")
    );
    let stale: Vec<_> = (0..INTENTIONAL.len())
        .filter(|i| !seen.contains(i))
        .map(|i| INTENTIONAL[i].2)
        .collect();
    assert!(
        stale.is_empty(),
        "listed differences that no longer occur: {stale:?}"
    );
    assert_eq!(ours["table"].len(), 28, "27 TMS tables + app_users");
}

#[tokio::test]
async fn shim_keeps_row_level_security_working_and_reruns_are_safe() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let target = sb.target_url();
    let state = tempfile::tempdir().unwrap();
    let shim = ctx(&sb, options(PolicyMode::Shim), state.path());
    let conv = shim.plan().await.unwrap().plan;
    let popts = request(state.path(), None);
    let report = supamigrate::ops::provision(&shim, &popts, &AlwaysYes)
        .await
        .unwrap();
    let password_file = report
        .password_file
        .clone()
        .expect("a generated password file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Idempotent: a second provision creates nothing.
    let m = crate::common::migration(&shim, conv.clone());
    let again = provision(&m, &popts).await.unwrap();
    assert!(!again.database_created && !again.role_created && again.extensions_created.is_empty());
    assert!(again.password_file.is_none());

    apply(&m, Section::PreData).await.unwrap();
    apply(&m, Section::PostData).await.unwrap();
    assert_eq!(apply(&m, Section::PreData).await.unwrap(), Applied::Earlier);
    assert_eq!(
        apply(&m, Section::PostData).await.unwrap(),
        Applied::Earlier
    );
    // Another plan over it is refused, nothing changed: through the
    // commands (the flags disagree with the stored plan), and underneath.
    let drop = ctx(&sb, options(PolicyMode::Drop), state.path());
    let e = supamigrate::ops::schema_apply(&drop, &[Section::PreData])
        .await
        .unwrap_err();
    assert!(
        e.is_bad_input()
            && e.to_string()
                .contains("--policies drop (the plan has shim)"),
        "{e}"
    );
    let other = drop.make_plan().await.unwrap();
    assert_ne!(other.id, conv.id);
    let other = crate::common::migration(&drop, other);
    let e = apply(&other, Section::PreData).await.unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("different pre-data"),
        "{e}"
    );
    let e = provision(&other, &popts).await.unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("is being migrated by plan"),
        "{e}"
    );

    // Two users, each with the profile handle_new_user makes and a role.
    let master = connect(&target).await.unwrap();
    let (u1, u2) = (
        "6f1b0c3e-0000-4000-8000-000000000001",
        "6f1b0c3e-0000-4000-8000-000000000002",
    );
    master
        .batch_execute(&format!(
            "insert into public.app_users (id, email) values ('{u1}', 'one@example.com'), ('{u2}', 'two@example.com'); \
             insert into public.user_roles (user_id, role) values ('{u1}', 'user'), ('{u2}', 'user');"
        ))
        .await
        .unwrap();

    // The application role, as PostgREST would use it.
    let pw = std::fs::read_to_string(&password_file).unwrap();
    let mut app = target.clone();
    app.user = "tms_app".into();
    app.password = Some(supamigrate::connect::Password::new(pw.trim()));
    let app = connect(&app).await.unwrap();
    for user in [u1, u2] {
        app.batch_execute(&format!(
            "reset role; select set_config('request.jwt.claims', '{{\"sub\":\"{user}\",\"role\":\"authenticated\"}}', false); set role authenticated"
        ))
        .await
        .unwrap();
        for table in ["profiles", "user_roles"] {
            let rows = app
                .query(&format!("select user_id::text from public.{table}"), &[])
                .await
                .unwrap();
            let seen: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(seen, vec![user.to_string()], "{table} as {user}");
        }
        let me: String = app
            .query_one("select auth.uid()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(me, user);
    }
    // Without claims, an authenticated session sees no one's profile.
    app.batch_execute(
        "reset role; select set_config('request.jwt.claims', '', false); set role authenticated",
    )
    .await
    .unwrap();
    assert!(app
        .query("select 1 from public.profiles", &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn unsupported_extension_fails_before_touching_the_target() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    // The source uses hstore; the target's allow-list (RDS's rds.extensions) lacks it.
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute("create extension hstore with schema extensions")
        .await
        .unwrap();
    let pg = connect(&sb.source_url()).await.unwrap();
    pg.batch_execute(
        "create function public.tag_keys(tags extensions.hstore) returns text[] language sql immutable as $$ select extensions.akeys(tags) $$;
         create table public.tagged (id int primary key, label text, tags extensions.hstore);
         insert into public.tagged values (1, 'a', 'x=>1'), (2, 'b', 'y=>2');
         analyze public.tagged;",
    )
    .await
    .unwrap();
    sb.set_target_allowed_extensions(&["pgcrypto", "uuid-ossp", "pg_trgm", "plpgsql"])
        .await
        .unwrap();

    let target = sb.target_url();
    let state = tempfile::tempdir().unwrap();
    let e = ctx(&sb, options(PolicyMode::Drop), state.path())
        .plan()
        .await
        .unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string()
            .contains("hstore: the data of public.tagged.tags (about 2 rows) would be lost"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("--allow-drop-extension hstore"));
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "the target was not touched"
    );

    // Allowed: it proceeds, and the report says what was left behind.
    let mut opts = options(PolicyMode::Drop);
    opts.allow_drop_extensions = Some(["hstore".to_string()].into());
    let allowed = ctx(&sb, opts, state.path());
    let conv = allowed.plan().await.unwrap().plan.conversion;
    let report = conv.report_text();
    assert!(
        report.contains(
            "extension hstore — not offered by the target; let go with --allow-drop-extension"
        ),
        "{report}"
    );
    assert!(
        report.contains("function public.tag_keys — uses extension hstore (dropped with --allow-drop-extension)"),
        "{report}"
    );
    assert!(
        report.contains(
            "column public.tagged.tags — typed by extension hstore: neither created nor copied"
        ),
        "{report}"
    );
    supamigrate::ops::provision(&allowed, &request(state.path(), Some("app-pw")), &AlwaysYes)
        .await
        .unwrap();
    supamigrate::ops::schema_apply(&allowed, &[Section::PreData, Section::PostData])
        .await
        .unwrap();
    let c = connect(&target).await.unwrap();
    let n: i64 = c
        .query_one(
            "select count(*) from pg_proc where proname = 'tag_keys'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let cols: i64 = c
        .query_one(
            "select count(*) from pg_attribute where attrelid = 'public.tagged'::regclass and attnum > 0 and not attisdropped",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 2, "the hstore column is not created");
}
