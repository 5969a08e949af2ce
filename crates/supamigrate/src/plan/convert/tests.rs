//! The conversion rules, case by case.

use std::collections::BTreeSet;

use super::*;
use crate::catalog::Extension;

fn opts(policies: PolicyMode) -> ConvertOptions {
    ConvertOptions {
        policies,
        app_role: "app_user".into(),
        target_major: 15,
        available_extensions: None,
        allow_drop_extensions: BTreeSet::new(),
        stale_generated: None,
        table_rows: [("public.t".to_string(), 42)].into(),
        target_database: "app".into(),
        restrictive: RestrictiveChoice::Refuse,
        allow_wider_access: BTreeSet::new(),
    }
}

fn col(name: &str) -> crate::catalog::ColumnDef {
    crate::catalog::ColumnDef {
        name: name.into(),
        data_type: "text".into(),
        not_null: false,
        default: None,
        generated: None,
    }
}

fn ext(name: &str, schema: &str, dependents: &[&str]) -> Extension {
    Extension {
        name: name.into(),
        schema: schema.into(),
        dependents: dependents.iter().map(|s| s.to_string()).collect(),
        ..Extension::default()
    }
}

fn source(pre: &str, post: &str) -> SchemaSource {
    SchemaSource {
        pre_data: pre.into(),
        post_data: post.into(),
        ..SchemaSource::default()
    }
}

/// Converts one pg_dump-style statement and returns the SQL that comes out.
fn one(sql: &str, policies: PolicyMode) -> Vec<String> {
    let c = convert(&source("", sql), &opts(policies)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.section_sql(Section::PostData)
}

/// (rule, input as pg_dump writes it, output with --policies drop, output with --policies shim)
const CASES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "plain DDL is kept as written",
        "CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text)",
        &["CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text);"],
        &["CREATE TABLE public.\"Mixed Case\" (\"Id\" integer NOT NULL, \"select\" text);"],
    ),
    (
        "grants to API roles go to the application role (drop) or stay (shim)",
        "GRANT ALL ON TABLE public.orders TO anon",
        &["GRANT select, insert, update, delete ON public.orders TO app_user;"],
        &["GRANT ALL ON TABLE public.orders TO anon;"],
    ),
    (
        "only DML privileges are mapped",
        "GRANT SELECT,TRUNCATE,REFERENCES ON TABLE public.orders TO authenticated",
        &["GRANT select ON public.orders TO app_user;"],
        &["GRANT SELECT,TRUNCATE,REFERENCES ON TABLE public.orders TO authenticated;"],
    ),
    (
        "sequence grants map to USAGE, SELECT",
        "GRANT ALL ON SEQUENCE public.\"Order_seq\" TO service_role",
        &["GRANT usage, select ON SEQUENCE public.\"Order_seq\" TO app_user;"],
        &["GRANT ALL ON SEQUENCE public.\"Order_seq\" TO service_role;"],
    ),
    (
        "function grants map to EXECUTE",
        "GRANT ALL ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO anon",
        &["GRANT execute ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO app_user;"],
        &["GRANT ALL ON FUNCTION public.has_role(_user_id uuid, _role public.app_role) TO anon;"],
    ),
    (
        "grants to other Supabase roles are dropped",
        "GRANT ALL ON TABLE public.orders TO supabase_admin",
        &[],
        &[],
    ),
    (
        "grants to postgres are dropped",
        "GRANT ALL ON SCHEMA public TO postgres",
        &[],
        &[],
    ),
    (
        "grants to the project's own roles are kept",
        "GRANT SELECT ON TABLE public.orders TO reporting",
        &["GRANT SELECT ON TABLE public.orders TO reporting;"],
        &["GRANT SELECT ON TABLE public.orders TO reporting;"],
    ),
    (
        "mixed grantees split",
        "GRANT SELECT ON TABLE public.orders TO reporting, supabase_read_only_user",
        &["GRANT select ON public.orders TO reporting;"],
        &["GRANT select ON public.orders TO reporting;"],
    ),
    (
        "revokes from Supabase roles are dropped, from PUBLIC kept",
        "REVOKE ALL ON FUNCTION public.f() FROM PUBLIC",
        &["REVOKE ALL ON FUNCTION public.f() FROM PUBLIC;"],
        &["REVOKE ALL ON FUNCTION public.f() FROM PUBLIC;"],
    ),
    (
        "revoke from anon is dropped in drop mode",
        "REVOKE ALL ON TABLE public.secrets FROM anon",
        &[],
        &["REVOKE ALL ON TABLE public.secrets FROM anon;"],
    ),
    (
        "default privileges are dropped",
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon",
        &[],
        &[],
    ),
    (
        "ownership is dropped",
        "ALTER TABLE public.orders OWNER TO postgres",
        &[],
        &[],
    ),
    (
        "function ownership is dropped",
        "ALTER FUNCTION public.handle_new_user() OWNER TO supabase_admin",
        &[],
        &[],
    ),
    (
        "foreign keys to auth.users point at app_users",
        "ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
        &["ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users (id) ON DELETE CASCADE;"],
        &["ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users (id) ON DELETE CASCADE;"],
    ),
    (
        "foreign keys to storage.objects are dropped",
        "ALTER TABLE ONLY public.documents ADD CONSTRAINT documents_object_fkey FOREIGN KEY (object_id) REFERENCES storage.objects(id)",
        &[],
        &[],
    ),
    (
        "inline foreign keys to auth.users in CREATE TABLE",
        "CREATE TABLE public.notes (id uuid, author uuid REFERENCES auth.users(id))",
        &["CREATE TABLE public.notes (id uuid, author uuid REFERENCES public.app_users (id));"],
        &["CREATE TABLE public.notes (id uuid, author uuid REFERENCES public.app_users (id));"],
    ),
    (
        "policies: dropped, or kept for API roles",
        "CREATE POLICY \"Own rows\" ON public.profiles FOR SELECT TO authenticated USING ((auth.uid() = user_id))",
        &[],
        &["CREATE POLICY \"Own rows\" ON public.profiles FOR SELECT TO authenticated USING ((auth.uid() = user_id));"],
    ),
    (
        "policy roles that are Supabase-internal are removed",
        "CREATE POLICY p ON public.t TO authenticated, supabase_auth_admin USING (true)",
        &[],
        &["CREATE POLICY p ON public.t TO authenticated USING (true);"],
    ),
    (
        "RLS is enabled only with the shim, service_role keeping every row",
        "ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY",
        &[],
        &[
            "ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;",
            "CREATE POLICY supamigrate_service_role ON \"public\".\"profiles\" TO service_role USING (true) WITH CHECK (true);",
        ],
    ),
    (
        "the Realtime publication is dropped",
        "ALTER PUBLICATION supabase_realtime ADD TABLE ONLY public.orders",
        &[],
        &[],
    ),
    (
        "creating the Realtime publication is dropped",
        "CREATE PUBLICATION supabase_realtime WITH (publish = 'insert, update, delete, truncate')",
        &[],
        &[],
    ),
    (
        "the project's own publications are kept",
        "CREATE PUBLICATION analytics FOR TABLE public.orders",
        &["CREATE PUBLICATION analytics FOR TABLE public.orders;"],
        &["CREATE PUBLICATION analytics FOR TABLE public.orders;"],
    ),
    (
        "event triggers are dropped",
        "CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end EXECUTE FUNCTION extensions.pgrst_ddl_watch()",
        &[],
        &[],
    ),
    (
        "a policy's comment follows the policy",
        "CREATE POLICY p ON public.t USING (true); COMMENT ON POLICY p ON public.t IS 'owners only'",
        &[],
        &["CREATE POLICY p ON public.t USING (true);", "COMMENT ON POLICY p ON public.t IS 'owners only';"],
    ),
    (
        "the comment of a policy only for Supabase roles goes with it",
        "CREATE POLICY p ON public.t TO supabase_auth_admin USING (true); COMMENT ON POLICY p ON public.t IS 'x'",
        &[],
        &[],
    ),
    (
        "SECURITY LABEL (pgsodium's column encryption) is dropped",
        "SECURITY LABEL FOR pgsodium ON COLUMN public.t.secret IS 'ENCRYPT WITH KEY ID 5c2f4a61-6f34-4b8a-9d7e-2f1c0b3a9e11'",
        &[],
        &[],
    ),
    (
        "COMMENT ON EXTENSION is dropped",
        "COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions'",
        &[],
        &[],
    ),
    (
        "CREATE EXTENSION is left to provision",
        "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA extensions",
        &[],
        &[],
    ),
    (
        "transaction_timeout is dropped below PostgreSQL 17",
        "SET transaction_timeout = 0",
        &[],
        &[],
    ),
    (
        "other SET statements are kept",
        "SET statement_timeout = 0",
        &["SET statement_timeout = 0;"],
        &["SET statement_timeout = 0;"],
    ),
    (
        "objects in Supabase-internal schemas are dropped",
        "CREATE TABLE storage.objects_archive (id uuid)",
        &[],
        &[],
    ),
    (
        "CREATE SCHEMA public becomes IF NOT EXISTS",
        "CREATE SCHEMA public",
        &["CREATE SCHEMA IF NOT EXISTS public;"],
        &["CREATE SCHEMA IF NOT EXISTS public;"],
    ),
    (
        "any CREATE SCHEMA becomes IF NOT EXISTS, without its owner",
        "CREATE SCHEMA \"Billing\" AUTHORIZATION postgres",
        &["CREATE SCHEMA IF NOT EXISTS \"Billing\";"],
        &["CREATE SCHEMA IF NOT EXISTS \"Billing\";"],
    ),
    (
        "triggers on auth.users move to app_users",
        "CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user()",
        &["CREATE TRIGGER on_auth_user_created AFTER INSERT ON public.app_users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();"],
        &["CREATE TRIGGER on_auth_user_created AFTER INSERT ON public.app_users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();"],
    ),
];

#[test]
fn each_rule() {
    let mut failures = Vec::new();
    for (rule, input, want_drop, want_shim) in CASES {
        for (mode, want) in [(PolicyMode::Drop, want_drop), (PolicyMode::Shim, want_shim)] {
            let mut src = source("", input);
            src.auth_users_columns = input.contains("auth.users").then(|| vec![col("id")]);
            let got = convert(&src, &opts(mode)).unwrap_or_else(|e| panic!("{rule}: {e}"));
            let got = got.section_sql(Section::PostData);
            let got: Vec<&String> = got
                .iter()
                .filter(|s| {
                    !s.contains("app_users_pkey")
                        && !s.contains("app_users_email_key")
                        && !s.contains("idx_app_users")
                })
                .collect();
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            if got.iter().map(|s| s.as_str()).collect::<Vec<_>>()
                != want.iter().map(|s| s.as_str()).collect::<Vec<_>>()
            {
                failures.push(format!(
                    "{rule} ({mode:?}):\n   got  {got:?}\n   want {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn everything_not_kept_is_reported_with_a_reason() {
    let c = convert(
        &source(
            "SET transaction_timeout = 0;",
            "GRANT ALL ON TABLE public.t TO anon;\nALTER TABLE public.t OWNER TO postgres;",
        ),
        &opts(PolicyMode::Drop),
    )
    .unwrap();
    let not_kept: Vec<_> = c
        .report
        .iter()
        .filter(|r| r.action != Action::Kept && !r.object.starts_with("extension"))
        .collect();
    assert_eq!(not_kept.len(), 3, "{not_kept:?}");
    assert!(not_kept.iter().all(|r| !r.reason.is_empty()));
    let text = c.report_text();
    assert!(
        text.contains("transaction_timeout needs PostgreSQL 17"),
        "{text}"
    );
    assert!(text.contains("GRANT ALL ON TABLE public.t TO anon — anon removed; their DML privileges go to app_user"), "{text}");
    assert!(
        text.contains("ALTER TABLE public.t OWNER TO postgres — ownership"),
        "{text}"
    );
}

#[test]
fn meta_commands_are_reported() {
    let c = convert(
        &source("\\restrict abc\nSET x = 1;\n\\unrestrict abc\n", ""),
        &opts(PolicyMode::Drop),
    )
    .unwrap();
    assert_eq!(
        c.section_sql(Section::PreData),
        vec!["SET x = 1;".to_string()]
    );
    assert_eq!(
        c.report
            .iter()
            .filter(|r| r.object.starts_with("psql meta-command"))
            .count(),
        2
    );
}

#[test]
fn transaction_timeout_is_kept_for_17() {
    let mut o = opts(PolicyMode::Drop);
    o.target_major = 17;
    let c = convert(&source("SET transaction_timeout = 0;", ""), &o).unwrap();
    assert_eq!(
        c.section_sql(Section::PreData),
        vec!["SET transaction_timeout = 0;".to_string()]
    );
}

#[test]
fn a_function_granted_to_supabase_auth_admin_is_reported_as_an_auth_hook() {
    let src = source(
        "CREATE FUNCTION public.custom_access_token_hook(event jsonb) RETURNS jsonb LANGUAGE sql AS $$ select event $$; \
         GRANT ALL ON FUNCTION public.custom_access_token_hook(event jsonb) TO supabase_auth_admin; \
         GRANT ALL ON TABLE public.user_roles TO supabase_auth_admin;",
        "",
    );
    let out = convert(&src, &opts(PolicyMode::Shim)).unwrap();
    let hooks: Vec<&Decision> = out
        .report
        .iter()
        .filter(|d| d.reason.contains("an Auth hook"))
        .collect();
    assert_eq!(hooks.len(), 1, "{:#?}", out.report);
    assert!(
        hooks[0].object.contains("custom_access_token_hook"),
        "{:?}",
        hooks[0]
    );
    assert_eq!(hooks[0].impact, Impact::Behaviour);
    // A table granted to it is plumbing.
    assert!(out
        .report
        .iter()
        .any(|d| d.object.contains("TABLE public.user_roles")
            && d.reason == "supabase_auth_admin: Supabase-only roles"
            && d.impact == Impact::None));
}

#[test]
fn a_project_roles_settings_are_carried_left_or_a_to_do() {
    use crate::catalog::data::{DatabaseSetting, ProjectRole};
    let mut src = source("", "");
    let set = |name: &str, value: &str| DatabaseSetting {
        name: name.into(),
        value: value.into(),
    };
    src.project_roles = vec![ProjectRole {
        name: "reporting".into(),
        login: true,
        member_of: vec![],
        settings: vec![
            set("statement_timeout", "5s"),
            set("app.tenant", "acme"),
            set("pgrst.db_schemas", "api"),
        ],
    }];
    let out = convert(&src, &opts(PolicyMode::Shim)).unwrap();
    let decision = |object: &str| {
        out.report
            .iter()
            .find(|d| d.object == object)
            .unwrap_or_else(|| panic!("{object}: {:#?}", out.report))
    };
    let kept = decision("role reporting setting statement_timeout = 5s");
    assert_eq!(kept.action, Action::Kept);
    assert!(kept.reason.contains("ALTER ROLE … IN DATABASE"), "{kept:?}");
    let custom = decision("role reporting setting app.tenant = acme");
    assert_eq!(
        (custom.action, custom.impact),
        (Action::Dropped, Impact::Behaviour)
    );
    assert!(custom.todo.contains("options=-c app.tenant="), "{custom:?}");
    let platform = decision("role reporting setting pgrst.db_schemas = api");
    assert_eq!(
        (platform.action, platform.impact),
        (Action::Dropped, Impact::None)
    );
}

#[test]
fn the_projects_event_triggers_are_a_to_do_with_their_statement() {
    let mut src = source("", "");
    src.event_triggers = vec!["pgrst_ddl_watch".into()];
    src.project_event_triggers = vec![crate::catalog::ProjectEventTrigger {
        name: "ensure_rls".into(),
        create: "CREATE EVENT TRIGGER ensure_rls ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.rls_auto_enable()".into(),
        disabled: true,
    }];
    let out = convert(&src, &opts(PolicyMode::Shim)).unwrap();
    let platform = out
        .report
        .iter()
        .find(|d| d.object == "event trigger pgrst_ddl_watch")
        .unwrap();
    assert_eq!(platform.impact, Impact::None);
    let own = out
        .report
        .iter()
        .find(|d| d.object == "event trigger ensure_rls")
        .unwrap();
    assert_eq!(
        (own.action, own.impact),
        (Action::Dropped, Impact::Behaviour)
    );
    assert!(
        own.todo.contains(
            "CREATE EVENT TRIGGER ensure_rls ON ddl_command_end WHEN TAG IN ('CREATE TABLE')"
        ) && own
            .todo
            .contains("ALTER EVENT TRIGGER \"ensure_rls\" DISABLE"),
        "{own:?}"
    );
}

#[test]
fn grants_to_three_api_roles_become_one() {
    let post = "GRANT ALL ON TABLE public.orders TO anon;\nGRANT ALL ON TABLE public.orders TO authenticated;\nGRANT ALL ON TABLE public.orders TO service_role;";
    assert_eq!(
        one(post, PolicyMode::Drop),
        vec!["GRANT select, insert, update, delete ON public.orders TO app_user;"]
    );
}

#[test]
fn unsupported_extensions_fail_before_anything_unless_allowed() {
    let mut src = source("CREATE FUNCTION public.tags(h extensions.hstore) RETURNS text[] LANGUAGE sql AS $$ select akeys(h) $$;\nCREATE TABLE public.t (id int, attrs extensions.hstore);", "");
    src.extensions = vec![
        ext("pgcrypto", "extensions", &[]),
        ext(
            "hstore",
            "extensions",
            &["function public.tags", "column public.t.attrs"],
        ),
        ext("plpgsql", "pg_catalog", &[]),
    ];
    let mut o = opts(PolicyMode::Drop);
    o.available_extensions = Some(
        ["pgcrypto", "uuid-ossp", "pg_trgm", "plpgsql"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let e = convert(&src, &o).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string()
            .contains("hstore: the data of public.t.attrs (about 42 rows) would be lost"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("--allow-drop-extension hstore"));

    o.allow_drop_extensions.insert("hstore".into());
    let c = convert(&src, &o).unwrap();
    let names: Vec<&str> = c.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["pgcrypto", "uuid-ossp", "pg_trgm"]);
    assert_eq!(
        c.section_sql(Section::PreData),
        vec!["CREATE TABLE public.t (id int);".to_string()]
    );
    assert!(c
        .report
        .iter()
        .any(|r| r.action == Action::Dropped && r.object == "column public.t.attrs"));
    assert!(c
        .report
        .iter()
        .any(|r| r.action == Action::Dropped && r.object == "extension hstore"));
    assert!(c
        .report
        .iter()
        .any(|r| r.action == Action::Dropped && r.object == "function public.tags"));
}

#[test]
fn auth_users_becomes_app_users_with_the_mapping_reported() {
    let mut src = source("", "");
    let mut cols: Vec<crate::catalog::ColumnDef> = [
        "instance_id",
        "id",
        "email",
        "email_change_token_new",
        "confirmed_at",
        "is_anonymous",
        "is_sso_user",
    ]
    .iter()
    .map(|c| col(c))
    .collect();
    cols[4].generated = Some("LEAST(email_confirmed_at, phone_confirmed_at)".into());
    src.auth_users_columns = Some(cols);
    let c = convert(&src, &opts(PolicyMode::Drop)).unwrap();
    let pre = c.section_sql(Section::PreData);
    let table = pre
        .iter()
        .find(|s| s.starts_with("CREATE TABLE public.app_users"))
        .unwrap();
    assert!(
        table.contains("\"email\" text,"),
        "email is nullable: {table}"
    );
    assert!(
        table.contains("\"confirmed_at\" text GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED"),
        "{table}"
    );
    assert!(
        c.section_sql(Section::PostData)
            .iter()
            .any(|s| s.contains("app_users_email_partial_key")
                && s.contains("WHERE (is_sso_user = false)")),
        "email unique among non-SSO users"
    );
    let r = c.report_text();
    assert!(r.contains("column auth.users.email_change_token_new — becomes public.app_users.email_change_token"), "{r}");
    assert!(
        c.report
            .iter()
            .any(|d| d.object == "column auth.users.is_anonymous"
                && d.reason == "carried to public.app_users.is_anonymous as it is"),
        "{r}"
    );
    // No application object reads auth.users: no view.
    assert!(!pre.iter().any(|s| s.contains("VIEW auth.users")));
}

#[test]
fn shim_adds_the_auth_functions() {
    let c = convert(&source("", ""), &opts(PolicyMode::Shim)).unwrap();
    assert!(c
        .section_sql(Section::PreData)
        .iter()
        .any(|s| s.contains("FUNCTION auth.uid()")));
    assert!(c.shim);
    let c = convert(&source("", ""), &opts(PolicyMode::Drop)).unwrap();
    assert!(!c
        .section_sql(Section::PreData)
        .iter()
        .any(|s| s.contains("auth.uid")));
}

#[test]
fn what_uses_a_left_out_object_is_left_out_too() {
    let pre = "CREATE FOREIGN TABLE public.ft (id text) SERVER s OPTIONS (object 'x');\nGRANT ALL ON TABLE public.ft TO anon;\nGRANT SELECT ON TABLE public.ft TO reporting;";
    let c = convert(&source(pre, ""), &opts(PolicyMode::Shim)).unwrap();
    let sql = c.section_sql(Section::PreData);
    assert!(!sql.iter().any(|s| s.contains("public.ft")), "{sql:?}");
}

#[test]
fn populated_materialized_views_are_refreshed_after_the_data_in_order() {
    let mut src = source(
        "CREATE MATERIALIZED VIEW public.a AS SELECT 1 AS x WITH NO DATA;\n\
         CREATE MATERIALIZED VIEW public.\"B b\" AS SELECT x FROM public.a WITH NO DATA;",
        "CREATE UNIQUE INDEX a_x ON public.a USING btree (x);",
    );
    src.populated_matviews = vec![
        crate::pg::TableName::new("public", "a"),
        crate::pg::TableName::new("public", "B b"),
    ];
    let c = convert(&src, &opts(PolicyMode::Drop)).unwrap();
    let post: Vec<&PlannedStatement> = c.section(Section::PostData).collect();
    let refreshes: Vec<&str> = post
        .iter()
        .filter(|s| s.sql.starts_with("REFRESH"))
        .map(|s| s.sql.as_str())
        .collect();
    assert_eq!(
        refreshes,
        [
            "REFRESH MATERIALIZED VIEW \"public\".\"a\";",
            "REFRESH MATERIALIZED VIEW \"public\".\"B b\";"
        ]
    );
    // With the statements that run in order after the keys and foreign keys.
    assert!(post
        .iter()
        .filter(|s| s.sql.starts_with("REFRESH"))
        .all(|s| s.phase == crate::plan::statements::Phase::Rest));
}

#[test]
fn a_check_constraint_of_a_left_behind_extension_is_removed_and_reported() {
    let mut src = source(
        "CREATE TABLE public.settings (id integer NOT NULL, doc jsonb NOT NULL, \
         CONSTRAINT doc_shape CHECK (extensions.json_matches_schema('{}'::json, (doc)::json)), \
         CONSTRAINT id_positive CHECK (id > 0));",
        "",
    );
    src.extensions = vec![ext(
        "pg_jsonschema",
        "extensions",
        &["constraint doc_shape on public.settings"],
    )];
    let mut o = opts(PolicyMode::Drop);
    o.available_extensions = Some(BTreeSet::new());
    let c = convert(&src, &o).unwrap();
    assert_eq!(
        c.section_sql(Section::PreData),
        ["CREATE TABLE public.settings (id int NOT NULL, doc jsonb NOT NULL, CONSTRAINT id_positive CHECK (id > 0));"]
    );
    assert!(
        c.report
            .iter()
            .any(|r| r.action == Action::Rewritten
                && r.reason.contains("constraint doc_shape removed")),
        "{:#?}",
        c.report
    );
}

/// (case, entries as (role, schema, kind, grantee, privilege, grantable,
/// revoke), target major, the pre-data statements that come out, the
/// objects of the lines that leave something out)
type DefaultCase = (
    &'static str,
    &'static [(
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
        &'static str,
        bool,
        bool,
    )],
    u32,
    &'static [&'static str],
    &'static [&'static str],
);

const DEFAULT_PRIVILEGE_CASES: &[DefaultCase] = &[
    (
        "a revoke from PUBLIC for every schema is set for the role that applies the schema",
        &[("postgres", None, "f", "", "EXECUTE", false, true)],
        15,
        &["ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;"],
        &[],
    ),
    (
        "grants to a project role, several privileges and two creating roles make one statement",
        &[
            ("postgres", Some("public"), "r", "reporting", "SELECT", false, false),
            ("postgres", Some("public"), "r", "reporting", "INSERT", false, false),
            ("owner2", Some("public"), "r", "reporting", "SELECT", false, false),
        ],
        15,
        &["ALTER DEFAULT PRIVILEGES IN SCHEMA \"public\" GRANT INSERT, SELECT ON TABLES TO \"reporting\";"],
        &[],
    ),
    (
        "with grant option",
        &[("postgres", None, "S", "reporting", "USAGE", true, false)],
        15,
        &["ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO \"reporting\" WITH GRANT OPTION;"],
        &[],
    ),
    (
        "a schema that is not migrated is left out",
        &[("postgres", Some("storage"), "r", "reporting", "SELECT", false, false)],
        15,
        &[],
        &["default privileges of postgres: IN SCHEMA storage GRANT SELECT ON TABLES TO reporting"],
    ),
    (
        "PostgreSQL 17's MAINTAIN is left out for an older target, the rest kept",
        &[
            ("postgres", None, "r", "reporting", "MAINTAIN", false, false),
            ("postgres", None, "r", "reporting", "SELECT", false, false),
        ],
        15,
        &["ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO \"reporting\";"],
        &["default privileges of postgres: GRANT MAINTAIN ON TABLES TO reporting"],
    ),
    (
        "MAINTAIN is kept for 17",
        &[("postgres", None, "r", "reporting", "MAINTAIN", false, false)],
        17,
        &["ALTER DEFAULT PRIVILEGES GRANT MAINTAIN ON TABLES TO \"reporting\";"],
        &[],
    ),
    (
        "PostgreSQL 18's large objects are left out for an older target",
        &[("postgres", None, "L", "reporting", "SELECT", false, false)],
        16,
        &[],
        &["default privileges of postgres: GRANT SELECT ON LARGE OBJECTS TO reporting"],
    ),
];

#[test]
fn the_projects_default_privileges_are_set_for_the_role_that_applies_the_schema() {
    for (case, entries, major, statements, left_out) in DEFAULT_PRIVILEGE_CASES {
        let mut src = source("CREATE TABLE public.t (id integer);", "");
        src.schemas = vec!["public".into()];
        src.default_privileges = entries
            .iter()
            .map(
                |(role, schema, kind, grantee, privilege, grantable, revoke)| {
                    crate::catalog::data::DefaultPrivilege {
                        role: role.to_string(),
                        schema: schema.map(str::to_string),
                        kind: kind.to_string(),
                        grantee: grantee.to_string(),
                        privilege: privilege.to_string(),
                        grantable: *grantable,
                        revoke: *revoke,
                    }
                },
            )
            .collect();
        let mut o = opts(PolicyMode::Shim);
        o.target_major = *major;
        let out = convert(&src, &o).unwrap();
        let pre = out.section_sql(Section::PreData);
        let got: Vec<&String> = pre
            .iter()
            .filter(|s| s.starts_with("ALTER DEFAULT"))
            .collect();
        assert_eq!(got, statements.iter().collect::<Vec<_>>(), "{case}");
        assert!(
            pre.last().is_none_or(|l| !l.starts_with("ALTER DEFAULT") || statements.contains(&l.as_str())),
            "{case}: after the schema's objects"
        );
        let dropped: Vec<&str> = out
            .report
            .iter()
            .filter(|d| d.action == Action::Dropped && d.object.starts_with("default privileges"))
            .map(|d| d.object.as_str())
            .collect();
        assert_eq!(dropped, *left_out, "{case}");
        for s in *statements {
            assert!(
                out.report.iter().any(|d| d.action == Action::Rewritten
                    && d.object.starts_with("default privileges of ")
                    && d.reason.contains("FOR ROLE left out")),
                "{case}: {s} has its line"
            );
        }
    }
}

#[test]
fn column_privileges_on_a_column_left_out_with_its_extension_lose_it_and_never_widen() {
    let mut src = source(
        "CREATE TABLE public.calls (id integer NOT NULL, url text, hdr extensions.http_header);",
        "GRANT SELECT(id,hdr),UPDATE(url) ON TABLE public.calls TO reporting;\n\
         GRANT SELECT(hdr) ON TABLE public.calls TO reporting;\n\
         GRANT SELECT(url) ON TABLE public.calls TO reporting;",
    );
    src.extensions = vec![ext("http", "extensions", &["column public.calls.hdr"])];
    let mut o = opts(PolicyMode::Shim);
    o.available_extensions = Some(BTreeSet::new());
    o.allow_drop_extensions = ["http".to_string()].into();
    let c = convert(&src, &o).unwrap();
    let grants: Vec<String> = c
        .section_sql(Section::PostData)
        .into_iter()
        .filter(|s| s.starts_with("GRANT"))
        .collect();
    assert_eq!(
        grants,
        [
            "GRANT select (id), update (url) ON public.calls TO reporting;",
            "GRANT SELECT(url) ON TABLE public.calls TO reporting;"
        ],
        "{:#?}",
        c.report
    );
    assert!(
        c.report.iter().any(|r| r.action == Action::Dropped
            && r.object.contains("GRANT SELECT(hdr)")
            && r.reason.contains("column privileges on hdr removed")),
        "{:#?}",
        c.report
    );
}

/// A pg_cron job follows the functions it calls: one calling a function
/// left out (it reads pg_net's responses) is not scheduled, however it names the
/// function (qualified or through the search path); one calling kept code is.
#[test]
fn cron_jobs_follow_their_functions() {
    let pre = "CREATE FUNCTION public.notify_all() RETURNS void LANGUAGE sql AS $$ select status_code from net._http_response $$;
CREATE FUNCTION public.cleanup() RETURNS void LANGUAGE sql AS $$ select 1 $$;";
    let mut src = source(pre, "");
    let job = |id: i64, name: &str, command: &str| crate::catalog::platform::CronJob {
        id,
        name: name.into(),
        schedule: "0 * * * *".into(),
        command: command.into(),
        database: "postgres".into(),
        username: "postgres".into(),
        active: true,
    };
    src.platform.cron_jobs = vec![
        job(1, "notify-qualified", "select public.notify_all()"),
        job(2, "notify-unqualified", "select notify_all()"),
        job(3, "cleanup", "select cleanup()"),
    ];
    let c = convert(&src, &opts(PolicyMode::Shim)).unwrap();
    let planned: Vec<&str> = c
        .cron
        .as_ref()
        .map(|p| p.jobs.iter().map(|j| j.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(planned, ["cleanup"], "{:#?}", c.report);
    for name in ["notify-qualified", "notify-unqualified"] {
        assert!(
            c.report.iter().any(|d| d.action == Action::Dropped
                && d.object.contains(name)
                && d.reason.contains("public.notify_all")),
            "{name}: {:#?}",
            c.report
        );
    }
}

/// Supabase's runtime is shimmed where a shim keeps what the caller does,
/// and left out where none can: (what, the application's statement, kept,
/// the shim's statement the target gets, or the reason it is left out).
const RUNTIME: &[(&str, &str, bool, &str)] = &[
    (
        "net.http_post lands in the outbox",
        "CREATE FUNCTION public.notify(id bigint) RETURNS bigint LANGUAGE sql AS $$ select net.http_post(url := 'https://x.example/hook', body := jsonb_build_object('id', id)) $$",
        true,
        "CREATE OR REPLACE FUNCTION net.http_post(",
    ),
    (
        "net.http_get lands in the outbox",
        "CREATE FUNCTION public.ping() RETURNS bigint LANGUAGE plpgsql AS $$ begin return net.http_get('https://x.example/ping'); end $$",
        true,
        "CREATE TABLE IF NOT EXISTS supamigrate_outbox.http_requests",
    ),
    (
        "a Database Webhook keeps firing, into the outbox",
        "CREATE TRIGGER hook AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION supabase_functions.http_request('https://x.example/t', 'POST', '{}', '{}', '1000')",
        true,
        "CREATE OR REPLACE FUNCTION supabase_functions.http_request() RETURNS trigger",
    ),
    (
        "a read of Vault's decrypted secrets reads the secrets table",
        "CREATE FUNCTION public.key() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ select decrypted_secret from vault.decrypted_secrets where name = 'k' $$",
        true,
        "CREATE OR REPLACE VIEW vault.decrypted_secrets AS",
    ),
    (
        "pgmq in plain SQL where the target lacks the extension",
        "CREATE FUNCTION public.enqueue(m jsonb) RETURNS SETOF bigint LANGUAGE sql AS $$ select * from pgmq.send('jobs', m) $$",
        true,
        "CREATE FUNCTION pgmq.send(queue_name text, msg jsonb, delay integer DEFAULT 0)",
    ),
    (
        "reading pg_net's responses: no shim keeps them",
        "CREATE FUNCTION public.last_status() RETURNS integer LANGUAGE sql AS $$ select status_code from net._http_response order by id desc limit 1 $$",
        false,
        "reads net._http_response",
    ),
    (
        "the http extension's synchronous calls: the caller reads the answer",
        "CREATE FUNCTION public.rate() RETURNS text LANGUAGE sql AS $$ select content from extensions.http_get('https://x.example/rate') $$",
        false,
        "calls extensions.http_get, of extension http",
    ),
];

#[test]
fn supabase_runtime_is_shimmed_where_a_shim_keeps_the_semantics() {
    for (what, sql, kept, expect) in RUNTIME {
        let mut http = ext("http", "extensions", &[]);
        http.functions = vec!["extensions.http_get".into()];
        let mut src = source("CREATE TABLE public.t (id integer);", &format!("{sql};"));
        src.extensions = vec![http, ext("pgmq", "pgmq", &[])];
        let mut o = opts(PolicyMode::Shim);
        o.available_extensions = Some(BTreeSet::new());
        let c = convert(&src, &o).unwrap_or_else(|e| panic!("{what}: {e}"));
        let all = c.sql();
        let first_line = sql.lines().next().unwrap_or(sql);
        assert_eq!(all.contains(first_line), *kept, "{what}: {all}");
        if *kept {
            assert!(all.contains(expect), "{what}: {expect} not in {all}");
            assert!(
                !c.report.iter().any(
                    |d| d.action == Action::Dropped && d.object.starts_with("function public.")
                ),
                "{what}: {:#?}",
                c.report
            );
        } else {
            assert!(
                c.report
                    .iter()
                    .any(|d| d.action == Action::Dropped && d.reason.contains(expect)),
                "{what}: {:#?}",
                c.report
            );
            assert!(
                !all.contains("supamigrate_outbox"),
                "{what}: no shim for nothing"
            );
        }
    }
}

/// The Vault shim carries the secrets' ids and names, never a value, and
/// says which to set; pgmq's queues are created on the target.
#[test]
fn vault_names_and_pgmq_queues_are_carried() {
    let mut src = source("", "");
    src.platform.vault_secrets = 1;
    src.platform.vault_names = vec![(
        "6f1c1e8e-0b7a-4a57-9a53-4c1a3f1f0a11".into(),
        "stripe_key".into(),
    )];
    src.platform.queues = vec!["jobs".into()];
    src.extensions = vec![ext("pgmq", "pgmq", &[])];
    let mut o = opts(PolicyMode::Drop);
    o.available_extensions = Some(BTreeSet::new());
    let c = convert(&src, &o).unwrap();
    let all = c.sql();
    assert!(all.contains("INSERT INTO vault.secrets (id, name) VALUES ('6f1c1e8e-0b7a-4a57-9a53-4c1a3f1f0a11'::uuid, 'stripe_key')"), "{all}");
    assert!(
        all.contains("CREATE TABLE pgmq.\"q_jobs\" (msg_id bigint"),
        "{all}"
    );
    let vault = c
        .report
        .iter()
        .find(|d| d.object.starts_with("Vault shim"))
        .unwrap();
    assert!(
        vault.reason.contains("stripe_key") && vault.todo.contains("vault.update_secret"),
        "{vault:#?}"
    );
}

/// A case of [`who_bypassed_row_level_security_on_the_source_decides`].
struct Bypass {
    case: &'static str,
    /// (roles bypassing, the view's owner, auth.users' policies), or not read.
    facts: Option<(&'static [&'static str], &'static str, i64)>,
    /// The view reads no user.
    none: bool,
    /// service_role gets its policy.
    service_policy: bool,
    /// The view's decision's access effect.
    access: AccessEffect,
}

const BOTH: &[&str] = &["postgres", "service_role"];

const BYPASS: &[Bypass] = &[
    Bypass {
        case: "not read (an older plan): Supabase's defaults",
        facts: None,
        none: false,
        service_policy: true,
        access: AccessEffect::Unchanged,
    },
    Bypass {
        case: "postgres owns it; service_role bypasses",
        facts: Some((BOTH, "postgres", 0)),
        none: false,
        service_policy: true,
        access: AccessEffect::Unchanged,
    },
    Bypass {
        case: "service_role does not bypass",
        facts: Some((&["postgres"], "postgres", 0)),
        none: false,
        service_policy: false,
        access: AccessEffect::Unchanged,
    },
    Bypass {
        case: "owner does not bypass, no policy: it showed no user",
        facts: Some((BOTH, "reporting", 0)),
        none: true,
        service_policy: true,
        access: AccessEffect::Unchanged,
    },
    Bypass {
        case: "owner does not bypass, policies: no user, never more",
        facts: Some((BOTH, "reporting", 2)),
        none: true,
        service_policy: true,
        access: AccessEffect::Narrows,
    },
];

/// What bypassed row level security on the source decides what the target
/// shows: service_role's policy under the shim, and a view reading
/// auth.users with its owner's rights. Never more than the source showed.
#[test]
fn who_bypassed_row_level_security_on_the_source_decides() {
    use crate::catalog::data::RowSecurityFacts;
    for b in BYPASS {
        let (case, none, service_policy, access) = (b.case, b.none, b.service_policy, b.access);
        let mut src = source(
            "CREATE TABLE public.notes (id bigint);\nCREATE VIEW public.directory AS SELECT u.id, u.email FROM auth.users u;",
            "ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;",
        );
        src.auth_users_columns = Some(vec![col("id"), col("email")]);
        src.row_security = b
            .facts
            .map(|(bypassing, owner, policies)| RowSecurityFacts {
                bypassing_roles: bypassing.iter().map(|r| r.to_string()).collect(),
                view_owners: [("public.directory".to_string(), owner.to_string())].into(),
                auth_users_rls: true,
                auth_users_policies: policies,
            });
        let c = convert(&src, &opts(PolicyMode::Shim)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let all = c.sql();
        let view = all
            .lines()
            .find(|l| l.contains("VIEW public.directory"))
            .unwrap_or_else(|| panic!("{case}: no view in {all}"));
        assert!(view.contains("public.app_users"), "{case}: {view}");
        assert_eq!(view.contains("WHERE false"), none, "{case}: {view}");
        assert_eq!(
            all.contains("CREATE POLICY supamigrate_service_role ON \"public\".\"notes\""),
            service_policy,
            "{case}: {all}"
        );
        let d = c
            .report
            .iter()
            .find(|d| d.object.contains("public.directory"))
            .unwrap_or_else(|| panic!("{case}: no decision on the view"));
        assert_eq!(d.access, access, "{case}: {d:#?}");
        assert_eq!(
            !d.todo.is_empty(),
            access == AccessEffect::Narrows,
            "{case}: {d:#?}"
        );
    }
}
