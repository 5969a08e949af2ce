//! Small applications in Supabase form, written for the tests: together they
//! use every platform feature a hosted project's migrations use (see
//! [`FEATURES`]). Each is loaded the way `supabase db push` applies
//! migrations (as `postgres`, one transaction per file), then the platform's
//! own writes (GoTrue's users, the Storage server's objects, the
//! dashboard's queues and secrets) are replayed as `supabase_admin`.

use std::path::Path;

use supamigrate::connect::{connect, ConnInfo};
use supamigrate::error::{Error, Result};

use crate::migrations::Migration;

/// One fixture application.
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// Its name (`notes`, `files`…).
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Its migrations, in order.
    pub migrations: &'static [Migration],
    /// The dashboard's SQL, as supabase_admin (queues, Vault).
    pub dashboard: &'static str,
    /// GoTrue's and the application's rows, as supabase_admin.
    pub seed: &'static str,
    /// Storage objects: (bucket, name, owner): written to the store and to
    /// `storage.objects` after the seed.
    pub objects: &'static [(&'static str, &'static str, &'static str)],
    /// SQL run after the objects (rows that reference them).
    pub after_objects: &'static str,
}

const ALICE: &str = "a1111111-1111-4111-8111-111111111111";
const BOB: &str = "b2222222-2222-4222-8222-222222222222";

/// The fixture applications.
pub const APPS: &[App] = &[
    App {
        name: "notes",
        about: "Supabase Auth: users of every kind, code that reads and updates auth.users, triggers on auth tables, an Auth hook",
        migrations: &[
            Migration { version: "20240101000000", name: "schema", sql: include_str!("notes/20240101000000_schema.sql") },
            Migration { version: "20240102000000", name: "policies", sql: include_str!("notes/20240102000000_policies.sql") },
            Migration { version: "20240103000000", name: "auth_hook", sql: include_str!("notes/20240103000000_auth_hook.sql") },
        ],
        dashboard: "",
        seed: include_str!("notes/seed.sql"),
        objects: &[],
        after_objects: "",
    },
    App {
        name: "files",
        about: "Supabase Storage: buckets, objects, references in every form, code over storage.objects",
        migrations: &[Migration { version: "20240201000000", name: "schema", sql: include_str!("files/20240201000000_schema.sql") }],
        dashboard: "",
        seed: include_str!("files/seed.sql"),
        objects: &[
            ("avatars", "a1111111-1111-4111-8111-111111111111/avatar.png", ALICE),
            ("avatars", "b2222222-2222-4222-8222-222222222222/avatar.png", BOB),
            ("documents", "a1111111-1111-4111-8111-111111111111/report 2024.pdf", ALICE),
            ("documents", "a1111111-1111-4111-8111-111111111111/notes/ünïcode ✓.txt", ALICE),
            ("documents", "b2222222-2222-4222-8222-222222222222/scan.pdf", BOB),
        ],
        after_objects: include_str!("files/seed_after_objects.sql"),
    },
    App {
        name: "hooks",
        about: "Webhooks, pg_net and http, Realtime, pg_cron, pgmq, Vault, a wrappers FDW, a CHECK calling pg_jsonschema",
        migrations: &[Migration { version: "20240301000000", name: "schema", sql: include_str!("hooks/20240301000000_schema.sql") }],
        dashboard: include_str!("hooks/dashboard.sql"),
        seed: include_str!("hooks/seed.sql"),
        objects: &[],
        after_objects: "",
    },
    App {
        name: "search",
        about: "Extensions the data needs in the extensions schema: vector with HNSW, pg_trgm, moddatetime; a generated column; partitioned tables with a foreign key between them; materialized views",
        migrations: &[
            Migration { version: "20240401000000", name: "schema", sql: include_str!("search/20240401000000_schema.sql") },
            Migration { version: "20240402000000", name: "reports", sql: include_str!("search/20240402000000_reports.sql") },
        ],
        dashboard: "",
        seed: include_str!("search/seed.sql"),
        objects: &[],
        after_objects: "",
    },
    App {
        name: "accounts",
        about: "Only Supabase Auth: no table of its own; a function reading its identities",
        migrations: &[Migration { version: "20240501000000", name: "sign_in", sql: include_str!("accounts/20240501000000_sign_in.sql") }],
        dashboard: "",
        seed: include_str!("accounts/seed.sql"),
        objects: &[],
        after_objects: "",
    },
    App {
        name: "catalog",
        about: "Extensions in public: vector and citext; a nondeterministic collation; a role, a range type and a publication of its own",
        migrations: &[Migration { version: "20240501000000", name: "schema", sql: include_str!("catalog/20240501000000_schema.sql") }],
        dashboard: "",
        seed: include_str!("catalog/seed.sql"),
        objects: &[],
        after_objects: "",
    },
];

/// The app named `name`.
pub fn find(name: &str) -> Option<&'static App> {
    APPS.iter().find(|a| a.name == name)
}

/// The keys and tokens the fixtures hide in their definitions: no output of
/// supamigrate may show one.
pub const SECRETS: &[&str] = &[
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoic2VydmljZV9yb2xlIn0.Zml4dHVyZS1zZXJ2aWNlLXJvbGUtc2lnbmF0dXJl",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImZpeHR1cmUiLCJyb2xlIjoiYW5vbiJ9.Zml4dHVyZS1hbm9uLWtleS1zaWduYXR1cmU",
    "sk_test_fixture51HxAbCdEfGhIjKlMn",
    "rk_live_fixture0123456789",
    "sk_live_fixtureVaultSecret0123",
    "YXVkaXQ6Zml4dHVyZS1iYXNpYy1wYXNz",
    "whk-fixture-7f3a9c",
    "fixture-url-pass",
    SIGNED_URL_TOKEN,
];

/// The token of the files app's signed URLs (data, not a definition: it is
/// copied, never shown).
pub const SIGNED_URL_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1cmwiOiJkb2N1bWVudHMvcmVwb3J0LnBkZiJ9.c2lnbmVkLXVybC10b2tlbi1zaWduYXR1cmU";

/// The bytes of object `name` (deterministic).
pub fn object_bytes(bucket: &str, name: &str) -> Vec<u8> {
    let mut out = format!("{bucket}/{name}\n").into_bytes();
    let mut x: u32 = name
        .bytes()
        .fold(7, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    while out.len() < 4096 + name.len() * 17 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x & 0xff) as u8);
    }
    out
}

/// Loads `app` into the source: migrations as `as_postgres`, then the
/// dashboard's SQL, the seed, the objects (rows and files under
/// `storage_dir/<bucket>/<name>`) and what references them, as `as_superuser`.
pub async fn install(
    app: &App,
    as_postgres: &ConnInfo,
    as_superuser: &ConnInfo,
    storage_dir: &Path,
    project_ref: &str,
) -> Result<()> {
    crate::migrations::push(as_postgres, app.migrations).await?;
    let admin = connect(as_superuser).await?;
    let run = |what: &'static str, sql: String| {
        let admin = &admin;
        async move {
            if sql.trim().is_empty() {
                return Ok(());
            }
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| Error::postgres(format!("fixture app {}: {what}", app.name), e))
        }
    };
    run("dashboard", app.dashboard.to_string()).await?;
    run("seed", app.seed.to_string()).await?;
    for (bucket, name, owner) in app.objects {
        let bytes = object_bytes(bucket, name);
        let path = storage_dir.join(bucket).join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        std::fs::write(&path, &bytes)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        let mime = if name.ends_with(".png") {
            "image/png"
        } else if name.ends_with(".pdf") {
            "application/pdf"
        } else {
            "text/plain"
        };
        let etag = format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes))
        );
        admin
            .execute(
                "insert into storage.objects (bucket_id, name, owner, owner_id, metadata) \
                 values ($1, $2, $3::text::uuid, $3, jsonb_build_object('size', $4::bigint, 'mimetype', $5::text, 'eTag', $6::text))",
                &[bucket, name, owner, &(bytes.len() as i64), &mime, &etag],
            )
            .await
            .map_err(|e| Error::postgres(format!("fixture app {}: object {bucket}/{name}", app.name), e))?;
    }
    let after = app
        .after_objects
        .replace("__REF__", project_ref)
        .replace("__SIGNED__", SIGNED_URL_TOKEN);
    run("rows referencing objects", after).await?;
    admin
        .batch_execute("analyze")
        .await
        .map_err(|e| Error::postgres("analyzing the fixture app", e))
}
