//! `supamigrate rds` against a local AWS API (moto's server, with the
//! engine versions and the request record it lacks): the calls it makes and
//! their parameters, reuse and refusal of an existing instance, the two
//! password modes, the parameter group's phases, delete, and AWS refusals
//! turned into exit 2 with the flag to change.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use supamigrate_sandbox::aws::{Failure, LocalAws, OfferedVersion, Request, StandIn};
use supamigrate_sandbox::Sandbox;

use crate::common::{output_text, run};

fn versions() -> Vec<OfferedVersion> {
    let mut deprecated = OfferedVersion::available("18.2");
    deprecated.status = "deprecated".into();
    ["16.9", "17.4", "17.6", "18.1"]
        .into_iter()
        .map(OfferedVersion::available)
        .chain([deprecated])
        .collect()
}

/// `supamigrate -q rds ARGS` against `aws`, state and cwd in `work`, no terminal.
fn rds(aws: &LocalAws, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    for var in [
        "SUPABASE_DB_URL",
        "RDS_URL",
        "RDS_HOST",
        "RUST_LOG",
        "AWS_PROFILE",
    ] {
        c.env_remove(var);
    }
    c.envs(aws.env())
        .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.join("no-aws-credentials"),
        )
        .current_dir(work)
        .stdin(Stdio::null())
        .arg("-q")
        .arg("rds")
        .args(args);
    c
}

fn actions(reqs: &[Request]) -> Vec<&str> {
    reqs.iter().map(|r| r["Action"].as_str()).collect()
}

/// The changing calls (everything but Describe*) among `reqs`.
fn writes(reqs: &[Request]) -> Vec<&str> {
    actions(reqs)
        .into_iter()
        .filter(|a| !a.starts_with("Describe"))
        .collect()
}

/// The form parameters of a `ModifyDBParameterGroup`, as name → value.
fn group_values(r: &Request) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let name = r.get(&format!("Parameters.Parameter.{i}.ParameterName"))?;
            let value = r.get(&format!("Parameters.Parameter.{i}.ParameterValue"))?;
            Some((name.clone(), value.clone()))
        })
        .collect()
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        output_text(out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_reuse_refuse_settings_and_delete() {
    let aws = LocalAws::start(&versions()).expect("local AWS API starts");
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // plan: sized from the source, newest creatable version, changes nothing.
    let mut plan = rds(&aws, w, &["plan", "--instance-id", "app-db", "--json"]);
    plan.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password());
    let out = run(plan).await;
    assert_exit(&out, 0, "rds plan");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = |subject: &str| {
        shown["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["subject"] == subject)
            .unwrap_or_else(|| panic!("a decision on {subject}: {shown}"))
            .clone()
    };
    assert!(decision("engine version")["choice"]
        .as_str()
        .unwrap()
        .contains("18.1"));
    let storage = decision("storage");
    assert!(
        storage["why"]
            .as_str()
            .unwrap()
            .contains("the source database is"),
        "{storage}"
    );
    assert!(
        storage["choice"].as_str().unwrap().starts_with("20 GiB"),
        "{storage}"
    );
    assert!(
        writes(&aws.requests().unwrap()).is_empty(),
        "plan changed nothing"
    );

    // Without a terminal or --yes: refused, nothing made.
    let out = run(rds(&aws, w, &["create", "--instance-id", "app-db"])).await;
    assert_exit(&out, 2, "create without --yes");
    assert!(
        writes(&aws.requests().unwrap()).is_empty(),
        "nothing made without --yes"
    );

    let create = [
        "create",
        "--instance-id",
        "app-db",
        "--yes",
        "--poll-seconds",
        "1",
    ];
    let sized = |args: &[&str]| {
        let mut c = rds(&aws, w, args);
        c.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password());
        c
    };
    let out = run(sized(&create)).await;
    assert_exit(&out, 0, "rds create");
    let reqs = aws.requests().unwrap();
    assert_eq!(
        writes(&reqs),
        [
            "CreateDBParameterGroup",
            "ModifyDBParameterGroup",
            "CreateDBInstance"
        ]
    );
    let group = reqs
        .iter()
        .find(|r| r["Action"] == "CreateDBParameterGroup")
        .unwrap();
    assert_eq!(group["DBParameterGroupFamily"], "postgres18");
    let modify = reqs
        .iter()
        .find(|r| r["Action"] == "ModifyDBParameterGroup")
        .unwrap();
    let values = group_values(modify);
    assert!(
        values.contains(&("rds.force_ssl".into(), "1".into())),
        "{values:?}"
    );
    assert!(
        values.iter().any(|(n, _)| n == "maintenance_work_mem"),
        "{values:?}"
    );
    let inst = reqs
        .iter()
        .find(|r| r["Action"] == "CreateDBInstance")
        .unwrap();
    for (param, value) in [
        ("EngineVersion", "18.1"),
        (
            "EngineLifecycleSupport",
            "open-source-rds-extended-support-disabled",
        ),
        ("StorageEncrypted", "true"),
        ("PubliclyAccessible", "false"),
        ("DeletionProtection", "true"),
        ("MultiAZ", "true"),
        ("ManageMasterUserPassword", "true"),
        ("DBParameterGroupName", "supamigrate-app-db"),
        ("AllocatedStorage", "20"),
        ("StorageType", "gp3"),
    ] {
        assert_eq!(
            inst.get(param).map(String::as_str),
            Some(value),
            "{param}: {inst:?}"
        );
    }
    assert!(
        !inst.contains_key("MasterUserPassword"),
        "RDS manages the password"
    );

    let env_file = w.join(".supamigrate/rds/app-db.env");
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let env = std::fs::read_to_string(&env_file).unwrap();
    for line in [
        "RDS_HOST=app-db.",
        "RDS_PORT=5432",
        "RDS_USER=postgres",
        "RDS_SSLMODE=verify-full",
    ] {
        assert!(env.contains(line), "{line} in {env}");
    }
    // The file sources in a shell.
    let sourced = Command::new("sh")
        .arg("-c")
        .arg("set -a; . \"$1\"; set +a; echo \"$RDS_HOST:$RDS_SSLMODE\"")
        .arg("sh")
        .arg(&env_file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sourced.stdout).contains(":verify-full"));

    // Again: reused, no second instance.
    let out = run(sized(&create)).await;
    assert_exit(&out, 0, "rds create again");
    assert!(
        output_text(&out).contains("exists: reused"),
        "{}",
        output_text(&out)
    );
    let n = aws.requests().unwrap().len();
    let creates = |r: &[Request]| {
        actions(r)
            .iter()
            .filter(|a| **a == "CreateDBInstance")
            .count()
    };
    assert_eq!(creates(&aws.requests().unwrap()), 1);

    // Asked differently: refused with what differs, nothing called but Describe*.
    let mut other = create.to_vec();
    other.extend(["--class", "db.r6g.large", "--single-az"]);
    let out = run(sized(&other)).await;
    assert_exit(&out, 2, "create with another class");
    let text = output_text(&out);
    assert!(
        text.contains("class: it has db.t3.medium, asked db.r6g.large"),
        "{text}"
    );
    assert!(
        text.contains("Multi-AZ: it has true, asked false"),
        "{text}"
    );
    assert!(writes(&aws.requests().unwrap()[n..]).is_empty());

    settings_phases(&aws, w).await;
    delete(&aws, w).await;
}

/// `settings --for production` resets the bulk-load parameters, `--for load` sets them again.
async fn settings_phases(aws: &LocalAws, w: &Path) {
    let prod = ["settings", "--instance-id", "app-db", "--for", "production"];
    assert_exit(&run(rds(aws, w, &prod)).await, 0, "settings production");
    let reqs = aws.requests().unwrap();
    let reset = reqs
        .iter()
        .rfind(|r| r["Action"] == "ResetDBParameterGroup")
        .unwrap();
    let names: Vec<&str> = (1..)
        .map_while(|i| reset.get(&format!("Parameters.Parameter.{i}.ParameterName")))
        .map(String::as_str)
        .collect();
    assert!(
        names.contains(&"autovacuum") && !names.contains(&"rds.force_ssl"),
        "{names:?}"
    );
    let out = run(rds(
        aws,
        w,
        &["status", "--instance-id", "app-db", "--json"],
    ))
    .await;
    assert_exit(&out, 0, "status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["instance"]["status"], "available");
    assert_eq!(status["phase"], "production", "{status}");

    let load = ["settings", "--instance-id", "app-db", "--for", "load"];
    assert_exit(&run(rds(aws, w, &load)).await, 0, "settings load");
    let out = run(rds(
        aws,
        w,
        &["status", "--instance-id", "app-db", "--json"],
    ))
    .await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["phase"], "load", "{status}");
}

/// delete asks, unprotects, snapshots, waits, and removes the parameter group.
async fn delete(aws: &LocalAws, w: &Path) {
    let n = aws.requests().unwrap().len();
    let out = run(rds(
        aws,
        w,
        &["delete", "--instance-id", "app-db", "--poll-seconds", "1"],
    ))
    .await;
    assert_exit(&out, 2, "delete without --yes");
    assert!(writes(&aws.requests().unwrap()[n..]).is_empty());

    let del = [
        "delete",
        "--instance-id",
        "app-db",
        "--poll-seconds",
        "1",
        "--yes",
    ];
    let out = run(rds(aws, w, &del)).await;
    assert_exit(&out, 0, "delete");
    let reqs = aws.requests().unwrap();
    assert_eq!(
        writes(&reqs[n..]),
        [
            "ModifyDBInstance",
            "DeleteDBInstance",
            "DeleteDBParameterGroup"
        ]
    );
    let d = reqs
        .iter()
        .find(|r| r["Action"] == "DeleteDBInstance")
        .unwrap();
    let snap = d
        .get("FinalDBSnapshotIdentifier")
        .expect("a final snapshot");
    assert!(snap.starts_with("app-db-final-"), "{snap}");
    assert!(output_text(&out).contains(snap.as_str()));
    let out = run(rds(aws, w, &["status", "--instance-id", "app-db"])).await;
    assert!(
        output_text(&out).contains("there is no instance app-db"),
        "{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_file_mode_and_aws_refusals() {
    let aws = LocalAws::start(&versions()).expect("local AWS API starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    let args = [
        "create",
        "--instance-id",
        "pw-db",
        "--password-file",
        "master.pw",
        "--single-az",
        "--no-deletion-protection",
        "--yes",
        "--poll-seconds",
        "1",
    ];
    let out = run(rds(&aws, w, &args)).await;
    assert_exit(&out, 0, "create with --password-file");
    let pw = std::fs::read_to_string(w.join("master.pw")).unwrap();
    let pw = pw.trim();
    assert_eq!(pw.len(), 32, "a generated password");
    let mode = std::fs::metadata(w.join("master.pw"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !output_text(&out).contains(pw),
        "the password is never printed"
    );
    let reqs = aws.requests().unwrap();
    let inst = reqs
        .iter()
        .find(|r| r["Action"] == "CreateDBInstance")
        .unwrap();
    assert_eq!(inst.get("MasterUserPassword").map(String::as_str), Some(pw));
    assert!(!inst.contains_key("ManageMasterUserPassword"));
    assert_eq!(inst["MultiAZ"], "false");
    assert_eq!(inst["DeletionProtection"], "false");
    let env = std::fs::read_to_string(w.join(".supamigrate/rds/pw-db.env")).unwrap();
    assert!(env.contains(&format!("RDS_PASSWORD={pw}")));
    // The plan of the same instance never shows it either.
    let out = run(rds(
        &aws,
        w,
        &[
            "plan",
            "--instance-id",
            "pw-db",
            "--password-file",
            "master.pw",
            "--single-az",
            "--no-deletion-protection",
        ],
    ))
    .await;
    assert_exit(&out, 0, "plan");
    assert!(!output_text(&out).contains(pw));

    refusals(&aws, w).await;
}

fn fail(action: &str, code: &str, message: &str, status: u16) -> Failure {
    Failure {
        action: action.into(),
        code: code.into(),
        message: message.into(),
        status,
    }
}

/// (what AWS answers, the command's extra arguments, words the error must hold)
async fn refusals(aws: &LocalAws, w: &Path) {
    let cases: [(Failure, &[&str], &[&str]); 3] = [
        (
            fail("CreateDBInstance", "InstanceQuotaExceeded", "DB Instance quota exceeded", 400),
            &[],
            &["InstanceQuotaExceeded", "Service Quotas", "supamigrate-q-db"],
        ),
        (
            fail("CreateDBInstance", "InvalidParameterValue", "Invalid DB Instance class: db.x9.huge", 400),
            &["--class", "db.x9.huge"],
            &["db.x9.huge", "--class"],
        ),
        (
            fail(
                "DescribeDBEngineVersions",
                "AccessDenied",
                "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: rds:DescribeDBEngineVersions",
                403,
            ),
            &[],
            &["IAM permission rds:DescribeDBEngineVersions"],
        ),
    ];
    for (failure, extra, words) in cases {
        aws.fail(&failure).unwrap();
        let code = failure.code.as_str();
        let mut args = vec![
            "create",
            "--instance-id",
            "q-db",
            "--yes",
            "--poll-seconds",
            "1",
        ];
        args.extend(extra);
        let out = run(rds(aws, w, &args)).await;
        assert_exit(&out, 2, code);
        let text = output_text(&out);
        for word in words {
            assert!(text.contains(word), "{code}: {word} in {text}");
        }
        assert_eq!(text.matches("error:").count(), 1, "said once: {text}");
    }

    // Refused before any call: bad options, versions not offered, no region.
    let n = aws.requests().unwrap().len();
    let bad: [(&[&str], &str); 4] = [
        (&["--storage-gib", "5"], "--storage-gib"),
        (&["--engine-version", "19"], "PostgreSQL 19"),
        (&["--engine-version", "18.2"], "can no longer be created"),
        (
            &["--backup-retention-days", "40"],
            "--backup-retention-days",
        ),
    ];
    for (extra, word) in bad {
        let mut args = vec!["create", "--instance-id", "bad-db", "--yes"];
        args.extend(extra);
        let out = run(rds(aws, w, &args)).await;
        assert_exit(&out, 2, &format!("{extra:?}"));
        assert!(
            output_text(&out).contains(word),
            "{word}: {}",
            output_text(&out)
        );
    }
    let mut no_region = rds(aws, w, &["plan", "--instance-id", "bad-db"]);
    no_region
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION");
    let out = run(no_region).await;
    assert_exit(&out, 2, "no region");
    assert!(
        output_text(&out).contains("AWS_REGION"),
        "{}",
        output_text(&out)
    );
    let out = run(rds(aws, w, &["create", "--instance-id", "Bad_Id", "--yes"])).await;
    assert_exit(&out, 2, "bad identifier");
    assert!(
        writes(&aws.requests().unwrap()[n..]).is_empty(),
        "nothing made by refused commands"
    );
}

/// `run --create-instance`: the instance planned, confirmed and made, the
/// migration into it with verify-full against the instance's CA and the
/// managed password read from Secrets Manager, then the parameter group in
/// the production phase. A sandbox target with TLS stands in for the instance.
#[tokio::test(flavor = "multi_thread")]
async fn run_creating_the_instance_migrates_into_it() {
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let ca = sb.target_tls().expect("the target gets TLS");
    let target = sb.target_url();
    let stand_in = StandIn {
        endpoint: Some(("127.0.0.1".into(), target.port)),
        master_password: target.password.clone(),
    };
    let offered: Vec<OfferedVersion> = ["15.8", "15.10"]
        .into_iter()
        .map(OfferedVersion::available)
        .collect();
    let aws = LocalAws::start_with(&offered, &stand_in).expect("local AWS API starts");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut args: Vec<String> = [
        "run",
        "--create-instance",
        "app-db",
        "--master-user",
        &target.user,
        "--database",
        &target.dbname,
        "--ca-bundle",
        ca.to_str().unwrap(),
        "--poll-seconds",
        "1",
        "--jobs",
        "2",
        "--yes",
        "--source-dir",
        sb.storage_dir().to_str().unwrap(),
        "--dest-dir",
        w.join("s3").to_str().unwrap(),
        "--bucket-prefix",
        supamigrate_sandbox::fixture::BUCKET_PREFIX,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for r in supamigrate_sandbox::fixture::REFERENCES {
        args.extend(["--reference".to_string(), r.to_string()]);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    for var in [
        "RDS_URL",
        "RDS_HOST",
        "RUST_LOG",
        "AWS_PROFILE",
        "SUPAMIGRATE_FAILPOINTS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(aws.env())
        .env("AWS_CONFIG_FILE", w.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", w.join("no-aws-credentials"))
        .env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("SUPABASE_PROJECT_REF", "sbxtmsprojectref0001")
        .env("APP_DB_USER", "tms_app")
        .current_dir(w)
        .stdin(Stdio::null())
        .arg("-q")
        .args(&args);
    let out = run(cmd).await;
    let text = output_text(&out);
    assert_exit(&out, 0, "run --create-instance");
    assert!(text.contains("migration complete"), "{text}");
    let pw = target.password.as_ref().unwrap().expose();
    assert!(!text.contains(pw), "the master password is never printed");

    let reqs = aws.requests().unwrap();
    let made = writes(&reqs);
    assert_eq!(
        made,
        [
            "CreateDBParameterGroup",
            "ModifyDBParameterGroup",
            "CreateDBInstance",
            "ResetDBParameterGroup"
        ],
        "the instance made, the bulk-load settings reset once the run was done"
    );
    let inst = reqs
        .iter()
        .find(|r| r["Action"] == "CreateDBInstance")
        .unwrap();
    assert_eq!(inst["EngineVersion"], "15.10");
    assert_eq!(inst["ManageMasterUserPassword"], "true");
    assert!(text.contains("for production"), "{text}");
    // The migration went into the stand-in, over TLS checked against its CA.
    let env = std::fs::read_to_string(w.join(".supamigrate/rds/app-db.env")).unwrap();
    assert!(env.contains("RDS_SSLMODE=verify-full"), "{env}");
    let client = supamigrate::connect::connect(&sb.target_superuser(&target.dbname))
        .await
        .unwrap();
    let users: i64 = client
        .query_one("select count(*) from public.app_users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(users > 0, "users were migrated into the instance");
    // The stand-in refuses connections without TLS, as force_ssl does: the
    // run went over TLS, checked against the CA bundle.
    let mut plain = sb.target_superuser(&target.dbname);
    plain.sslmode = supamigrate::connect::SslMode::Disable;
    assert!(supamigrate::connect::connect(&plain).await.is_err());

    // Refused before anything is made: a target configured too, a missing CA bundle.
    let n = aws.requests().unwrap().len();
    let mut both = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    both.envs(aws.env())
        .env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", target.to_url_with_password())
        .current_dir(w)
        .stdin(Stdio::null())
        .args(["-q", "run", "--create-instance", "other-db", "--yes"]);
    let out = run(both).await;
    assert_exit(&out, 2, "a target and --create-instance");
    assert!(output_text(&out).contains("a target is configured as well"));
    let mut no_ca = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    no_ca
        .envs(aws.env())
        .env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env_remove("RDS_URL")
        .env_remove("RDS_HOST")
        .current_dir(w)
        .stdin(Stdio::null())
        .args(["-q", "run", "--create-instance", "other-db", "--yes"]);
    let out = run(no_ca).await;
    assert_exit(&out, 2, "no CA bundle");
    assert!(output_text(&out).contains("global-bundle.pem"));
    let mut stray = Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    stray
        .current_dir(w)
        .args(["-q", "run", "--single-az", "--yes"]);
    let out = run(stray).await;
    assert_exit(&out, 2, "an instance option without --create-instance");
    assert!(output_text(&out).contains("--single-az"));
    assert!(writes(&aws.requests().unwrap()[n..]).is_empty());
}
