//! What the conversion adds so the application's code keeps working on the
//! target: the `auth` schema with Supabase's own `auth.uid()`, `role()`,
//! `email()`, `jwt()` (reading the JSON claims PostgREST sets) and
//! `auth.users` as a view over `public.app_users`; Storage's metadata
//! tables. Each is added when the shim asks for it or a kept statement
//! uses it, and said so in the report.

use super::reach::Needs;
use super::runtime::Available;
use super::{Action, Conversion, Impact};
use crate::catalog::dump::SchemaSource;
use crate::error::Result;
use crate::plan::statements::{added, Section};
use crate::plan::storage_meta;
use crate::plan::users::{self, UserColumn, APP_USERS};

/// The shim's statements, Supabase's definitions (GoTrue's migrations).
const AUTH_SHIM: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS auth;",
    "CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;",
    "CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;",
    "CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;",
    "CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;",
];

/// Adds, at the start of each section, what `needs` and the shim ask for.
pub(super) fn add(
    src: &SchemaSource,
    shim: bool,
    app_role: &str,
    needs: &Needs,
    users_used_by: &[String],
    runtime: &Available,
    out: &mut Conversion,
) -> Result<()> {
    let mut pre: Vec<String> = Vec::new();
    let mut post: Vec<String> = Vec::new();
    let helpers = shim || needs.auth_functions;
    if helpers || (needs.users_view && src.auth_users_columns.is_some()) {
        pre.push("CREATE SCHEMA IF NOT EXISTS auth;".into());
    }
    if helpers {
        pre.extend(AUTH_SHIM[1..].iter().map(|s| s.to_string()));
        if shim {
            pre.push("GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;".into());
        }
        out.note(
            Action::Added,
            "schema auth with uid(), role(), email(), jwt()",
            if shim {
                "--policies shim: RLS policies call them; they read request.jwt.claims as on Supabase"
            } else {
                "the application's functions call them; they read request.jwt.claims as on Supabase"
            },
        );
    }
    add_users(
        src,
        shim,
        app_role,
        needs,
        users_used_by,
        (&mut pre, &mut post),
        out,
    );
    carry_auth_tables(src, needs, &mut pre, &mut post, out);
    let mut roles = vec![app_role.to_string()];
    if shim {
        roles.push("service_role".into());
    }
    pre.extend(super::runtime::add(
        src,
        &needs.runtime,
        runtime,
        &roles,
        out,
    ));
    if src.storage_columns.is_some() {
        pre.extend(storage_meta::pre_data());
        post.extend(storage_meta::post_data());
        out.note_with(
            Action::Added,
            "tables storage.buckets and storage.objects",
            "Storage's metadata stays in the database (copied like any table) with storage.foldername(), filename(), extension(); each object's file moves to S3 (bucket <prefix><bucket_id>, key name)",
            Impact::None,
        );
    }
    let pre = pre
        .iter()
        .map(|s| added(s, Section::PreData))
        .collect::<Result<Vec<_>>>()?;
    let post = post
        .iter()
        .map(|s| added(s, Section::PostData))
        .collect::<Result<Vec<_>>>()?;
    out.statements.splice(0..0, pre);
    let first_post = out
        .statements
        .iter()
        .position(|s| s.section == Section::PostData)
        .unwrap_or(out.statements.len());
    out.statements.splice(first_post..first_post, post);
    service_role_policies(src, out)
}

/// The privileges roles had on `auth.users` go to the view: the API roles
/// keep theirs with the shim, else they go to the application role.
fn users_view_grants(
    grants: &[(String, String)],
    shim: bool,
    app_role: &str,
    out: &mut Conversion,
) -> Vec<String> {
    let mut sql = Vec::new();
    for (role, privilege) in grants {
        let to = if crate::supabase::API_ROLES.contains(&role.as_str()) {
            if shim {
                role.as_str()
            } else {
                app_role
            }
        } else if crate::supabase::is_supabase_role(role) {
            continue;
        } else {
            role.as_str()
        };
        // The view runs with its caller's rights: they need the table's too.
        for rel in ["auth.users", "public.app_users"] {
            sql.push(format!(
                "GRANT {privilege} ON {rel} TO {};",
                crate::pg::quote_ident(to)
            ));
        }
        out.note_with(
            Action::Added,
            format!("GRANT {privilege} ON auth.users TO {to}"),
            format!("{role} had {privilege} on auth.users"),
            Impact::None,
        );
    }
    sql
}

/// auth.users has RLS on and no policy on Supabase: whoever reads it
/// through a grant sees no row, unless they bypass RLS. app_users does the
/// same, with policies for the application role and (shim) service_role,
/// which read users on the platform's behalf.
fn users_rls(shim: bool, app_role: &str, out: &mut Conversion) -> Vec<String> {
    let role = crate::pg::quote_ident(app_role);
    let mut sql = vec![
        "ALTER TABLE public.app_users ENABLE ROW LEVEL SECURITY;".to_string(),
        format!("CREATE POLICY app_users_application ON public.app_users TO {role} USING (true) WITH CHECK (true);"),
    ];
    if shim {
        sql.push("CREATE POLICY app_users_service_role ON public.app_users TO service_role USING (true) WITH CHECK (true);".into());
    }
    out.note(
        Action::Added,
        format!("row level security on {APP_USERS}"),
        format!(
            "as on auth.users: roles reading it through auth.users see no row, but {app_role}{}",
            if shim { " and service_role" } else { "" }
        ),
    );
    sql
}

/// The app_users lines: the table, renamed and carried columns, the email rule.
fn note_users(cols: &[UserColumn], out: &mut Conversion) {
    out.note(
        Action::Added,
        format!("table {APP_USERS}"),
        "replaces auth.users: the runbook's columns, and every other column auth.users has; password hashes (bcrypt, argon2) are copied as they are",
    );
    for c in cols {
        if c.source != c.target {
            out.note_with(
                Action::Rewritten,
                format!("column auth.users.{}", c.source),
                format!("becomes {APP_USERS}.{}", c.target),
                Impact::None,
            );
        } else if !c.runbook {
            out.note_with(
                Action::Kept,
                format!("column auth.users.{}", c.source),
                format!("carried to {APP_USERS}.{} as it is", c.target),
                Impact::None,
            );
        }
    }
    let sso = cols.iter().any(|c| c.target == "is_sso_user");
    out.note_with(
        Action::Rewritten,
        format!("column {APP_USERS}.email"),
        if sso {
            "nullable, unique among non-SSO users (as in auth.users): users who signed up by phone, anonymously or through SSO have no email, and all of them migrate"
        } else {
            "nullable and unique where present: users who signed up by phone or anonymously have no email, and all of them migrate"
        },
        Impact::None,
    );
}

/// Supabase Auth's tables beyond users: those that describe users always,
/// those that describe sessions when the application's code reads them.
fn carry_auth_tables(
    src: &SchemaSource,
    needs: &Needs,
    pre: &mut Vec<String>,
    post: &mut Vec<String>,
    out: &mut Conversion,
) {
    let carried: Vec<&crate::catalog::dump::AuthTable> = src
        .auth_tables
        .iter()
        .filter(|t| {
            needs.auth_tables.contains(&t.name)
                || crate::supabase::AUTH_TABLES
                    .iter()
                    .any(|(n, durable, _)| *n == t.name && *durable)
        })
        .collect();
    if carried.is_empty() {
        return;
    }
    if !pre.iter().any(|s| s == "CREATE SCHEMA IF NOT EXISTS auth;") {
        pre.push("CREATE SCHEMA IF NOT EXISTS auth;".into());
    }
    pre.extend(crate::plan::auth_meta::pre_data(&carried, &src.auth_enums));
    post.extend(crate::plan::auth_meta::post_data(&carried));
    for t in &carried {
        let what = crate::supabase::AUTH_TABLES
            .iter()
            .find(|(n, _, _)| *n == t.name)
            .map_or("", |(_, _, w)| *w);
        let read = if needs.auth_tables.contains(&t.name) {
            "; the application's code reads it and keeps working"
        } else {
            ""
        };
        out.note_todo(
            Action::Added,
            format!("table auth.{}", t.name),
            format!("{what}: copied from Supabase Auth as a table{read}; Supabase Auth (GoTrue) is not on the target, so nothing adds or changes its rows by itself any more"),
            "keep it current from your identity provider (or the application) if the application reads it after the move",
        );
        out.auth_tables.push(t.name.clone());
    }
}

/// `auth.users` → `app_users`, and the `auth.users` view when kept code
/// reads it (with its grants and row level security).
fn add_users(
    src: &SchemaSource,
    shim: bool,
    app_role: &str,
    needs: &Needs,
    users_used_by: &[String],
    (pre, post): (&mut Vec<String>, &mut Vec<String>),
    out: &mut Conversion,
) {
    let Some(columns) = &src.auth_users_columns else {
        return;
    };
    let cols = users::user_columns(columns);
    pre.push(users::app_users_table(&cols));
    post.extend(users::app_users_keys(&cols));
    note_users(&cols, out);
    if needs.users_view {
        pre.push(users::users_view(&cols));
        out.note(
            Action::Added,
            "view auth.users",
            format!("over {APP_USERS}, with auth.users' column names: {} read or change auth.users and keep working (writes through it change {APP_USERS})", users_used_by.join(", ")),
        );
        pre.extend(users_view_grants(
            &src.platform.auth_users_grants,
            shim,
            app_role,
            out,
        ));
        if src.platform.auth_users_rls {
            post.extend(users_rls(shim, app_role, out));
        }
    }
}

/// Under the shim: service_role bypasses row level security on Supabase
/// (BYPASSRLS), which only a superuser may grant on RDS. Each table whose
/// row level security is kept gets a policy letting service_role see and
/// change every row, so the application's back end sees what it saw; not
/// when the source's service_role does not bypass it (its policies then
/// apply on the target as they did).
pub(super) fn service_role_policies(src: &SchemaSource, out: &mut Conversion) -> Result<()> {
    use pg_query::protobuf::AlterTableType as T;
    use pg_query::NodeEnum;
    if !out.shim {
        return Ok(());
    }
    if src
        .row_security
        .as_ref()
        .is_some_and(|rs| !rs.bypasses("service_role"))
    {
        out.note_with(
            Action::Kept,
            "row level security for service_role",
            "service_role does not bypass row level security on the source: the tables' policies apply to it on the target as they did (no policy added)",
            Impact::None,
        );
        return Ok(());
    }
    let mut added_to = Vec::new();
    let mut new = Vec::new();
    for s in &out.statements {
        let Ok(st) = crate::sql::Statement::parse(s.sql.trim_end().trim_end_matches(';')) else {
            continue;
        };
        let Some(NodeEnum::AlterTableStmt(a)) = st.node() else {
            continue;
        };
        let enables = a.cmds.iter().any(|c| {
            matches!(c.node.as_ref(), Some(NodeEnum::AlterTableCmd(cmd)) if cmd.subtype == T::AtEnableRowSecurity as i32)
        });
        let Some(rv) = a.relation.as_ref().filter(|_| enables) else {
            continue;
        };
        let schema = if rv.schemaname.is_empty() {
            "public"
        } else {
            rv.schemaname.as_str()
        };
        let table = format!(
            "{}.{}",
            crate::pg::quote_ident(schema),
            crate::pg::quote_ident(&rv.relname)
        );
        // app_users has its own (users_rls).
        if schema == "public" && rv.relname == "app_users" {
            continue;
        }
        new.push(added(
            &format!("CREATE POLICY supamigrate_service_role ON {table} TO service_role USING (true) WITH CHECK (true);"),
            s.section,
        )?);
        added_to.push(format!("{schema}.{}", rv.relname));
    }
    if added_to.is_empty() {
        return Ok(());
    }
    for st in new {
        out.push(st);
    }
    out.note(
        Action::Added,
        format!("policy supamigrate_service_role on {}", added_to.join(", ")),
        "service_role bypasses row level security on Supabase, and only a superuser may give it BYPASSRLS on RDS: this policy lets it see and change every row of the table, as before",
    );
    Ok(())
}
