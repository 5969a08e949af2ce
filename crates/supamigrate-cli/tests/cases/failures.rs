//! The failure modes real projects showed, each on a fixture application:
//! objects missing from the Storage source, a column typed by an extension
//! the target lacks (and the restore test then), a trigger on a function of
//! an extension left behind, an extension in `public`, a stale generated
//! column, a function that would no longer resolve on the target. Users
//! without email and functions reading `auth.users` are checked by the
//! notes application's own test (`apps::notes_migrates_and_works`).

use supamigrate::connect::connect;
use supamigrate_sandbox::apps;
use supamigrate_sandbox::Sandbox;

use super::apps::{check, run_cmd};
use crate::common::{output_text, run};

async fn one(c: &tokio_postgres::Client, sql: &str) -> Option<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten()
}

/// The fixture application's sandbox, or `None` (the test skips, said once)
/// where the platform kit cannot run.
async fn sandbox(test: &str, name: &str) -> Option<Sandbox> {
    if !supamigrate_sandbox::platform::require(&format!("failures::{test}")) {
        return None;
    }
    Some(
        Sandbox::ephemeral_app(apps::find(name).unwrap())
            .await
            .expect("sandbox starts"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_objects_stop_the_run_before_any_write_unless_allowed() {
    let Some(sb) = sandbox(
        "missing_objects_stop_the_run_before_any_write_unless_allowed",
        "files",
    )
    .await
    else {
        return;
    };
    let gone = "documents/b2222222-2222-4222-8222-222222222222/scan.pdf";
    std::fs::remove_file(sb.storage_dir().join(gone)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("1 objects listed in storage.objects are not in the Storage source")
            && t.contains(gone)
            && t.contains("--allow-missing-objects"),
        "{t}"
    );
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "nothing was written"
    );

    let out = run(run_cmd(&sb, work.path(), &["--allow-missing-objects"])).await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("✓ migration complete"), "{t}");
    let report =
        std::fs::read_to_string(work.path().join("supamigrate-report/report.html")).unwrap();
    assert!(report.contains(gone), "the report names the missing object");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_of_an_extension_the_target_lacks_is_refused_then_left_out_when_allowed() {
    let Some(sb) = sandbox(
        "a_column_of_an_extension_the_target_lacks_is_refused_then_left_out_when_allowed",
        "catalog",
    )
    .await
    else {
        return;
    };
    let offered: Vec<&str> = supamigrate_sandbox::rds::RDS_EXTENSIONS
        .iter()
        .copied()
        .filter(|e| *e != "vector")
        .collect();
    sb.set_target_allowed_extensions(&offered).await.unwrap();
    // Views over the column: one shows it, one only filters on it, one
    // reads the first. They go with the column (the schema would fail).
    let src = connect(&sb.source_url()).await.unwrap();
    src.batch_execute(
        "create view public.product_vectors as select id, embedding from public.products;
         create view public.products_embedded as select id from public.products where embedding is not null;
         create view public.product_vector_ids as select id from public.product_vectors;
         create function public.embedding_text(p bigint) returns text language sql stable
           as $$ select embedding::text from public.products where id = p $$;
         create function public.has_embedding(p bigint) returns boolean language plpgsql stable
           as $$ begin return (select q.embedding is not null from public.products q where q.id = p); end $$;",
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("vector: the data of public.products.embedding (about 30 rows) would be lost")
            && t.contains("--allow-drop-extension vector"),
        "{t}"
    );
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "nothing was written"
    );

    // Let go: the column is neither created nor copied; the backup's restore
    // test, on a server without vector, says so and passes.
    let out = run(run_cmd(
        &sb,
        work.path(),
        &["--allow-drop-extension", "vector"],
    ))
    .await;
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    assert_eq!(
        one(&tgt, "select count(*) from pg_attribute where attrelid = 'public.products'::regclass and attname = 'embedding'").await.as_deref(),
        Some("0")
    );
    assert_eq!(
        one(&tgt, "select count(*) from public.products")
            .await
            .as_deref(),
        Some("30")
    );
    for view in ["product_vectors", "products_embedded"] {
        assert!(
            t.contains(&format!("Dropped view public.{view}: uses extension vector (dropped with --allow-drop-extension)")),
            "{t}"
        );
    }
    assert!(
        t.contains("Dropped view public.product_vector_ids: uses view public.product_vectors, which is left out"),
        "{t}"
    );
    // Functions reading the column (a dump creates them unchecked: they
    // would fail when called).
    for f in ["embedding_text", "has_embedding"] {
        assert!(
            t.contains(&format!("Dropped function public.{f}: reads column public.products.embedding, which is left out")),
            "{t}"
        );
    }
    assert_eq!(
        one(&tgt, "select count(*) from pg_views where viewname in ('product_vectors', 'products_embedded', 'product_vector_ids')").await.as_deref(),
        Some("0")
    );
    let state = std::fs::read_to_string(work.path().join(".supamigrate/run.json")).unwrap();
    assert!(
        state.contains("public.products (needs extension vector, which the plan lets go"),
        "the restore test names the table it excused: {state}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_on_a_function_of_an_extension_left_behind_is_not_applied() {
    let Some(sb) = sandbox(
        "a_trigger_on_a_function_of_an_extension_left_behind_is_not_applied",
        "search",
    )
    .await
    else {
        return;
    };
    let offered: Vec<&str> = supamigrate_sandbox::rds::RDS_EXTENSIONS
        .iter()
        .copied()
        .filter(|e| *e != "moddatetime")
        .collect();
    sb.set_target_allowed_extensions(&offered).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    let t = output_text(&out);
    assert!(
        out.status.success(),
        "no column needs moddatetime: no flag needed: {t}"
    );
    assert!(
        t.contains("Dropped trigger handle_updated_at on public.articles: uses extension moddatetime (not offered by the target)"),
        "{t}"
    );
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    assert_eq!(
        one(&tgt, "select count(*) from pg_trigger where tgname in ('handle_updated_at', 'tags_updated_at')").await.as_deref(),
        Some("0"),
        "the triggers are not applied"
    );
    check(&sb, work.path(), "search").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_in_public_is_created_in_public() {
    let Some(sb) = sandbox("an_extension_in_public_is_created_in_public", "catalog").await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    assert_eq!(
        one(&tgt, "select string_agg(extname || ':' || extnamespace::regnamespace::text, ',' order by extname) from pg_extension where extname in ('vector', 'citext')").await.as_deref(),
        Some("citext:public,vector:public")
    );
    assert_eq!(
        one(&tgt, "select count(*) from public.similar_products(1, 3)")
            .await
            .as_deref(),
        Some("3"),
        "the function over the vector column runs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_generated_column_is_found_before_the_copy_and_kept_when_asked() {
    let Some(sb) = sandbox(
        "a_stale_generated_column_is_found_before_the_copy_and_kept_when_asked",
        "search",
    )
    .await
    else {
        return;
    };
    // The function the generated column calls changes after the rows were written.
    connect(&sb.source_url())
        .await
        .unwrap()
        .batch_execute("create or replace function public.slugify(t text) returns text language sql immutable as $$ select upper(t) $$")
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("public.articles.slug (60 rows)") && t.contains("--stale-generated keep"),
        "{t}"
    );
    assert!(
        !sb.target_database_exists().await.unwrap(),
        "nothing was written"
    );

    let out = run(run_cmd(&sb, work.path(), &["--stale-generated", "keep"])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let src = connect(&sb.source_superuser("postgres")).await.unwrap();
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    let q = "select string_agg(slug, ',' order by id) from public.articles";
    assert_eq!(
        one(&src, q).await,
        one(&tgt, q).await,
        "the source's values, kept"
    );
    assert_eq!(
        one(&tgt, "select attgenerated from pg_attribute where attrelid = 'public.articles'::regclass and attname = 'slug'").await.as_deref(),
        Some(""),
        "a plain column now"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_a_function_that_would_fail_on_the_target() {
    let Some(sb) = sandbox(
        "verify_names_a_function_that_would_fail_on_the_target",
        "notes",
    )
    .await
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = run(run_cmd(&sb, work.path(), &[])).await;
    assert!(out.status.success(), "{}", output_text(&out));
    // Something drops what the application's functions read.
    let tgt = connect(&sb.target_superuser(&sb.target_url().dbname))
        .await
        .unwrap();
    tgt.batch_execute("drop view auth.users cascade")
        .await
        .unwrap();
    let mut v = std::process::Command::new(env!("CARGO_BIN_EXE_supamigrate"));
    v.env("SUPABASE_DB_URL", sb.source_url().to_url_with_password())
        .env("RDS_URL", sb.target_url().to_url_with_password())
        .env_remove("RUST_LOG")
        .current_dir(work.path())
        .args(["-q", "verify"]);
    let out = run(v).await;
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "function public.user_email uses relation auth.users, which the target does not have"
        ),
        "{t}"
    );
}
