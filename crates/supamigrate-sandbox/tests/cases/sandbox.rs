//! The sandbox against real clusters: the source looks like Supabase, the target
//! refuses what RDS refuses, the fixture loads with every table filled and every
//! foreign key satisfied, and the generator is deterministic.

use std::collections::BTreeMap;
use std::path::Path;

use md5::{Digest, Md5};
use supamigrate::connect::{connect, ConnInfo};
use supamigrate::verify::{fingerprint, integrity};
use supamigrate_sandbox::fixture::TMS_TABLES;
use supamigrate_sandbox::{self as sandbox, Sandbox};
use tokio_postgres::Client;

async fn one(client: &Client, sql: &str) -> String {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get(0).unwrap_or("NULL").to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

async fn err(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded, expected a refusal"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

/// (what, query as the source superuser, expected first column of first row)
const SOURCE_CATALOG: &[(&str, &str, &str)] = &[
    (
        "postgres is not superuser but CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN",
        "select concat_ws(',', rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin) from pg_roles where rolname = 'postgres'",
        "f,t,t,t,t,t",
    ),
    ("supabase_admin is superuser", "select rolsuper from pg_roles where rolname = 'supabase_admin'", "t"),
    (
        "the Supabase roles exist",
        "select string_agg(rolname, ',' order by rolname) from pg_roles where rolname in ('anon','authenticated','service_role','authenticator','supabase_auth_admin','supabase_storage_admin','dashboard_user')",
        "anon,authenticated,authenticator,dashboard_user,service_role,supabase_auth_admin,supabase_storage_admin",
    ),
    ("anon cannot log in", "select rolcanlogin from pg_roles where rolname = 'anon'", "f"),
    ("service_role bypasses RLS", "select rolbypassrls from pg_roles where rolname = 'service_role'", "t"),
    ("authenticator is a login role", "select rolcanlogin from pg_roles where rolname = 'authenticator'", "t"),
    (
        "postgres is a member of anon, authenticated, service_role",
        "select pg_has_role('postgres', 'anon', 'member') and pg_has_role('postgres', 'authenticated', 'member') and pg_has_role('postgres', 'service_role', 'member')",
        "t",
    ),
    (
        "schemas are owned as on Supabase",
        "select string_agg(nspname || ':' || pg_get_userbyid(nspowner), ',' order by nspname) from pg_namespace where nspname in ('auth','storage','extensions','realtime','graphql_public','supabase_migrations')",
        "auth:supabase_admin,extensions:postgres,graphql_public:supabase_admin,realtime:supabase_admin,storage:supabase_admin,supabase_migrations:postgres",
    ),
    (
        "auth.users has today's 35 columns",
        "select count(*) from pg_attribute where attrelid = 'auth.users'::regclass and attnum > 0 and not attisdropped",
        "35",
    ),
    (
        "auth.users.confirmed_at is generated",
        "select attgenerated from pg_attribute where attrelid = 'auth.users'::regclass and attname = 'confirmed_at'",
        "s",
    ),
    (
        "auth.users.email_change_token_new exists (renamed by GoTrue)",
        "select count(*) from pg_attribute where attrelid = 'auth.users'::regclass and attname = 'email_change_token_new'",
        "1",
    ),
    (
        "auth.identities.email is generated",
        "select attgenerated from pg_attribute where attrelid = 'auth.identities'::regclass and attname = 'email'",
        "s",
    ),
    (
        "GoTrue's 23 auth tables exist",
        "select count(*) from pg_class where relnamespace = 'auth'::regnamespace and relkind = 'r'",
        "23",
    ),
    (
        "the platform's extensions are installed",
        "select string_agg(extname, ',' order by extname) from pg_extension where extname in ('pg_graphql','pg_net','pgjwt','pgsodium','supabase_vault','pg_stat_statements')",
        "pg_graphql,pg_net,pg_stat_statements,pgjwt,pgsodium,supabase_vault",
    ),
    (
        "auth.users has is_anonymous and is_sso_user",
        "select count(*) from pg_attribute where attrelid = 'auth.users'::regclass and attname in ('is_anonymous', 'is_sso_user')",
        "2",
    ),
    (
        "Vault's secrets table exists",
        "select to_regclass('vault.secrets') is not null",
        "t",
    ),
    (
        "Database Webhooks are on",
        "select to_regproc('supabase_functions.http_request') is not null",
        "t",
    ),
    (
        "auth tables are owned by supabase_auth_admin",
        "select string_agg(distinct pg_get_userbyid(relowner), ',') from pg_class where relnamespace = 'auth'::regnamespace and relkind = 'r'",
        "supabase_auth_admin",
    ),
    (
        "refresh_tokens.id is a bigserial",
        "select format_type(atttypid, atttypmod) || ' ' || pg_get_serial_sequence('auth.refresh_tokens', 'id') from pg_attribute where attrelid = 'auth.refresh_tokens'::regclass and attname = 'id'",
        "bigint auth.refresh_tokens_id_seq",
    ),
    (
        "auth.uid() reads request.jwt.claims",
        "select pg_get_functiondef('auth.uid()'::regprocedure) like '%request.jwt.claims%'",
        "t",
    ),
    (
        "auth.role(), auth.email(), auth.jwt() exist",
        "select count(*) from pg_proc where pronamespace = 'auth'::regnamespace and proname in ('uid','role','email','jwt')",
        "4",
    ),
    (
        "RLS is on for auth.users",
        "select relrowsecurity from pg_class where oid = 'auth.users'::regclass",
        "t",
    ),
    (
        "storage.objects.path_tokens is generated",
        "select attgenerated from pg_attribute where attrelid = 'storage.objects'::regclass and attname = 'path_tokens'",
        "s",
    ),
    (
        "the storage delete guards exist",
        "select string_agg(tgname, ',' order by tgname) from pg_trigger where tgname like 'protect_%'",
        "protect_buckets_delete,protect_objects_delete",
    ),
    (
        "storage helper functions work",
        "select storage.foldername('a/b/c.pdf')::text || ' ' || storage.filename('a/b/c.pdf') || ' ' || storage.extension('a/b/c.pdf')",
        "{a,b} c.pdf pdf",
    ),
    (
        "storage tables are owned by supabase_storage_admin",
        "select string_agg(distinct pg_get_userbyid(relowner), ',') from pg_class where relnamespace = 'storage'::regnamespace and relkind = 'r'",
        "supabase_storage_admin",
    ),
    (
        "supabase_realtime is owned by postgres and publishes public.trips",
        "select pg_get_userbyid(pubowner) || ' ' || (select string_agg(schemaname || '.' || tablename, ',') from pg_publication_tables t where t.pubname = p.pubname) from pg_publication p where pubname = 'supabase_realtime'",
        "postgres public.trips",
    ),
    (
        "PostgREST's event triggers exist",
        "select string_agg(evtname || ':' || evtevent, ',' order by evtname) from pg_event_trigger",
        "issue_graphql_placeholder:sql_drop,issue_pg_cron_access:ddl_command_end,issue_pg_graphql_access:ddl_command_end,issue_pg_net_access:ddl_command_end,pgrst_ddl_watch:ddl_command_end,pgrst_drop_watch:sql_drop,pgsodium_trg_mask_update:ddl_command_end",
    ),
    (
        "pgcrypto and uuid-ossp live in schema extensions",
        "select string_agg(extname || ':' || extnamespace::regnamespace::text, ',' order by extname) from pg_extension where extname in ('pgcrypto','uuid-ossp')",
        "pgcrypto:extensions,uuid-ossp:extensions",
    ),
    (
        "the API roles got table grants",
        "select has_table_privilege('anon', 'public.trips', 'SELECT') and has_table_privilege('authenticated', 'public.trips', 'INSERT') and has_table_privilege('service_role', 'public.trips', 'DELETE')",
        "t",
    ),
    (
        "default privileges for postgres grant to the API roles",
        "select count(*) from pg_default_acl where defaclrole = 'postgres'::regrole and defaclnamespace = 'public'::regnamespace",
        "3",
    ),
    ("wal_level is logical", "show wal_level", "logical"),
    (
        "the TMS fixture has the seed's 15 enums",
        "select count(*) from pg_type where typnamespace = 'public'::regnamespace and typtype = 'e'",
        "15",
    ),
    (
        "the TMS fixture has the seed's 27 tables, all with RLS",
        "select count(*) || ',' || count(*) filter (where relrowsecurity) from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'",
        "27,27",
    ),
    (
        "user references point at auth.users",
        "select string_agg(cl.relname || '.' || a.attname, ',' order by cl.relname) from pg_constraint c join pg_class cl on cl.oid = c.conrelid join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1] where c.contype = 'f' and c.confrelid = 'auth.users'::regclass and cl.relnamespace = 'public'::regnamespace",
        "profiles.user_id,trips.closed_by,user_roles.user_id",
    ),
    (
        "handle_new_user fires on auth.users",
        "select string_agg(tgname || ':' || tgfoid::regproc::text, ',') from pg_trigger where tgrelid = 'auth.users'::regclass and not tgisinternal",
        "on_auth_user_created:handle_new_user",
    ),
    (
        "RLS policies use auth.uid() and has_role()",
        "set search_path = ''; select count(*) filter (where qual like '%auth.uid()%') > 3 and count(*) filter (where qual like '%has_role%') > 20 from pg_policies where schemaname = 'public'; reset search_path",
        "t",
    ),
    (
        "storage.objects carries the buckets' policies",
        "select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects'",
        "5",
    ),
    (
        "the two buckets exist, one public",
        "select string_agg(id || ':' || public, ',' order by id) from storage.buckets",
        "driver-documents:false,pod-documents:true",
    ),
];

#[tokio::test]
async fn source_looks_like_supabase_and_target_like_rds() {
    if !supamigrate_sandbox::platform::require(
        "sandbox::source_looks_like_supabase_and_target_like_rds",
    ) {
        return;
    }
    let sb = Sandbox::ephemeral(1).await.expect("sandbox starts");
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    let mut failures = Vec::new();
    for (what, sql, want) in SOURCE_CATALOG {
        let got = one(&admin, sql).await;
        if got != *want {
            failures.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "source catalog:\n{}",
        failures.join("\n")
    );

    // SUPABASE_DB_URL logs in as postgres, which reads auth and may not
    // delete Storage's rows directly.
    let pg = connect(&sb.source_url()).await.unwrap();
    assert_eq!(one(&pg, "select current_user").await, "postgres");
    assert_eq!(one(&pg, "select count(*) > 0 from auth.users").await, "t");
    assert!(err(&pg, "delete from storage.objects")
        .await
        .contains("Direct deletion from storage tables is not allowed"));

    // auth.uid() and friends answer from request.jwt.claims, as behind PostgREST.
    pg.batch_execute(
        "select set_config('request.jwt.claims', '{\"sub\":\"6f1b0c3e-0000-4000-8000-000000000001\",\"role\":\"authenticated\",\"email\":\"a@b.c\"}', false)",
    )
    .await
    .unwrap();
    assert_eq!(
        one(&pg, "select auth.uid()::text || ' ' || auth.role() || ' ' || auth.email() || ' ' || (auth.jwt() ->> 'email')").await,
        "6f1b0c3e-0000-4000-8000-000000000001 authenticated a@b.c a@b.c"
    );

    // The target: tms_production is not there yet; the master is not superuser.
    let rdsadmin = connect(&sb.target_superuser("postgres")).await.unwrap();
    assert_eq!(
        one(
            &rdsadmin,
            "select count(*) from pg_database where datname = 'tms_production'"
        )
        .await,
        "0"
    );
    let master_info = sb.target_url().with_dbname("postgres");
    let master = connect(&master_info).await.unwrap();
    assert_eq!(
        one(&master, "select current_user || ' ' || rolsuper || ' ' || rolcreatedb || ' ' || rolcreaterole from pg_roles where rolname = current_user").await,
        "postgres false true true"
    );
    assert_eq!(
        one(
            &master,
            "select pg_has_role('postgres', 'rds_superuser', 'member')"
        )
        .await,
        "t"
    );
    assert_eq!(
        one(
            &master,
            "select count(*) from pg_roles where rolname = 'rds_replication'"
        )
        .await,
        "1"
    );
    assert!(err(&master, "create role sneaky superuser")
        .await
        .contains("superuser"));
    assert!(err(&master, "alter system set work_mem = '1GB'")
        .await
        .contains("permission denied"));
    master
        .batch_execute("create database scratch")
        .await
        .unwrap();
    let scratch = connect(&master_info.with_dbname("scratch")).await.unwrap();
    scratch
        .batch_execute("create table parent (id int primary key); create table child (id int references parent)")
        .await
        .unwrap();
    let refusal = err(&scratch, "alter table child disable trigger all").await;
    assert!(refusal.contains("is a system trigger"), "{refusal}");
    // What RDS allows its master: session_replication_role, user triggers, extensions.
    scratch
        .batch_execute("set session_replication_role = replica; reset session_replication_role")
        .await
        .unwrap();
    scratch
        .batch_execute("alter table child disable trigger user")
        .await
        .unwrap();
    scratch
        .batch_execute("create extension pgcrypto")
        .await
        .unwrap();
    drop(scratch);
    master.batch_execute("drop database scratch").await.unwrap();

    // The fixture: every table filled, every foreign key satisfied.
    for t in TMS_TABLES {
        let n: i64 = one(&admin, &format!("select count(*) from public.{t}"))
            .await
            .parse()
            .unwrap();
        assert!(n > 0, "public.{t} is empty");
    }
    for t in [
        "auth.users",
        "auth.identities",
        "auth.sessions",
        "auth.refresh_tokens",
        "auth.mfa_factors",
        "storage.objects",
    ] {
        let n: i64 = one(&admin, &format!("select count(*) from {t}"))
            .await
            .parse()
            .unwrap();
        assert!(n > 0, "{t} is empty");
    }
    let orphans = integrity::foreign_key_orphans(&admin, &["public", "auth", "storage"])
        .await
        .unwrap();
    assert!(
        orphans.len() >= 40,
        "only {} foreign keys found",
        orphans.len()
    );
    let bad: Vec<_> = orphans
        .iter()
        .filter(|o| o.rows > 0)
        .map(|o| {
            format!(
                "{} on {}: {}",
                o.foreign_key.name, o.foreign_key.table, o.rows
            )
        })
        .collect();
    assert!(bad.is_empty(), "orphans: {bad:?}");
    // The trips ↔ driver_consents cycle is populated both ways.
    assert_eq!(
        one(&admin, "select count(*) > 0 from trips t join driver_consents c on c.id = t.sim_consent_id and c.trip_id = t.id").await,
        "t"
    );
    // One profile per user, as handle_new_user would have made.
    assert_eq!(
        one(
            &admin,
            "select (select count(*) from profiles) = (select count(*) from auth.users)"
        )
        .await,
        "t"
    );

    check_edge_cases(&admin).await;
    check_storage(&sb, &admin).await;
}

async fn check_edge_cases(c: &Client) {
    let checks = [
        ("bcrypt $2a$ hashes", "select count(*) > 0 from auth.users where encrypted_password like '$2a$10$%' and length(encrypted_password) = 60"),
        ("other hash formats", "select count(distinct left(encrypted_password, 4)) >= 5 from auth.users where encrypted_password <> ''"),
        ("OAuth users without password", "select count(*) > 0 from auth.users u join auth.identities i on i.user_id = u.id where i.provider in ('google','github') and coalesce(u.encrypted_password, '') = ''"),
        ("NULLs in nullable columns", "select count(*) filter (where company_name is null) > 0 and count(*) filter (where gst_number is null) > 0 from customers"),
        ("quotes and unicode in text", "select count(*) filter (where display_name like '%\"%') > 0 and count(*) filter (where display_name like '%''%') > 0 and count(*) filter (where display_name ~ '[^\\x01-\\x7e]') > 0 from customers"),
        ("newlines, tabs and backslashes in text", "select count(*) filter (where notes like '%' || chr(10) || '%') > 0 and count(*) filter (where notes like '%' || chr(9) || '%') > 0 and count(*) filter (where notes like '%\\\\%') > 0 from shipments"),
        ("nested jsonb", "select count(*) > 0 from location_history where raw_response #> '{payload,meta,cell}' ? 'mcc'"),
        ("numeric precision", "select count(*) > 0 from materials where scale(volume_cbm) >= 18"),
        ("timestamps from several zones with microseconds", "select count(distinct extract(microseconds from actual_start_time)::bigint % 1000000) > 10 from trips"),
        ("Storage URLs and bare paths", "select count(*) filter (where file_path like 'https://%/storage/v1/object/%') > 0 and count(*) filter (where file_path not like 'https://%') > 0 from driver_documents"),
    ];
    for (what, sql) in checks {
        assert_eq!(one(c, sql).await, "t", "{what}");
    }
}

async fn check_storage(sb: &Sandbox, c: &Client) {
    let rows = c
        .query(
            "select bucket_id, name, metadata from storage.objects order by bucket_id, name",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 300, "hundreds of objects, got {}", rows.len());
    let (mut over_8, mut over_64, mut placeholder, mut unicode_spaces, mut deep) = (0, 0, 0, 0, 0);
    for r in &rows {
        let bucket: String = r.get(0);
        let name: String = r.get(1);
        let meta: serde_json::Value = r.get(2);
        let path = sb.storage_dir().join(&bucket).join(&name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes.len() as u64, meta["size"].as_u64().unwrap(), "{name}");
        let etag = format!("\"{}\"", hex::encode(Md5::digest(&bytes)));
        assert_eq!(meta["eTag"].as_str().unwrap(), etag, "{name}");
        assert!(
            meta["mimetype"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        over_8 += (bytes.len() > 8 << 20) as u32;
        over_64 += (bytes.len() > 64 << 20) as u32;
        placeholder += name.ends_with(".emptyFolderPlaceholder") as u32;
        unicode_spaces += (name.contains(' ') && !name.is_ascii()) as u32;
        deep += (name.matches('/').count() >= 2) as u32;
    }
    assert!(over_8 >= 3 && over_64 >= 1 && placeholder == 1 && unicode_spaces > 10 && deep > 10);

    // Every document reference, URL or bare path, names an existing object.
    let refs = c
        .query(
            "select file_path from driver_documents union all select pod_file_path from shipments where pod_file_path is not null",
            &[],
        )
        .await
        .unwrap();
    for r in refs {
        let reference: String = r.get(0);
        let (bucket, name) = object_of(&reference);
        assert!(
            sb.storage_dir().join(&bucket).join(&name).is_file(),
            "{reference} → {bucket}/{name}"
        );
    }
}

/// (bucket, object name) a TMS reference points at.
fn object_of(reference: &str) -> (String, String) {
    if let Some((_, rest)) = reference.split_once("/storage/v1/object/") {
        let rest = rest.split('?').next().unwrap();
        let (_access, rest) = rest.split_once('/').unwrap();
        let (bucket, path) = rest.split_once('/').unwrap();
        let name = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .unwrap()
            .into_owned();
        (bucket.to_string(), name)
    } else if reference.contains("/SHP-") {
        ("pod-documents".into(), reference.to_string())
    } else {
        ("driver-documents".into(), reference.to_string())
    }
}

async fn fingerprints(info: &ConnInfo) -> BTreeMap<String, (i64, String)> {
    let c = connect(info).await.unwrap();
    fingerprint::schemas(&c, &["public", "auth", "storage", "supabase_migrations"])
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.table.to_string(), (f.rows, f.digest)))
        .collect()
}

fn tree_digest(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Md5::new();
    for f in files {
        h.update(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    hex::encode(h.finalize())
}

#[tokio::test]
async fn generator_is_deterministic() {
    // Three sources, each a fresh copy of the platform: two with the same seed.
    let (a, b, c) = tokio::join!(
        Sandbox::ephemeral_seeded(1, sandbox::DEFAULT_SEED),
        Sandbox::ephemeral_seeded(1, sandbox::DEFAULT_SEED),
        Sandbox::ephemeral_seeded(1, sandbox::DEFAULT_SEED + 1),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let original = fingerprints(&a.source_superuser("postgres")).await;
    let again = fingerprints(&b.source_superuser("postgres")).await;
    assert!(original.len() >= 35, "{} tables", original.len());
    assert_eq!(original, again, "same seed and scale, same content");
    assert_eq!(
        tree_digest(&a.storage_dir()),
        tree_digest(&b.storage_dir()),
        "same storage files"
    );

    let different = fingerprints(&c.source_superuser("postgres")).await;
    assert_ne!(
        original["public.trips"], different["public.trips"],
        "another seed, other content"
    );
    assert_eq!(
        original["public.trips"].0, different["public.trips"].0,
        "but the same row counts"
    );
}
