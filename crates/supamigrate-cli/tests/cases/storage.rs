//! `supamigrate storage plan|copy|verify`: the sandbox's Storage (625 objects,
//! one over 64 MiB, unicode and spaces in keys, nested folders, an
//! `.emptyFolderPlaceholder`) to a real S3 server on loopback (s3s-fs), with
//! a copy killed midway and resumed, every object's bytes, Content-Type,
//! Cache-Control and user metadata checked, a corrupted object detected, and
//! the target's reference columns rewritten.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use supamigrate::connect::connect;
use supamigrate::storage::store::{ObjectStore, S3Store, Store};
use supamigrate_sandbox::Sandbox;

use crate::common::{ok, output_text, run};

const AK: &str = "supamigrate-test";
const SK: &str = "supamigrate-test-secret";

/// s3s-fs on a free loopback port, killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start(root: &Path) -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exe = [
            "s3s-fs",
            &format!(
                "{}/.cargo/bin/s3s-fs",
                std::env::var("HOME").unwrap_or_default()
            ),
        ]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("s3s-fs is installed (scripts/setup.sh installs it)")
        .to_string();
        let child = Command::new(exe)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin(sb: &Sandbox, s3: &S3Server) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env("APP_DB_USER", "tms_app")
        .env("SUPAMIGRATE_STORAGE_DIR", sb.storage_dir())
        .env("AWS_ACCESS_KEY_ID", AK)
        .env("AWS_SECRET_ACCESS_KEY", SK)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_S3", s3.endpoint())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SUPAMIGRATE_FAILPOINTS")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .arg("-q");
    c
}

#[tokio::test]
async fn storage_copies_resumes_verifies_and_rewrites_references() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let root = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(root.path());

    // The target, migrated: the reference columns live there.
    let secrets = tempfile::tempdir().unwrap();
    let mut p = bin(&sb, &s3);
    p.args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    // The plan's Storage choices: the runbook's columns and bucket names;
    // s3s-fs accepts only the STANDARD storage class.
    for r in supamigrate_sandbox::fixture::REFERENCES {
        p.args(["--reference", r]);
    }
    p.args([
        "--bucket-prefix",
        supamigrate_sandbox::fixture::BUCKET_PREFIX,
        "--storage-class",
        "STANDARD",
    ]);
    ok(p, "provision").await;
    let mut a = bin(&sb, &s3);
    a.args(["schema", "apply", "--section", "pre-data"]);
    ok(a, "pre-data").await;
    let mut c = bin(&sb, &s3);
    c.args(["copy", "--jobs", "2"]);
    ok(c, "copy").await;

    // The source's two views disagree on two objects.
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute(
            "insert into storage.objects (bucket_id, name, metadata)
             values ('driver-documents', 'ghost/never uploaded.pdf', '{\"size\": 5, \"mimetype\": \"application/pdf\"}')",
        )
        .await
        .unwrap();
    std::fs::write(
        sb.storage_dir().join("pod-documents/stray file.bin"),
        b"stray",
    )
    .unwrap();

    let mut plan = bin(&sb, &s3);
    plan.args(["storage", "plan", "--json"]);
    let out = ok(plan, "storage plan").await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = v["objects"]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 625);
    assert_eq!(
        v["objects"]["missing_in_store"],
        serde_json::json!([{"bucket": "driver-documents", "key": "ghost/never uploaded.pdf"}])
    );
    assert_eq!(
        v["objects"]["not_in_table"],
        serde_json::json!([{"bucket": "pod-documents", "key": "stray file.bin"}])
    );
    let changes = v["rewrite"]["changes"].as_array().unwrap().len();
    assert!(changes > 500, "{changes}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("token=eyJ"),
        "signed URL tokens are redacted"
    );
    assert!(
        root.path().read_dir().unwrap().next().is_none(),
        "plan wrote nothing"
    );

    // An object the store lacks stops the copy before any upload…
    let mut refused = bin(&sb, &s3);
    refused.args(["storage", "copy", "--storage-class", "STANDARD"]);
    let out = run(refused).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("1 objects listed in storage.objects are not in the Storage source: driver-documents/ghost/never uploaded.pdf")
            && t.contains("--allow-missing-objects"),
        "{t}"
    );
    assert!(
        root.path().read_dir().unwrap().next().is_none(),
        "nothing was uploaded"
    );

    // …unless allowed. A copy killed after 100 uploads, then resumed.
    let mut killed = bin(&sb, &s3);
    killed
        .args([
            "storage",
            "copy",
            "--storage-class",
            "STANDARD",
            "--jobs",
            "4",
            "--allow-missing-objects",
        ])
        .env("SUPAMIGRATE_FAILPOINTS", "storage-object-uploaded@100");
    let out = run(killed).await;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    let mut resumed = bin(&sb, &s3);
    resumed.args([
        "storage",
        "copy",
        "--storage-class",
        "STANDARD",
        "--jobs",
        "4",
        "--allow-missing-objects",
        "--json",
    ]);
    let out = ok(resumed, "storage copy (resumed)").await;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (copied, skipped) = (
        r["copy"]["copied"].as_u64().unwrap(),
        r["copy"]["skipped"].as_u64().unwrap(),
    );
    assert!(
        skipped >= 100,
        "finished objects are not uploaded again: {r:#}"
    );
    assert_eq!(copied + skipped, 625);
    assert_eq!(r["copy"]["failed"], serde_json::json!([]));
    assert_eq!(r["rewritten"].as_u64().unwrap() as usize, changes);
    assert_eq!(r["remaining"], serde_json::json!([]));

    // Every object: same bytes, Content-Type, Cache-Control, user metadata.
    let dest = S3Store::with_keys(&s3.endpoint(), AK, SK, "us-east-1", "test").await;
    check_objects(&sb, &admin, &dest, "tms-storage-").await;

    // No reference column on the target points at Supabase Storage.
    let tgt = connect(&sb.target_url()).await.unwrap();
    for (table, col) in [
        ("driver_documents", "file_path"),
        ("shipments", "pod_file_path"),
    ] {
        let n: i64 = tgt
            .query_one(
                &format!("select count(*) from public.{table} where {col} is not null and {col} not like 's3://tms-storage-%'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}.{col}");
    }

    let mut verify = bin(&sb, &s3);
    verify.args(["storage", "verify", "--storage-class", "STANDARD"]);
    let out = ok(verify, "storage verify").await;
    assert!(
        output_text(&out).contains("✓ every object's bytes are equal on both sides (625)"),
        "{}",
        output_text(&out)
    );

    // The rewrite changed nothing else: no trigger fired (updated_at kept),
    // every other column equals the source (the ghost row, listed after the
    // copy, is gone again: storage.objects is copied like any table).
    admin
        .batch_execute("set storage.allow_delete_query = 'true'; delete from storage.objects where name = 'ghost/never uploaded.pdf'")
        .await
        .unwrap();
    // Plain verify knows the rewrite happened (the target records it).
    let mut v = bin(&sb, &s3);
    v.arg("verify");
    let out = ok(v, "verify after the rewrite").await;
    assert!(
        output_text(&out).contains(
            "every value is the new location of the source's, none points at Supabase Storage"
        ),
        "{}",
        output_text(&out)
    );
    // A reference pointing at the wrong object is named, with its key.
    let wrong: String = tgt
        .query_one(
            "update public.driver_documents set file_path = 's3://tms-storage-driver-documents/wrong.pdf'
             where id = (select min(id::text)::uuid from public.driver_documents) returning id::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut v = bin(&sb, &s3);
    v.args(["verify", "--storage-rewritten"]);
    let out = run(v).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "public.driver_documents.file_path [{wrong}]: 's3://tms-storage-driver-documents/wrong.pdf' is not where"
        )),
        "{t}"
    );

    // The source as an S3 endpoint (Supabase Storage's S3 protocol): an S3
    // server over the same files, its own keys, into a directory.
    let source_s3 = S3Server::start(&sb.storage_dir());
    let from_s3 = tempfile::tempdir().unwrap();
    for command in ["copy", "verify"] {
        let mut c = bin(&sb, &s3);
        c.args(["storage", command, "--source-endpoint"])
            .arg(source_s3.endpoint())
            .arg("--dest-dir")
            .arg(from_s3.path())
            .env_remove("SUPAMIGRATE_STORAGE_DIR")
            .env("SUPABASE_S3_ACCESS_KEY_ID", AK)
            .env("SUPABASE_S3_SECRET_ACCESS_KEY", SK);
        let out = ok(c, &format!("storage {command} from the S3 endpoint")).await;
        let t = output_text(&out);
        assert!(
            t.contains("625 copied, 0 already there") || t.contains("equal on both sides (625)"),
            "{t}"
        );
    }
    drop(source_s3);

    // A corrupted object (same size, one byte changed at rest) is detected.
    let victim = root
        .path()
        .join("tms-storage-driver-documents")
        .read_dir()
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let file = walk_first_file(&victim);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let mut verify = bin(&sb, &s3);
    verify.args(["storage", "verify", "--storage-class", "STANDARD"]);
    let out = run(verify).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let line = t
        .lines()
        .find(|l| l.starts_with("✗ ") && l.contains(&name))
        .unwrap_or_else(|| panic!("the corrupted object {name} is named: {t}"));
    assert!(
        line.contains("content differs (SHA-256)")
            || line.contains("cannot be read back from the destination"),
        "{line}"
    );
    assert!(t.contains("1 object(s) differ"), "{t}");

    // A re-run of the copy repairs it: an object is skipped only when the
    // destination's bytes provably match the source's.
    let mut again = bin(&sb, &s3);
    again.args(["storage", "copy", "--json", "--storage-class", "STANDARD"]);
    let out = ok(again, "the repairing copy").await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copy"]["copied"], 1, "{report}");
    let mut verify = bin(&sb, &s3);
    verify.args(["storage", "verify", "--storage-class", "STANDARD"]);
    ok(verify, "verify after the repair").await;
}

/// Every object of the source (but the ghost row) is in `dest` under
/// `prefix` + its bucket with the source's Content-Type, Cache-Control and
/// user metadata; the large objects and some unicode/space keys have the
/// same bytes (`storage verify` compares every object).
async fn check_objects(sb: &Sandbox, admin: &tokio_postgres::Client, dest: &S3Store, prefix: &str) {
    let source = Store::dir(sb.storage_dir());
    let rows = admin
        .query(
            "select bucket_id, name, metadata->>'mimetype', metadata->>'cacheControl', user_metadata::text,
                    (metadata->>'size')::bigint
             from storage.objects where name <> 'ghost/never uploaded.pdf'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 625);
    let part = 16 * 1024 * 1024;
    let (mut big, mut odd_keys, mut placeholders) = (0, 0, 0);
    for row in &rows {
        let (bucket, key): (String, String) = (row.get(0), row.get(1));
        let dest_bucket = format!("{prefix}{bucket}");
        let h = dest
            .head(&dest_bucket, &key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key}"));
        assert_eq!(
            h.meta.content_type,
            row.get::<_, Option<String>>(2),
            "{key}"
        );
        assert_eq!(
            h.meta.cache_control,
            row.get::<_, Option<String>>(3),
            "{key}"
        );
        let um: Option<String> = row.get(4);
        match um {
            Some(um) => {
                let stored: Value =
                    serde_json::from_str(&h.meta.metadata["supabase-user-metadata"]).unwrap();
                assert_eq!(stored, serde_json::from_str::<Value>(&um).unwrap(), "{key}");
            }
            None => assert!(h.meta.metadata.is_empty(), "{key}"),
        }
        let size: i64 = row.get(5);
        let odd = key.contains(' ') || !key.is_ascii();
        // Bytes: read back here for the large objects and some odd keys;
        // `storage verify` below compares every object.
        if size > 64 * 1024 * 1024 || (odd && odd_keys < 20) {
            let s = source.digest(&bucket, &key, part).await.unwrap().unwrap();
            let d = dest
                .digest(&dest_bucket, &key, part)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (s.bytes, s.sha256_hex()),
                (d.bytes, d.sha256_hex()),
                "{key}"
            );
            assert_eq!(h.size, s.bytes, "{key}");
        }
        if size > 64 * 1024 * 1024 {
            big += 1;
        }
        if odd {
            odd_keys += 1;
        }
        if key.ends_with(".emptyFolderPlaceholder") {
            placeholders += 1;
        }
    }
    assert!(
        big >= 1 && odd_keys > 100 && placeholders == 1,
        "{big} {odd_keys} {placeholders}"
    );
}

fn walk_first_file(dir: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_file() && !p.to_string_lossy().contains(".s3s") {
            return p;
        }
        if p.is_dir() {
            return walk_first_file(&p);
        }
    }
    panic!("no file under {}", dir.display());
}

/// moto's S3 server (installed by scripts/setup.sh into `.tools/moto`) on a
/// free loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/moto/bin/moto_server");
        assert!(
            exe.is_file(),
            "moto's server is installed (scripts/setup.sh): {}",
            exe.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The destination bucket prefix of a `storage copy --json` report.
fn default_prefix(r: &Value) -> String {
    let o = &r["objects"]["objects"][0];
    let (dest, bucket) = (
        o["dest_bucket"].as_str().unwrap(),
        o["bucket"].as_str().unwrap(),
    );
    dest.strip_suffix(bucket)
        .expect("dest bucket = prefix + bucket")
        .to_string()
}

/// The same Storage migration against a second S3 implementation: every
/// object (unicode and space keys, a multipart upload of a key with `✓`,
/// metadata) copies after a kill and a resume, verifies byte for byte, and
/// a re-run skips them all.
#[tokio::test]
async fn storage_copies_and_verifies_against_moto_too() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let moto = Moto::start();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
        c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
            .env("RDS_URL", sb.target_url().to_url_with_password())
            .env("APP_DB_USER", "tms_app")
            .env("SUPAMIGRATE_STORAGE_DIR", sb.storage_dir())
            .env("AWS_ACCESS_KEY_ID", "moto")
            .env("AWS_SECRET_ACCESS_KEY", "moto-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_S3", &endpoint)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("SUPAMIGRATE_FAILPOINTS")
            .env_remove("RUST_LOG")
            .current_dir(std::env::temp_dir())
            .arg("-q")
            .arg("--state-dir")
            .arg(sb.dir().join("moto-state"))
            .args(args);
        c
    };
    ok(cmd(&["provision", "--yes"]), "provision").await;
    ok(
        cmd(&["schema", "apply", "--section", "pre-data"]),
        "pre-data",
    )
    .await;
    ok(cmd(&["copy", "--jobs", "2"]), "copy").await;
    // Killed after 100 uploads, then resumed.
    let mut killed = cmd(&["storage", "copy", "--jobs", "4"]);
    killed.env("SUPAMIGRATE_FAILPOINTS", "storage-object-uploaded@100");
    let out = run(killed).await;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    let out = ok(
        cmd(&["storage", "copy", "--jobs", "4", "--json"]),
        "storage copy to moto (resumed)",
    )
    .await;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["copy"]["failed"], serde_json::json!([]), "{r}");
    let (copied, skipped) = (
        r["copy"]["copied"].as_u64().unwrap(),
        r["copy"]["skipped"].as_u64().unwrap(),
    );
    assert!(
        skipped >= 100,
        "finished objects are not uploaded again: {r:#}"
    );
    assert_eq!(copied + skipped, 625, "{r}");
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    let s3 = S3Store::with_keys(&endpoint, "moto", "moto-secret", "us-east-1", "moto").await;
    check_objects(&sb, &admin, &s3, &default_prefix(&r)).await;
    let out = ok(cmd(&["storage", "verify"]), "storage verify on moto").await;
    assert!(
        output_text(&out).contains("every object's bytes are equal on both sides (625)"),
        "{}",
        output_text(&out)
    );
    let out = ok(cmd(&["storage", "copy", "--json"]), "storage copy again").await;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["copy"]["skipped"].as_u64(), Some(625), "{r}");
    // Metadata of the multipart object with `✓` in its key.
    let store =
        Store::S3(S3Store::with_keys(&endpoint, "moto", "moto-secret", "us-east-1", "moto").await);
    let bucket = r["objects"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"].as_str().is_some_and(|k| k.contains('✓')))
        .map(|o| {
            (
                o["dest_bucket"].as_str().unwrap().to_string(),
                o["key"].as_str().unwrap().to_string(),
            )
        })
        .expect("the ✓ object");
    let h = store
        .head(&bucket.0, &bucket.1)
        .await
        .unwrap()
        .expect("there");
    assert_eq!(h.meta.content_type.as_deref(), Some("application/pdf"));
    assert!(h.size > 16 * 1024 * 1024, "a multipart upload");
}
