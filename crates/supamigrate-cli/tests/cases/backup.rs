//! `supamigrate backup`, `backup verify` and `rollback` on the sandbox source:
//! owner-only files, no password anywhere, a restore test, a rollback that
//! brings every table back after updates, deletes, inserts and a dropped
//! table, and damaged backups detected and refused.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use supamigrate::connect::connect;
use supamigrate::verify::fingerprint;
use supamigrate_sandbox::Sandbox;

use crate::common::{output_text, run};

fn bin(sb: &Sandbox) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("SUPABASE_PROJECT_REF", "sbxtmsprojectref0001")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    c
}

async fn fingerprints(sb: &Sandbox) -> BTreeMap<String, (i64, String)> {
    let c = connect(&sb.source_superuser("postgres")).await.unwrap();
    fingerprint::schemas(&c, &["public", "auth", "storage"])
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.table.to_string(), (f.rows, f.digest)))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn backup_restores_and_rollback_brings_every_table_back() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("backups");

    let mut b = bin(&sb);
    b.args(["-v", "backup", "--out"]).arg(&out_dir);
    let out = run(b).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let latest = out_dir.join("latest");
    let dir: PathBuf = out_dir.join(std::fs::read_link(&latest).unwrap());
    assert_eq!(mode(&out_dir), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["data.sql", "full.dump", "manifest.json", "schema.sql"]
    );
    for n in &names {
        assert_eq!(mode(&dir.join(n)), 0o600, "{n}");
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let logs = output_text(&out);
    for secret in [
        sb.source_url().password.unwrap().expose().to_string(),
        sb.target_url().password.unwrap().expose().to_string(),
    ] {
        assert!(!manifest.contains(&secret), "password in the manifest");
        assert!(!logs.contains(&secret), "password in the output");
    }
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(m["source"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with("15"));
    // Every table of the application and of Supabase's auth and storage
    // schemas is in the backup.
    let expected: i64 = supamigrate::connect::connect(&sb.source_superuser("postgres"))
        .await
        .unwrap()
        .query_one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') and not c.relispartition and n.nspname in ('public', 'auth', 'storage')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let tables: Vec<&str> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["schema"].as_str())
        .filter(|s| ["public", "auth", "storage"].contains(s))
        .collect();
    assert_eq!(tables.len() as i64, expected, "{tables:?}");
    let names_in: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names_in, ["full.dump", "schema.sql", "data.sql"]);

    // The backup restores: on the target server, and on a local cluster.
    for extra in [None, Some("--sandbox")] {
        let mut v = bin(&sb);
        v.args(["backup", "verify"]).arg(&latest);
        v.args(extra);
        let out = run(v).await;
        assert!(out.status.success(), "{extra:?}: {}", output_text(&out));
        let restored = format!(
            "✓ the backup restores: {} tables",
            m["tables"].as_array().unwrap().len()
        );
        assert!(
            output_text(&out).contains(&restored),
            "{}",
            output_text(&out)
        );
    }
    // …and leaves no scratch database behind.
    let tgt = connect(&sb.target_superuser("postgres")).await.unwrap();
    let scratch: i64 = tgt
        .query_one(
            "select count(*) from pg_database where datname like 'supamigrate_restore_check_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(scratch, 0);

    let original = fingerprints(&sb).await;
    let src = connect(&sb.source_url()).await.unwrap();
    src.batch_execute(
        "update public.customers set display_name = 'changed' where id = (select min(id::text)::uuid from public.customers);
         delete from public.trip_alerts where id in (select id from public.trip_alerts order by id limit 5);
         insert into public.materials (name) values ('added after the backup');
         drop table public.trip_audit_logs;
         update auth.users set email = 'changed@example.com' where id = (select min(id::text)::uuid from auth.users);
         insert into auth.users (id, email, instance_id, aud, role)
           values ('00000000-0000-4000-8000-00000000abcd', 'new@example.com',
                   '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated');",
    )
    .await
    .unwrap();
    let changed = fingerprints(&sb).await;
    assert_ne!(changed, original);

    // Damaged backups: detected by `backup verify`, refused by `rollback`.
    for (name, damage) in [("truncated", 0usize), ("edited", 1)] {
        let bad = work.path().join(name);
        copy_dir(&dir, &bad);
        let dump = bad.join("full.dump");
        let mut bytes = std::fs::read(&dump).unwrap();
        if damage == 0 {
            bytes.truncate(bytes.len() / 2);
        } else {
            let i = bytes.len() / 2;
            bytes[i] ^= 0x55;
        }
        std::fs::write(&dump, bytes).unwrap();
        let mut v = bin(&sb);
        v.args(["backup", "verify"]).arg(&bad);
        let out = run(v).await;
        assert_eq!(out.status.code(), Some(1), "{name}: {}", output_text(&out));
        assert!(
            output_text(&out).contains("full.dump"),
            "{name}: {}",
            output_text(&out)
        );
        let mut r = bin(&sb);
        r.args(["rollback", "--yes", "--backup"]).arg(&bad);
        let out = run(r).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {}", output_text(&out));
        assert!(
            output_text(&out).contains("refusing to roll back"),
            "{}",
            output_text(&out)
        );
        assert_eq!(fingerprints(&sb).await, changed, "{name}: nothing changed");
    }
    // No --yes and no terminal to ask on: refused, nothing changed.
    let mut r = bin(&sb);
    r.args(["rollback", "--backup"]).arg(&latest);
    let out = run(r).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert_eq!(fingerprints(&sb).await, changed);

    let mut r = bin(&sb);
    r.args(["rollback", "--yes", "--backup"]).arg(&latest);
    let out = run(r).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("merge back the rows of auth.users"), "{t}");
    // Before asking, what the rollback undoes, per table: (discarded, put
    // back, reverted).
    let counts = |table: &str| -> Vec<String> {
        t.lines()
            .map(str::split_whitespace)
            .map(|w| w.map(str::to_string).collect::<Vec<_>>())
            .find(|w| w.len() == 4 && w[0] == table)
            .unwrap_or_else(|| panic!("no line for {table}: {t}"))[1..]
            .to_vec()
    };
    for (table, want) in [
        ("public.customers", ["0", "0", "1"]),
        ("public.trip_alerts", ["0", "5", "0"]),
        ("public.materials", ["1", "0", "0"]),
        ("auth.users", ["1", "0", "1"]),
    ] {
        assert_eq!(counts(table), want, "{table}: {t}");
    }
    assert!(t.contains("will be lost"), "{t}");
    assert!(t.contains("keep FUNCTION public.handle_new_user()"), "{t}");
    assert!(t.contains("✓ every table equals the backup"), "{t}");
    assert!(
        t.contains("export SUPABASE_URL='https://sbxtmsprojectref0001.supabase.co'"),
        "{t}"
    );
    assert!(!t.contains(sb.source_url().password.unwrap().expose()));
    assert_eq!(fingerprints(&sb).await, original);
}
