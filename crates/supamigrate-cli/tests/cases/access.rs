//! Access is never wider on the target than on the source. The MFA shape
//! real applications use: a permissive policy (`owner = auth.uid()`) and a
//! RESTRICTIVE one calling a function that reads Supabase Auth's tables. A
//! user enrolled in TOTP with an `aal1` JWT sees nothing on the source.
//! `auth.mfa_factors` moves as a table: the policy and its function keep
//! working on the target. A function reading what does not move
//! (`auth.one_time_tokens`) is left out, and its restrictive policy then
//! refuses the plan (or is kept failing closed): never dropped to show the
//! row.

use std::process::Command;

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;
use tokio_postgres::Client;

use crate::common::{ok, output_text, run};

fn bin(sb: &Sandbox) -> Command {
    crate::common::supamigrate(sb)
}

const USER: &str = "a1111111-1111-4111-8111-111111111111";

/// What says a user enrolled in MFA: their verified factor (which moves),
/// or a pending reauthentication token (which does not).
const BY_FACTOR: &str =
    "select 1 from auth.mfa_factors f where f.user_id = auth.uid() and f.status = 'verified'";
const BY_ONE_TIME_TOKEN: &str = "select 1 from auth.one_time_tokens t \
    where t.user_id = auth.uid() and t.token_type = 'reauthentication_token'";

/// The app, its restrictive policy's function deciding with `enrolled`.
fn app(enrolled: &str) -> String {
    APP.replace("ENROLLED", enrolled)
}

const APP: &str = "
create table public.vault_notes (id bigint primary key, owner uuid not null, body text not null);
alter table public.vault_notes enable row level security;
create function public.required_aal() returns text[]
  language sql stable security definer set search_path = ''
  as $$ select case when exists (ENROLLED)
                    then array['aal2'] else array['aal1', 'aal2'] end $$;
create policy own on public.vault_notes for select to authenticated using (owner = auth.uid());
create policy mfa on public.vault_notes as restrictive for select to authenticated
  using (array[auth.jwt() ->> 'aal'] <@ public.required_aal());
grant select on public.vault_notes to authenticated;
";

/// Rows of public.vault_notes the user sees with `aal` in their JWT.
async fn seen(c: &Client, aal: &str) -> i64 {
    let claims = format!("{{\"sub\":\"{USER}\",\"role\":\"authenticated\",\"aal\":\"{aal}\"}}");
    c.batch_execute(&format!(
        "select set_config('request.jwt.claims', '{claims}', false); set role authenticated"
    ))
    .await
    .unwrap();
    let n: i64 = c
        .query_one("select count(*) from public.vault_notes", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("reset role").await.unwrap();
    n
}

/// Sets the source up with the app (deciding with `enrolled`), a user
/// enrolled in TOTP and their row; checks the source asks for aal2.
async fn mfa_source(sb: &Sandbox, enrolled: &str) {
    let app_conn = connect(&sb.source_url()).await.unwrap();
    app_conn.batch_execute(&app(enrolled)).await.unwrap();
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(&format!(
            "insert into auth.users (id, email, created_at, updated_at) values ('{USER}', 'mfa@example.com', now(), now());
             insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at)
               values (gen_random_uuid(), '{USER}', 'phone', 'totp', 'verified', now(), now());
             insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)
               values (gen_random_uuid(), '{USER}', 'reauthentication_token', 'h', 'mfa@example.com');
             insert into public.vault_notes values (1, '{USER}', 'the launch codes');"
        ))
        .await
        .unwrap();
    assert_eq!(seen(&admin, "aal1").await, 0, "the source asks for aal2");
    assert_eq!(seen(&admin, "aal2").await, 1);
}

/// provision (with `extra` flags), pre-data and copy.
async fn provision_and_copy(sb: &Sandbox, extra: &[&str]) -> String {
    let secrets = tempfile::tempdir().unwrap();
    let mut provision = bin(sb);
    provision
        .args(["provision", "--yes"])
        .args(extra)
        .arg("--secrets-dir")
        .arg(secrets.path());
    let out = ok(provision, "provision").await;
    let mut apply = bin(sb);
    apply.args(["schema", "apply", "--section", "pre-data"]);
    ok(apply, "pre-data").await;
    let mut copy = bin(sb);
    copy.arg("copy");
    ok(copy, "copy").await;
    output_text(&out)
}

#[tokio::test]
async fn an_mfa_policy_reading_auth_tables_keeps_working_on_the_target() {
    if !supamigrate_sandbox::platform::require("access::an_mfa_policy_reading_auth_tables") {
        return;
    }
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    mfa_source(&sb, BY_FACTOR).await;
    // A sign-in report reading Auth's audit log: the log moves with it.
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(&format!(
            "insert into auth.audit_log_entries (id, payload, created_at)
               values (gen_random_uuid(), jsonb_build_object('actor_id', '{USER}', 'action', 'login'), now());"
        ))
        .await
        .unwrap();
    connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute(
            "create function public.sign_ins(who uuid) returns bigint language sql stable security definer set search_path = '' \
               as $$ select count(*) from auth.audit_log_entries e where e.payload ->> 'actor_id' = who::text and e.payload ->> 'action' = 'login' $$;",
        )
        .await
        .unwrap();
    // A passkey: its credential moves with the user.
    admin
        .batch_execute(&format!(
            "insert into auth.webauthn_credentials (user_id, credential_id, public_key, friendly_name)
               values ('{USER}', '\\x0102a0', '\\x0304b0', 'laptop');"
        ))
        .await
        .unwrap();
    let out = provision_and_copy(&sb, &[]).await;
    assert!(out.contains("table auth.mfa_factors"), "{out}");
    assert!(out.contains("table auth.webauthn_credentials"), "{out}");
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    assert_eq!(seen(&tgt, "aal1").await, 0, "never wider than the source");
    assert_eq!(seen(&tgt, "aal2").await, 1, "as on the source");
    let factors: i64 = tgt
        .query_one("select count(*) from auth.mfa_factors where factor_type = 'totp' and status = 'verified'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(factors, 1, "the factor, with its enum types");
    let sign_ins: i64 = tgt
        .query_one(&format!("select public.sign_ins('{USER}')"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sign_ins, 1, "the report reads the audit log on the target");
    let passkey: String = tgt
        .query_one(
            &format!("select encode(credential_id, 'hex') || encode(public_key, 'hex') from auth.webauthn_credentials where user_id = '{USER}'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(passkey, "0102a00304b0", "the passkey, byte for byte");
}

#[tokio::test]
async fn a_restrictive_mfa_policy_is_never_dropped_to_widen_access() {
    if !supamigrate_sandbox::platform::require("access::a_restrictive_mfa_policy") {
        return;
    }
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    mfa_source(&sb, BY_ONE_TIME_TOKEN).await;

    // Refused by default, before anything is written, naming the policy.
    let mut plan = bin(&sb);
    plan.arg("plan");
    let out = run(plan).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("access would be wider on the target")
            && text.contains("public.vault_notes.mfa")
            && text.contains("--restrictive fail-closed"),
        "{text}"
    );

    // Kept failing closed: nobody in its scope sees the row until the
    // policy is rewritten for the target.
    let out = provision_and_copy(&sb, &["--restrictive", "fail-closed"]).await;
    assert!(out.contains("kept failing closed"), "{out}");
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    assert_eq!(seen(&tgt, "aal1").await, 0, "never wider than the source");
    assert_eq!(seen(&tgt, "aal2").await, 0, "failing closed");
    let restrictive: i64 = tgt
        .query_one(
            "select count(*) from pg_policies where tablename = 'vault_notes' and policyname = 'mfa' and permissive = 'RESTRICTIVE' and qual = 'false'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(restrictive, 1);
}

/// `run --yes` in `work`, Storage from the sandbox to a folder.
fn run_with_stores(sb: &Sandbox, work: &std::path::Path) -> Command {
    let mut r = crate::common::run_in(sb, work);
    r.arg("--source-dir")
        .arg(sb.storage_dir())
        .arg("--dest-dir")
        .arg(work.join("s3"));
    r
}

/// A table an extension created in `public` (wrappers' `wrappers_fdw_stats`,
/// the target lacking wrappers) is the extension's, not the application's:
/// left out of the copy, the backup's manifest and verify; the run is green.
#[tokio::test]
async fn an_extension_table_in_public_does_not_stop_the_run() {
    if !supamigrate_sandbox::platform::require("access::an_extension_table_in_public") {
        return;
    }
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(
            "create extension wrappers schema public;
             insert into public.wrappers_fdw_stats (fdw_name, rows_in) values ('stripe_fdw', 10);",
        )
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = ok(
        run_with_stores(&sb, work.path()),
        "run with wrappers' table in public",
    )
    .await;
    assert!(
        output_text(&out).contains("✓ migration complete: data equal; 5 policies left behind"),
        "{}",
        output_text(&out)
    );
}

/// PostGIS in `public` (as `create extension postgis` puts it): its
/// configuration table `public.spatial_ref_sys` is filled by CREATE
/// EXTENSION on the target, and only the reference systems the project
/// added are copied (the whole table copied as the application's refused
/// the run: the target's table already held rows). Where the target user
/// may not write that table (RDS: rdsadmin owns it), the backup's restore
/// test excuses it, and verify names the missing rows with the fix; once
/// the owner lets the user write, `copy` carries them and the run ends.
#[tokio::test]
async fn postgis_in_public_keeps_the_project_s_reference_systems() {
    if !supamigrate_sandbox::platform::require("access::postgis_in_public") {
        return;
    }
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(
            "create extension postgis schema public;
             insert into public.spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
               values (990001, 'project', 990001, '', '+proj=longlat +datum=WGS84 +no_defs');",
        )
        .await
        .unwrap();
    connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute(
            "create table public.places (id bigint primary key, geom geometry(Point, 4326));
             insert into public.places values (1, 'SRID=4326;POINT(1 2)');",
        )
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run_cmd = || run_with_stores(&sb, work.path());
    let out = run(run_cmd()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("extension postgis configuration public.spatial_ref_sys: 1 row(s) the project added on the source, 0 on the target")
            && text.contains("OWNER TO"),
        "{text}"
    );
    // As the table's owner on the target, then the copy again.
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    let me = sb.target_url().user;
    tgt.batch_execute(&format!("alter table public.spatial_ref_sys owner to {me}"))
        .await
        .unwrap();
    let mut copy = crate::common::supamigrate(&sb);
    copy.arg("copy");
    ok(copy, "copy again").await;
    let out = ok(run_cmd(), "run once the rows are copied").await;
    assert!(
        output_text(&out).contains("✓ migration complete"),
        "{}",
        output_text(&out)
    );
    let row = tgt
        .query_one(
            "select (select count(*) from public.spatial_ref_sys where srid = 990001), \
                    (select count(*) from public.spatial_ref_sys) > 1000, \
                    (select public.st_astext(geom) from public.places where id = 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the project's reference system");
    assert!(
        row.get::<_, bool>(1),
        "PostGIS's own, from CREATE EXTENSION"
    );
    assert_eq!(row.get::<_, String>(2), "POINT(1 2)");
}
