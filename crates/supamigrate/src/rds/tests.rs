use super::*;

fn offered() -> Vec<EngineVersion> {
    [
        ("15.15", "available"),
        ("17.6", "available"),
        ("18.1", "available"),
    ]
    .iter()
    .map(|(v, s)| EngineVersion {
        version: v.to_string(),
        family: format!("postgres{}", v.split('.').next().unwrap()),
        status: s.to_string(),
    })
    .collect()
}

fn facts() -> RdsFacts {
    RdsFacts {
        versions: offered(),
        source: Some(SourceFacts {
            major: 15,
            database_bytes: 3 << 30,
        }),
        ..RdsFacts::default()
    }
}

fn create_spec(p: &RdsPlan) -> &InstanceSpec {
    p.calls
        .iter()
        .find_map(|c| match c {
            Call::CreateDBInstance(s) => Some(&**s),
            _ => None,
        })
        .expect("a CreateDBInstance call")
}

#[test]
fn a_new_instance_gets_the_safe_defaults() {
    let p = plan(&InstanceRequest::new("app-prod"), &facts()).unwrap();
    let actions: Vec<&str> = p.calls.iter().map(Call::action).collect();
    assert_eq!(
        actions,
        [
            "CreateDBParameterGroup",
            "ModifyDBParameterGroup",
            "CreateDBInstance",
            "DescribeDBInstances (until available)"
        ]
    );
    let s = create_spec(&p);
    assert_eq!(s.engine_version, "18.1");
    assert_eq!(s.lifecycle, EXTENDED_SUPPORT_DISABLED);
    assert!(!s.publicly_accessible && s.deletion_protection && s.multi_az);
    assert_eq!(s.password, PasswordMode::Managed);
    // 3 GiB: 2 × 3 + 4 = 10, but at least 20.
    assert_eq!(s.storage_gib, 20);
    assert_eq!(s.database, None);
    assert_eq!(s.parameter_group, "supamigrate-app-prod");
    let Call::ModifyDBParameterGroup { settings, .. } = &p.calls[1] else {
        panic!("{:?}", p.calls[1]);
    };
    let names: Vec<&str> = settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rds.force_ssl",
            "maintenance_work_mem",
            "max_wal_size",
            "checkpoint_timeout",
            "autovacuum"
        ]
    );
    let shown: Vec<(String, String)> = p.calls.iter().flat_map(Call::params).collect();
    assert!(shown.contains(&("StorageEncrypted".into(), "true".into())));
    assert!(p
        .decisions
        .iter()
        .any(|d| d.subject == "engine version" && d.choice == "PostgreSQL 18.1"));
}

#[test]
fn storage_follows_the_source() {
    // (source GiB, asked, GiB planned)
    for (src, asked, want) in [
        (3u64, None, 20u32),
        (40, None, 90),
        (0, None, 20),
        (40, Some(500), 500),
    ] {
        let mut f = facts();
        f.source = Some(SourceFacts {
            major: 15,
            database_bytes: src << 30,
        });
        let mut r = InstanceRequest::new("a");
        r.storage_gib = asked;
        assert_eq!(
            create_spec(&plan(&r, &f).unwrap()).storage_gib,
            want,
            "{src} {asked:?}"
        );
    }
    let mut f = facts();
    f.source = None;
    assert_eq!(
        create_spec(&plan(&InstanceRequest::new("a"), &f).unwrap()).storage_gib,
        100
    );
    let mut r = InstanceRequest::new("a");
    r.storage_gib = Some(10);
    assert!(plan(&r, &facts())
        .unwrap_err()
        .to_string()
        .contains("--storage-gib 10"));
}

#[test]
fn identifiers_are_checked() {
    for bad in ["", "1abc", "a--b", "a-", "a_b", &"a".repeat(64)] {
        let e = plan(&InstanceRequest::new(bad), &facts()).unwrap_err();
        assert!(e.is_bad_input(), "{bad}");
    }
    assert!(plan(&InstanceRequest::new("a-1-b"), &facts()).is_ok());
}

fn existing(p: &RdsPlan) -> InstanceFacts {
    let s = create_spec(p);
    InstanceFacts {
        id: s.id.clone(),
        status: "available".into(),
        class: s.class.clone(),
        engine_version: s.engine_version.clone(),
        storage_gib: s.storage_gib,
        storage_type: "gp3".into(),
        multi_az: s.multi_az,
        encrypted: true,
        public: false,
        backup_retention_days: s.backup_retention_days,
        deletion_protection: true,
        parameter_group: Some(s.parameter_group.clone()),
        master_user: s.master_user.clone(),
        ..InstanceFacts::default()
    }
}

#[test]
fn an_instance_that_matches_is_reused_one_that_differs_refused() {
    let req = InstanceRequest::new("app");
    let first = plan(&req, &facts()).unwrap();
    let mut f = facts();
    f.instance = Some(existing(&first));
    f.parameter_group_family = Some("postgres18".into());
    let again = plan(&req, &f).unwrap();
    assert!(again.reuse);
    let actions: Vec<&str> = again.calls.iter().map(Call::action).collect();
    assert_eq!(
        actions,
        [
            "ModifyDBParameterGroup",
            "DescribeDBInstances (until available)"
        ]
    );

    // (what differs, words the refusal must hold)
    type Change = Box<dyn Fn(&mut InstanceFacts)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|i| i.class = "db.t3.micro".into()),
            "class: it has db.t3.micro, asked db.t3.medium",
        ),
        (
            Box::new(|i| i.engine_version = "17.6".into()),
            "engine major: it has 17, asked 18",
        ),
        (
            Box::new(|i| i.public = true),
            "public access: it has true, asked false",
        ),
        (Box::new(|i| i.encrypted = false), "storage encryption"),
        (
            Box::new(|i| i.storage_gib = 10),
            "storage (GiB, at least): it has 10, asked 20",
        ),
    ];
    for (change, words) in cases {
        let mut i = existing(&first);
        change(&mut i);
        f.instance = Some(i);
        let e = plan(&req, &f).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains(words),
            "{words}: {e}"
        );
    }
    // More storage than asked is fine.
    let mut i = existing(&first);
    i.storage_gib = 200;
    f.instance = Some(i);
    assert!(plan(&req, &f).unwrap().reuse);
}

#[test]
fn a_parameter_group_of_another_family_is_refused() {
    let mut f = facts();
    f.parameter_group_family = Some("postgres15".into());
    let e = plan(&InstanceRequest::new("app"), &f).unwrap_err();
    assert!(e.to_string().contains("exists for postgres15"), "{e}");
}

#[test]
fn passwords_are_never_in_the_shown_calls() {
    let mut r = InstanceRequest::new("app");
    r.password = PasswordMode::File("/secrets/pw".into());
    let p = plan(&r, &facts()).unwrap();
    let shown: Vec<(String, String)> = p.calls.iter().flat_map(Call::params).collect();
    assert!(shown.contains(&(
        "MasterUserPassword".into(),
        "(generated, in /secrets/pw only)".into()
    )));
}
