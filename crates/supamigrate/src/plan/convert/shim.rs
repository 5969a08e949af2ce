//! The `auth` shim for `--policies shim`: Supabase's own definitions of
//! `auth.uid()` and friends, reading the JSON claims PostgREST sets, so every
//! policy keeps working on the target.

use super::{Action, Conversion};
use crate::error::Result;
use crate::plan::statements::{added, Section};

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
    "GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;",
];

/// Adds the shim to the start of pre-data.
pub(super) fn add(out: &mut Conversion) -> Result<()> {
    for s in AUTH_SHIM {
        out.push(added(s, Section::PreData)?);
    }
    out.note(
        Action::Added,
        "schema auth with uid(), role(), email(), jwt()",
        "--policies shim: RLS policies call them; they read request.jwt.claims as on Supabase",
    );
    Ok(())
}
