//! What Supabase puts in every project that is not the application's: its
//! internal schemas and its roles. The conversion leaves them behind; the
//! inventory uses them to tell application objects from the platform's.

/// Schemas Supabase manages itself (the Supabase CLI's `InternalSchemas`, plus
/// the few it adds since). Never migrated as application schemas.
pub const INTERNAL_SCHEMAS: &[&str] = &[
    "information_schema",
    "_analytics",
    "_realtime",
    "_supavisor",
    "auth",
    "etl",
    "extensions",
    "pgbouncer",
    "realtime",
    "storage",
    "supabase_functions",
    "supabase_migrations",
    "supabase_subscription_mgmt",
    "cron",
    "dbdev",
    "graphql",
    "graphql_public",
    "net",
    "pgmq",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "repack",
    "tiger",
    "tiger_data",
    "topology",
    "vault",
];

/// Whether `schema` is Supabase-internal or a system schema.
pub fn is_internal_schema(schema: &str) -> bool {
    INTERNAL_SCHEMAS.contains(&schema)
        || schema.starts_with("pg_")
        || schema.starts_with("timescaledb_")
        || schema.starts_with("_timescaledb_")
}

/// Roles that exist only on Supabase (the CLI's reserved roles and the
/// platform's): grants to them, ownership by them and policies for them must be
/// removed or mapped on a plain server.
pub fn is_supabase_role(role: &str) -> bool {
    const ROLES: &[&str] = &[
        "anon",
        "authenticated",
        "authenticator",
        "dashboard_user",
        "pgbouncer",
        "postgres",
        "service_role",
        "pgsodium_keyholder",
        "pgsodium_keyiduser",
        "pgsodium_keymaker",
        "pgtle_admin",
        "pg_database_owner",
    ];
    ROLES.contains(&role) || role.starts_with("supabase_") || role.starts_with("cli_login_")
}

/// The roles PostgREST switches to: their grants carry the application's access.
pub const API_ROLES: &[&str] = &["anon", "authenticated", "service_role"];

/// Supabase Auth's tables, beyond `auth.users`, that move to the target as
/// tables: (name, carried even when no code of the application reads it,
/// what it is for on the target). The durable ones describe users (how
/// they sign in, their MFA factors, SSO); the others (sessions, the audit
/// log) are carried only when the application's code reads them (its AAL
/// checks, its sign-in reports).
pub const AUTH_TABLES: &[(&str, bool, &str)] = &[
    (
        "identities",
        true,
        "how each user signs in (email, phone, each OAuth provider and its user id)",
    ),
    (
        "mfa_factors",
        true,
        "each user's MFA factors (TOTP, phone, WebAuthn) and their status",
    ),
    (
        "webauthn_credentials",
        true,
        "each user's passkeys (WebAuthn credential ids and public keys), for a sign-in service that keeps accepting them",
    ),
    ("sso_providers", true, "SAML SSO providers"),
    (
        "sso_domains",
        true,
        "the email domains of each SSO provider",
    ),
    ("mfa_challenges", false, "MFA challenges issued"),
    (
        "sessions",
        false,
        "sessions, with their assurance level (aal1/aal2) and factor",
    ),
    (
        "mfa_amr_claims",
        false,
        "how each session signed in (password, totp, otp…)",
    ),
    (
        "audit_log_entries",
        false,
        "Supabase Auth's audit log up to the migration (sign-ins, sign-ups, password changes; nothing adds to it on the target)",
    ),
];
