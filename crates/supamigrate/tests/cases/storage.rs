//! Storage through a store that fails on purpose: failed objects are
//! reported (not a crash, not a silent skip), the rewrite waits for every
//! object, and a re-run copies what failed and skips what is there.

use supamigrate::connect::connect;
use supamigrate::plan::refs::RefColumn;
use supamigrate::plan::PlanOverrides;
use supamigrate::storage::config::Stores;
use supamigrate::storage::store::{Store, Unreliable};
use supamigrate::storage::transfer::TransferOptions;
use supamigrate_sandbox::Sandbox;

use crate::common::{context, provision_and_pre_data};

const OBJECTS: usize = 24;

#[tokio::test]
async fn failed_uploads_are_reported_and_a_rerun_completes() {
    let sb = Sandbox::ephemeral(0).await.expect("sandbox starts");
    let admin = connect(&sb.source_superuser("postgres")).await.unwrap();
    admin
        .batch_execute("insert into storage.buckets (id, name) values ('files', 'files')")
        .await
        .unwrap();
    let app = connect(&sb.source_url()).await.unwrap();
    app.batch_execute("create table public.attachments (id int primary key, path text)")
        .await
        .unwrap();
    for i in 0..OBJECTS {
        let key = format!("dir {}/file-{i}.txt", i % 3);
        let path = sb.storage_dir().join("files").join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("object {i}\n").repeat(i + 1)).unwrap();
        admin
            .execute(
                "insert into storage.objects (bucket_id, name, metadata) values ('files', $1, jsonb_build_object('size', $2::bigint, 'mimetype', 'text/plain'))",
                &[&key, &(std::fs::metadata(&path).unwrap().len() as i64)],
            )
            .await
            .unwrap();
        app.execute(
            "insert into public.attachments values ($1, $2)",
            &[&(i as i32), &key],
        )
        .await
        .unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let overrides = PlanOverrides {
        references: Some(vec![
            RefColumn::parse("public.attachments.path=files").unwrap()
        ]),
        bucket_prefix: Some("copy-".into()),
        storage_class: Some(String::new()),
        ..PlanOverrides::default()
    };
    let ctx = context(sb.source_url(), sb.target_url(), overrides, state.path());
    let plan = provision_and_pre_data(&ctx).await;
    supamigrate::ops::copy(&ctx, supamigrate::copy::CopyOptions::new(2, true))
        .await
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let flaky = Stores {
        source: Store::dir(sb.storage_dir()),
        dest: Store::Unreliable(Box::new(Unreliable::new(Store::dir(dest.path()), 5))),
    };
    let opts = TransferOptions {
        jobs: 4,
        ..TransferOptions::default()
    };
    let m = crate::common::migration(&ctx, plan.clone());
    let first = supamigrate::storage::migrate(&m, &flaky, opts)
        .await
        .unwrap();
    assert_eq!(first.copy.objects, OBJECTS);
    assert!(
        !first.copy.failed.is_empty(),
        "the store failed some operations"
    );
    assert!(
        first
            .copy
            .failed
            .iter()
            .all(|f| f.reason.contains("injected fault")),
        "{:?}",
        first.copy.failed
    );
    assert_eq!(first.copy.copied + first.copy.failed.len(), OBJECTS);
    assert_eq!(first.rewritten, None, "no rewrite while objects failed");
    assert!(!first.problems().is_empty());

    let steady = Stores {
        source: Store::dir(sb.storage_dir()),
        dest: Store::dir(dest.path()),
    };
    let second = supamigrate::storage::migrate(&m, &steady, opts)
        .await
        .unwrap();
    assert!(second.copy.failed.is_empty());
    // What copied is skipped; what failed is copied now, unless only the
    // check after its upload failed (then the object is there, and skipped).
    assert!(
        second.copy.skipped >= first.copy.copied,
        "what copied before is skipped"
    );
    assert!(second.copy.copied <= first.copy.failed.len() && second.copy.copied > 0);
    assert_eq!(second.copy.copied + second.copy.skipped, OBJECTS);
    assert_eq!(second.rewritten, Some(OBJECTS as u64));
    assert!(second.problems().is_empty(), "{:?}", second.problems());
    let bad =
        supamigrate::storage::transfer::verify(&steady.source, &steady.dest, &second.objects, opts)
            .await
            .unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let t = connect(&m.target).await.unwrap();
    let moved: i64 = t
        .query_one(
            "select count(*) from public.attachments where path like 's3://copy-files/dir %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, OBJECTS as i64);
}
