//! A kept extension's configuration: the rows the project added to
//! PostGIS's `spatial_ref_sys` (a custom SRID), which `CREATE EXTENSION` on
//! the target does not make. The copy carries them before the data; where
//! the target user may not insert into the extension's table (RDS makes
//! them `rdsadmin`'s) it takes the table over, and where the target refuses
//! that too, or has no such table (its version of the extension differs),
//! it says so, verify counts the missing rows, and a later `copy` carries
//! them once the owner lets it. The application's function that
//! transforms from the custom SRID runs on the target; a copy killed before
//! its commit leaves nothing, and a re-run does not carry the rows twice.

use std::os::unix::process::ExitStatusExt;

use supamigrate::connect::connect;
use supamigrate_sandbox::{apps, Sandbox};

use crate::common::{ok, output_text, run, supamigrate};

const PROJECT: &str = "
create extension if not exists postgis with schema extensions;
insert into extensions.spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
  select 990001, 'project', 990001, srtext, proj4text from extensions.spatial_ref_sys where srid = 4326;
create table public.geo_places (id int primary key, loc extensions.geometry(point, 990001) not null);
insert into public.geo_places
  select g, extensions.st_setsrid(extensions.st_point(13.4 + g * 0.01, 52.5), 990001) from generate_series(1, 20) g;
create function public.place_wgs84(p int) returns text language sql stable set search_path = '' as $$
  select extensions.st_astext(extensions.st_transform(loc, 4326)) from public.geo_places where id = p
$$;
";

/// verify exits 1 and says `line`.
async fn verify_finds(sb: &Sandbox, line: &str) {
    let mut verify = supamigrate(sb);
    verify.arg("verify");
    let out = run(verify).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(line), "{text}");
}

const CUSTOM: &str = "select count(*) from extensions.spatial_ref_sys where srid = 990001";

#[tokio::test]
async fn extension_configuration_rows_come_over_before_the_data() {
    let sb = Sandbox::ephemeral_app(apps::find("accounts").unwrap())
        .await
        .expect("sandbox starts");
    let src = connect(&sb.source_superuser(&sb.source_url().dbname))
        .await
        .unwrap();
    src.batch_execute(PROJECT).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let mut plan = supamigrate(&sb);
    plan.arg("plan");
    let text = output_text(&ok(plan, "plan").await);
    assert!(
        text.contains("extension postgis configuration extensions.spatial_ref_sys: 1 row(s) the project added, copied before the data"),
        "{text}"
    );
    let mut provision = supamigrate(&sb);
    provision
        .args(["provision", "--yes", "--secrets-dir"])
        .arg(secrets.path());
    ok(provision, "provision").await;
    let mut pre = supamigrate(&sb);
    pre.args(["schema", "apply", "--section", "pre-data"]);
    ok(pre, "pre-data").await;

    // A target whose version of the extension has no such table (made so
    // by moving it away): said, counted missing, carried once it is back.
    let tgt_admin = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    tgt_admin
        .batch_execute("alter table extensions.spatial_ref_sys rename to spatial_ref_sys_away")
        .await
        .unwrap();
    let mut copy = supamigrate(&sb);
    copy.args(["copy", "--jobs", "2"]);
    let text = output_text(&ok(copy, "copy, the table missing").await);
    assert!(
        text.contains("1 row(s) the project added to extensions.spatial_ref_sys (extension postgis) were not copied: the target's version of the extension has no such table"),
        "{text}"
    );
    verify_finds(
        &sb,
        "1 row(s) the project added on the source; the target's version of the extension has no such table",
    )
    .await;
    tgt_admin
        .batch_execute("alter table extensions.spatial_ref_sys_away rename to spatial_ref_sys")
        .await
        .unwrap();

    // The sandbox target makes PostGIS's tables rdsadmin's; this master may
    // neither insert into spatial_ref_sys nor take it over.
    let mut copy = supamigrate(&sb);
    copy.args(["copy", "--jobs", "2"]);
    let text = output_text(&ok(copy, "copy").await);
    assert!(
        text.contains("extension configuration NOT copied: 1 row(s) the project added to extensions.spatial_ref_sys")
            && text.contains("owned by rdsadmin"),
        "{text}"
    );
    verify_finds(
        &sb,
        "1 row(s) the project added on the source, 0 on the target",
    )
    .await;

    // A target whose owner role lets the master take the table over, as
    // RDS lets its master (the owner itself has no INSERT left).
    let master = sb.target_url().user.clone();
    tgt_admin
        .batch_execute(&format!(
            "create role ext_owner nologin; \
             alter table extensions.spatial_ref_sys owner to ext_owner; \
             revoke insert on extensions.spatial_ref_sys from ext_owner; \
             grant ext_owner to {master}; grant create on schema extensions to {master};"
        ))
        .await
        .unwrap();
    // Killed with the rows written, before the commit: nothing of it stays.
    let mut killed = supamigrate(&sb);
    killed
        .args(["copy", "--jobs", "2"])
        .env("SUPAMIGRATE_FAILPOINTS", "extension-config-before-commit@1");
    let out = run(killed).await;
    assert_eq!(out.status.signal(), Some(9), "{}", output_text(&out));
    let tgt = connect(&sb.target_url()).await.unwrap();
    let n: i64 = tgt.query_one(CUSTOM, &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "the killed copy left nothing");
    let mut copy = supamigrate(&sb);
    copy.args(["copy", "--jobs", "2"]);
    let text = output_text(&ok(copy, "copy again").await);
    assert!(
        text.contains("extension postgis configuration extensions.spatial_ref_sys: 1 row(s) copied, 0 already on the target (the target user took it over from ext_owner)"),
        "{text}"
    );
    let mut verify = supamigrate(&sb);
    verify.arg("verify");
    ok(verify, "verify").await;
    let wgs84: String = tgt
        .query_one("select public.place_wgs84(3)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(wgs84.starts_with("POINT(13.43"), "{wgs84}");

    // Once carried, never twice.
    let mut copy = supamigrate(&sb);
    copy.args(["copy", "--jobs", "2"]);
    let text = output_text(&ok(copy, "copy a third time").await);
    assert!(text.contains("(by an earlier run)"), "{text}");
    let n: i64 = tgt.query_one(CUSTOM, &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}
