//! `auth.users` becomes `public.app_users`: the runbook's table and column
//! mapping, in one place for the conversion, the copy and verify.

use serde::{Deserialize, Serialize};

/// `auth.users` column → `app_users` column: the runbook's mapping.
pub const USER_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("email", "email"),
    ("encrypted_password", "encrypted_password"),
    ("email_confirmed_at", "email_confirmed_at"),
    ("invited_at", "invited_at"),
    ("confirmation_token", "confirmation_token"),
    ("confirmation_sent_at", "confirmation_sent_at"),
    ("recovery_token", "recovery_token"),
    ("recovery_sent_at", "recovery_sent_at"),
    ("email_change_token_new", "email_change_token"),
    ("email_change", "email_change"),
    ("email_change_sent_at", "email_change_sent_at"),
    ("last_sign_in_at", "last_sign_in_at"),
    ("raw_app_meta_data", "raw_app_meta_data"),
    ("raw_user_meta_data", "raw_user_meta_data"),
    ("is_super_admin", "is_super_admin"),
    ("phone", "phone"),
    ("phone_confirmed_at", "phone_confirmed_at"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("banned_until", "banned_until"),
    ("deleted_at", "deleted_at"),
];

/// The table `auth.users` becomes.
pub const APP_USERS: &str = "public.app_users";

pub const APP_USERS_TABLE: &str = "CREATE TABLE public.app_users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    encrypted_password text,
    email_confirmed_at timestamp with time zone,
    invited_at timestamp with time zone,
    confirmation_token text,
    confirmation_sent_at timestamp with time zone,
    recovery_token text,
    recovery_sent_at timestamp with time zone,
    email_change_token text,
    email_change text,
    email_change_sent_at timestamp with time zone,
    last_sign_in_at timestamp with time zone,
    raw_app_meta_data jsonb DEFAULT '{}'::jsonb,
    raw_user_meta_data jsonb DEFAULT '{}'::jsonb,
    is_super_admin boolean DEFAULT false,
    phone text,
    phone_confirmed_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    banned_until timestamp with time zone,
    deleted_at timestamp with time zone
);";

pub const APP_USERS_POST: &[&str] = &[
    "ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_pkey PRIMARY KEY (id);",
    "ALTER TABLE ONLY public.app_users ADD CONSTRAINT app_users_email_key UNIQUE (email);",
    "CREATE INDEX idx_app_users_email ON public.app_users USING btree (email);",
    "CREATE INDEX idx_app_users_phone ON public.app_users USING btree (phone);",
];

/// The `auth` shim for `--policies shim`: Supabase's own definitions, reading
/// A source column and the target column it is copied into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnPair {
    /// On the source.
    pub source: String,
    /// On the target.
    pub target: String,
}

/// The `auth.users` → `app_users` pairs for the columns the source has.
pub fn user_columns(source_columns: &[String]) -> Vec<ColumnPair> {
    USER_COLUMNS
        .iter()
        .filter(|(from, _)| source_columns.iter().any(|c| c == from))
        .map(|(from, to)| ColumnPair {
            source: from.to_string(),
            target: to.to_string(),
        })
        .collect()
}
