//! `auth.users` becomes `public.app_users`: the runbook's table and column
//! mapping, plus every other column the project's `auth.users` has, in one
//! place for the conversion, the copy and verify.
//!
//! Every user migrates, whatever identities they have: `email` is nullable
//! (phone-only, anonymous and SSO users have none) and unique where present
//! among non-SSO users, as in `auth.users`; the runbook's NOT NULLs hold
//! only where `auth.users` has them too. The target also gets
//! `auth.users` as a view over `app_users` with the source's column names,
//! so the application's functions, views and policies that read or update
//! `auth.users` keep working.

use serde::{Deserialize, Serialize};

use crate::catalog::ColumnDef;
use crate::pg::quote_ident;

/// `auth.users` column → `app_users` column, with the runbook's type: the
/// runbook's mapping.
pub const USER_COLUMNS: &[(&str, &str, &str)] = &[
    ("id", "id", "uuid DEFAULT gen_random_uuid() NOT NULL"),
    ("email", "email", "text"),
    ("encrypted_password", "encrypted_password", "text"),
    (
        "email_confirmed_at",
        "email_confirmed_at",
        "timestamp with time zone",
    ),
    ("invited_at", "invited_at", "timestamp with time zone"),
    ("confirmation_token", "confirmation_token", "text"),
    (
        "confirmation_sent_at",
        "confirmation_sent_at",
        "timestamp with time zone",
    ),
    ("recovery_token", "recovery_token", "text"),
    (
        "recovery_sent_at",
        "recovery_sent_at",
        "timestamp with time zone",
    ),
    ("email_change_token_new", "email_change_token", "text"),
    ("email_change", "email_change", "text"),
    (
        "email_change_sent_at",
        "email_change_sent_at",
        "timestamp with time zone",
    ),
    (
        "last_sign_in_at",
        "last_sign_in_at",
        "timestamp with time zone",
    ),
    (
        "raw_app_meta_data",
        "raw_app_meta_data",
        "jsonb DEFAULT '{}'::jsonb",
    ),
    (
        "raw_user_meta_data",
        "raw_user_meta_data",
        "jsonb DEFAULT '{}'::jsonb",
    ),
    ("is_super_admin", "is_super_admin", "boolean DEFAULT false"),
    ("phone", "phone", "text"),
    (
        "phone_confirmed_at",
        "phone_confirmed_at",
        "timestamp with time zone",
    ),
    (
        "created_at",
        "created_at",
        "timestamp with time zone DEFAULT now() NOT NULL",
    ),
    (
        "updated_at",
        "updated_at",
        "timestamp with time zone DEFAULT now() NOT NULL",
    ),
    ("banned_until", "banned_until", "timestamp with time zone"),
    ("deleted_at", "deleted_at", "timestamp with time zone"),
];

/// The table `auth.users` becomes.
pub const APP_USERS: &str = "public.app_users";

/// One column of `app_users` and the `auth.users` column it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserColumn {
    /// In `auth.users`.
    pub source: String,
    /// In `app_users`.
    pub target: String,
    /// Its definition (type, default, NOT NULL, generation).
    pub definition: String,
    /// A stored generated column (computed on the target, not copied).
    pub generated: bool,
    /// One of the runbook's columns (else carried from `auth.users` as it is).
    pub runbook: bool,
}

/// `app_users`' columns for a source `auth.users` with `columns`: the
/// runbook's first, in its order, then the others in the source's.
pub fn user_columns(columns: &[ColumnDef]) -> Vec<UserColumn> {
    let mut out: Vec<UserColumn> = USER_COLUMNS
        .iter()
        .filter_map(|(from, to, def)| {
            let src = columns.iter().find(|c| c.name == *from)?;
            // The runbook's NOT NULL only where the source has it too: a
            // user `auth.users` holds must not be refused (GoTrue's
            // `created_at` is nullable, and helpers that insert only an id
            // and an email leave it NULL).
            let definition = match def.strip_suffix(" NOT NULL") {
                Some(nullable) if !src.not_null => nullable.to_string(),
                _ => def.to_string(),
            };
            Some(UserColumn {
                source: from.to_string(),
                target: to.to_string(),
                definition,
                generated: false,
                runbook: true,
            })
        })
        .collect();
    for c in columns {
        if USER_COLUMNS.iter().any(|(from, _, _)| *from == c.name) {
            continue;
        }
        let mut def = c.data_type.clone();
        if let Some(g) = &c.generated {
            def.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
        } else if let Some(d) = &c.default {
            def.push_str(&format!(" DEFAULT {d}"));
        }
        if c.not_null {
            def.push_str(" NOT NULL");
        }
        out.push(UserColumn {
            source: c.name.clone(),
            target: c.name.clone(),
            definition: def,
            generated: c.generated.is_some(),
            runbook: false,
        });
    }
    out
}

/// `CREATE TABLE public.app_users (…)`.
pub fn app_users_table(columns: &[UserColumn]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("    {} {}", quote_ident(&c.target), c.definition))
        .collect();
    format!("CREATE TABLE public.app_users (\n{}\n);", cols.join(",\n"))
}

/// The keys and indexes of `app_users`, built after its data: the email is
/// unique among non-SSO users where the source has `is_sso_user` (as
/// `auth.users`' `users_email_partial_key`), else unique.
pub fn app_users_keys(columns: &[UserColumn]) -> Vec<String> {
    let mut out = vec![
        "ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_pkey PRIMARY KEY (id);"
            .to_string(),
    ];
    if columns.iter().any(|c| c.target == "email") {
        if columns.iter().any(|c| c.target == "is_sso_user") {
            out.push("CREATE UNIQUE INDEX app_users_email_partial_key ON public.app_users USING btree (email) WHERE (is_sso_user = false);".into());
        } else {
            out.push("ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_email_key UNIQUE (email);".into());
        }
        out.push(
            "CREATE INDEX idx_app_users_email ON public.app_users USING btree (email);".into(),
        );
    }
    if columns.iter().any(|c| c.target == "phone") {
        out.push(
            "CREATE INDEX idx_app_users_phone ON public.app_users USING btree (phone);".into(),
        );
    }
    out
}

/// `auth.users` as a view over `app_users`, with the source's column names
/// (automatically updatable: functions that update it update `app_users`).
/// It runs with its caller's privileges, so `app_users`' row level
/// security applies to readers as `auth.users`' does on Supabase.
pub fn users_view(columns: &[UserColumn]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.source == c.target {
                quote_ident(&c.target)
            } else {
                format!("{} AS {}", quote_ident(&c.target), quote_ident(&c.source))
            }
        })
        .collect();
    format!(
        "CREATE VIEW auth.users WITH (security_invoker = true) AS\n SELECT {}\n   FROM public.app_users;",
        cols.join(",\n    ")
    )
}

/// A source column and the target column it is copied into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnPair {
    /// On the source.
    pub source: String,
    /// On the target.
    pub target: String,
}
