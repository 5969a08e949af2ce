//! `verify --app` and `verify --login` on the notes application: how its
//! users sign in, each user's access, its views and functions, a query plan
//! made worse on the target, the application's new settings; and what a
//! target whose `auth.uid()` is broken looks like.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use supamigrate::connect::connect;
use supamigrate_sandbox::Sandbox;

use crate::apps::run_cmd;
use crate::common::{output_text, run};

/// A user added to the notes source with a password we know (pgcrypto's
/// bcrypt, as GoTrue stores it).
const PASSWORD: &str = "correct horse battery staple";

/// `supamigrate verify ARGS` on the sandbox, from `work` (where `run` kept
/// its state).
fn verify(sb: &Sandbox, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("SUPABASE_PROJECT_REF", sb.project_ref())
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("SUPAMIGRATE_LOGIN_PASSWORD")
        .env_remove("RUST_LOG")
        .env_remove("APP_DB_USER")
        .current_dir(work)
        .arg("verify")
        .args(args);
    c
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

async fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(out)))
}

/// Sets up what the notes fixture lacks for these checks: a user whose
/// password is known, and a table large enough for its index to matter,
/// read by a query pg_stat_statements records.
async fn prepare(sb: &Sandbox) {
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(&format!(
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, \
               raw_app_meta_data, raw_user_meta_data, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', '99999999-9999-4999-8999-999999999999', 'authenticated', \
               'authenticated', 'known@notes.example', extensions.crypt('{PASSWORD}', extensions.gen_salt('bf', 8)), now(), \
               '{{\"provider\":\"email\",\"providers\":[\"email\"],\"plan\":\"pro\"}}', '{{}}', now(), now());
             insert into auth.webauthn_credentials (user_id, credential_id, public_key, friendly_name)
               values ('99999999-9999-4999-8999-999999999999', '\\x0a0b0c', '\\x0d0e0f', 'phone');
             create table public.readings (id bigint primary key, device int not null, v float8);
             insert into public.readings select g, g % 2000, random() from generate_series(1, 60000) g;
             create index readings_device on public.readings (device);
             analyze public.readings;
             create function public.account_status() returns text language sql stable as $$ select 'ok' $$;
             grant execute on function public.account_status() to anon, authenticated;"
        ))
        .await
        .unwrap();
    let app = connect(&sb.source_url()).await.unwrap();
    for d in 0..30 {
        app.query("select id, v from public.readings where device = $1", &[&d])
            .await
            .unwrap();
        // A page: parameters in LIMIT and OFFSET too.
        app.query(
            "select id, v from public.readings where device = $1 order by id limit $2 offset $3",
            &[&d, &10_i64, &(i64::from(d) * 10)],
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_notes_app_is_proven_to_work_on_the_target() {
    if !supamigrate_sandbox::platform::require("app::notes") {
        return;
    }
    let (sb, work, out) = migrate_prepared().await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let work = work.path();

    // The census, each sign-in kind of the notes app counted and kept.
    let out = run(verify(&sb, work, &["--app", "--json", "--users", "3"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report = json(&out).await;
    let app = &report["app"];
    let kinds: Vec<(String, i64, i64)> = app["logins"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap().to_string(),
                k["users"].as_i64().unwrap(),
                k["differing"].as_i64().unwrap(),
            )
        })
        .collect();
    for want in [
        ("password: bcrypt (cost 10)", 1),
        ("password: bcrypt (cost 08)", 1),
        ("password: argon2id", 1),
        ("phone (one-time codes)", 1),
        ("anonymous", 1),
        ("OAuth: google", 1),
        ("SSO (SAML)", 1),
        ("passkey (WebAuthn)", 1),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(k, n, d)| k == want.0 && *n == want.1 && *d == 0),
            "{want:?} in {kinds:?}"
        );
    }
    // Each user's access: anon, service_role and three users, equal.
    let principals = app["access"]["principals"].as_array().unwrap();
    assert_eq!(principals.len(), 5, "{principals:?}");
    assert!(app["access"]["compared"].as_u64().unwrap() >= 15, "{app}");
    assert_eq!(app["access"]["differences"], serde_json::json!([]), "{app}");
    // The view over auth.users (now over app_users) answers the same.
    let views: Vec<&str> = app["answers"]["views"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(views.contains(&"view public.user_directory"), "{views:?}");
    assert_eq!(
        app["answers"]["differences"],
        serde_json::json!([]),
        "{app}"
    );
    // The busy queries are planned on both sides (the page too, with its
    // parameters in LIMIT and OFFSET), no finding yet; our own reads (run's
    // verify checksummed every table) are not among them.
    let planned: Vec<&str> = app["plans"]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        planned.iter().any(|q| q.contains("offset $3")),
        "{planned:?}"
    );
    assert!(
        !planned
            .iter()
            .any(|q| q.contains("supamigrate") || q.contains("md5(")),
        "our own reads among the application's: {planned:?}"
    );
    assert_eq!(app["plans"]["skipped"], serde_json::json!([]), "{app}");
    assert_eq!(app["plans"]["findings"], serde_json::json!([]), "{app}");

    // The settings file: 0600, the places, no secret's value.
    let settings = find(work, "app-settings.md").expect("app-settings.md in the state folder");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&settings).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let s = std::fs::read_to_string(&settings).unwrap();
    assert!(s.contains("DATABASE_URL=postgresql://"), "{s}");
    assert!(s.contains("sslmode=verify-full"), "{s}");
    assert!(s.contains("the google OAuth client secret"), "{s}");
    for secret in [
        sb.target_url()
            .password
            .as_ref()
            .map(|p| p.expose().to_string()),
        sb.source_url()
            .password
            .as_ref()
            .map(|p| p.expose().to_string()),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!s.contains(&secret), "a password in the settings file");
    }

    logins(&sb, work).await;
    plan_regression(&sb, work).await;
    broken_uid(&sb, work).await;
    data_in_errors(&sb, work).await;
    passkey_changed(&sb, work).await;
}

/// A passkey whose public key differs on the target: its user's sign-in
/// kind differs.
async fn passkey_changed(sb: &Sandbox, work: &Path) {
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    tgt.batch_execute("update auth.webauthn_credentials set public_key = '\\x00'")
        .await
        .unwrap();
    let out = run(verify(sb, work, &["--app", "--users", "3", "--json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let report = json(&out).await;
    let passkey = report["app"]["logins"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "passkey (WebAuthn)")
        .cloned()
        .unwrap_or_default();
    assert_eq!(passkey["differing"], 1, "{passkey}");
}

/// A function that now raises an error quoting data on the target: the
/// difference is reported by its SQLSTATE, never with the data.
async fn data_in_errors(sb: &Sandbox, work: &Path) {
    let tgt = connect(&sb.target_url()).await.unwrap();
    tgt.batch_execute(
        "create or replace function public.account_status() returns text language plpgsql stable as \
         $$ begin raise exception 'card %', 'SECRET-4242-4242'; end $$",
    )
    .await
    .unwrap();
    for args in [
        &["--app", "--users", "3"][..],
        &["--app", "--users", "3", "--json"],
    ] {
        let out = run(verify(sb, work, args)).await;
        let t = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains("public.account_status()"), "{t}");
        assert!(t.contains("SQLSTATE P0001"), "{t}");
        assert!(
            !t.contains("SECRET-4242"),
            "data from an error message: {t}"
        );
    }
}

/// A fresh notes sandbox, [`prepare`]d, then `run`.
async fn migrate_prepared() -> (Sandbox, tempfile::TempDir, Output) {
    let sb =
        Sandbox::ephemeral_app(supamigrate_sandbox::apps::find("notes").expect("the notes app"))
            .await
            .expect("sandbox starts");
    prepare(&sb).await;
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    (sb, work, out)
}

/// `verify --login`: the known user on both sides, a wrong password, an
/// argon2 user.
async fn logins(sb: &Sandbox, work: &Path) {
    let mut ok = verify(sb, work, &["--login", "known@notes.example"]);
    ok.env("SUPAMIGRATE_LOGIN_PASSWORD", PASSWORD);
    let out = run(ok).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("login known@notes.example on the source: the password matches the stored hash (bcrypt (cost 08))"), "{t}");
    assert!(
        t.contains("login known@notes.example on the target: the password matches"),
        "{t}"
    );
    assert!(!t.contains(PASSWORD), "{t}");
    let mut wrong = verify(sb, work, &["--login", "known@notes.example"]);
    wrong.env("SUPAMIGRATE_LOGIN_PASSWORD", "Tr0ub4dor&3");
    let out = run(wrong).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("on the target: the password does NOT match"),
        "{t}"
    );
    let mut argon = verify(sb, work, &["--login", "bob@notes.example"]);
    argon.env("SUPAMIGRATE_LOGIN_PASSWORD", PASSWORD);
    let out = run(argon).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not checked: the stored hash is argon2id"),
        "{t}"
    );
}

/// The busy query's index dropped on the target: a plan regression.
async fn plan_regression(sb: &Sandbox, work: &Path) {
    let tgt = connect(&sb.target_url()).await.unwrap();
    tgt.batch_execute("drop index public.readings_device")
        .await
        .unwrap();
    let out = run(verify(sb, work, &["--app", "--users", "3"])).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("by readings_device on the source became a sequential scan on the target")
            && t.contains("likely cause: missing index: readings_device is not on the target"),
        "{t}"
    );
    tgt.batch_execute(
        "create index readings_device on public.readings (device); analyze public.readings",
    )
    .await
    .unwrap();
}

/// `auth.uid()` broken on the target: every signed-up user's access differs.
async fn broken_uid(sb: &Sandbox, work: &Path) {
    let tgt = connect(&sb.target_url()).await.unwrap();
    tgt.batch_execute(
        "create or replace function auth.uid() returns uuid language sql stable as $$ select null::uuid $$",
    )
    .await
    .unwrap();
    let out = run(verify(sb, work, &["--app", "--users", "3"])).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    // The sampled user who owns a note sees it on the source, not on the
    // target; the function reading auth.uid() answers otherwise too.
    assert!(
        t.contains("public.notes as d4444444-4444-4444-8444-444444444444: source 1 row(s), target 0 row(s)"),
        "{t}"
    );
    assert!(
        t.contains("function public.my_claims() as 99999999-9999-4999-8999-999999999999: source 1 row(s), target 1 row(s) (same count, other values)"),
        "{t}"
    );
    assert!(t.contains("policies: own notes"), "{t}");
}
