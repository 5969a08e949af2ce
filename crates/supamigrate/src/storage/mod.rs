//! Storage (seed Step 4.4): Supabase Storage buckets to S3, each object
//! verified, resumable, and the database's references rewritten.
//!
//! - The plan says which buckets go where and which columns hold references
//!   ([`crate::plan::storage`]). When the step runs, the object list is read
//!   from `storage.objects` and compared with the source store's own
//!   listing: objects missing from either side are reported
//!   ([`plan_objects`] is pure).
//! - [`transfer::copy`] streams each object in parts (bounded memory) with
//!   SHA-256 checksums, several at a time. An object already at the
//!   destination with the same size, checksum and metadata is skipped, so a
//!   re-run resumes. Every upload is checked afterwards (size and checksum).
//! - [`rewrite`] turns the reference columns' Supabase paths and URLs into
//!   the new locations, on the target, in one transaction.
//! - [`migrate`] is the whole step, for `storage copy` and `run` alike.

pub mod config;
pub mod rewrite;
pub mod store;
pub mod transfer;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{connect, ConnInfo};
use crate::error::{Error, Result};
use crate::events::SharedObserver;
use crate::plan::storage::StoragePlan;
use store::{Listed, ObjectMeta, ObjectStore, Store};

/// The user-metadata key that carries Supabase's `user_metadata` (as JSON).
pub const USER_METADATA_KEY: &str = "supabase-user-metadata";
/// S3's limit on user metadata (all keys and values).
const METADATA_LIMIT: usize = 2048;

/// A `storage.objects` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Bucket id.
    pub bucket: String,
    /// Object name (the key).
    pub name: String,
    /// Size from its metadata.
    pub size: Option<i64>,
    /// `metadata.mimetype`.
    pub mimetype: Option<String>,
    /// `metadata.cacheControl`.
    pub cache_control: Option<String>,
    /// `user_metadata`, as JSON text.
    pub user_metadata: Option<String>,
}

/// An object by bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bucket, self.key)
    }
}

/// Reads `storage.objects`.
pub async fn objects(client: &Client) -> Result<Vec<StoredObject>> {
    Ok(client
        .query(include_str!("sql/objects.sql"), &[])
        .await
        .map_err(|e| {
            Error::postgres("reading storage.objects", e)
                .with_hint("the source must be a Supabase database (with the storage schema) readable by this role")
        })?
        .iter()
        .map(|r| StoredObject {
            bucket: r.get(0),
            name: r.get(1),
            size: r.get(2),
            mimetype: r.get(3),
            cache_control: r.get(4),
            user_metadata: r.get(5),
        })
        .collect())
}

/// One object to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPlan {
    /// Source bucket.
    pub bucket: String,
    /// Key (same on both sides).
    pub key: String,
    /// Destination bucket.
    pub dest_bucket: String,
    /// Size from the inventory.
    pub size: Option<i64>,
    /// What the destination object gets.
    pub meta: ObjectMeta,
}

/// The objects to copy now, and what the source's two views disagree on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsPlan {
    /// Objects to copy (in `storage.objects` and in the store).
    pub objects: Vec<ObjectPlan>,
    /// In `storage.objects` but not in the store: nothing to copy.
    pub missing_in_store: Vec<ObjectRef>,
    /// In the store but not in `storage.objects`: not copied.
    pub not_in_table: Vec<ObjectRef>,
    /// Every destination bucket (empty ones included: they are created too).
    pub dest_buckets: Vec<String>,
    /// Per-object notes (metadata too large, placeholders).
    pub notes: Vec<String>,
}

impl ObjectsPlan {
    /// Bytes to copy, by the inventory.
    pub fn bytes(&self) -> i64 {
        self.objects.iter().map(|o| o.size.unwrap_or(0)).sum()
    }
}

/// JSON with every non-ASCII character escaped, so it is a valid header value.
fn ascii_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Destination metadata for a `storage.objects` row; a note when the user
/// metadata does not fit S3's 2 KiB.
pub fn object_meta(o: &StoredObject, storage_class: Option<&str>) -> (ObjectMeta, Option<String>) {
    let mut meta = ObjectMeta {
        content_type: o.mimetype.clone(),
        cache_control: o.cache_control.clone(),
        metadata: BTreeMap::new(),
        storage_class: storage_class.map(str::to_string),
    };
    let mut note = None;
    if let Some(um) = o.user_metadata.as_deref().filter(|s| *s != "{}") {
        let value = ascii_json(um);
        if value.len() + USER_METADATA_KEY.len() > METADATA_LIMIT {
            note = Some(format!(
                "{}/{}: user metadata is {} bytes, more than S3's 2 KiB; not carried over",
                o.bucket,
                o.name,
                value.len()
            ));
        } else {
            meta.metadata.insert(USER_METADATA_KEY.to_string(), value);
        }
    }
    (meta, note)
}

/// Decides the copy (pure): objects in both views are copied; the others are
/// reported. `listed` is the store's keys per bucket.
pub fn plan_objects(
    objects: &[StoredObject],
    listed: &BTreeMap<String, Vec<Listed>>,
    plan: &StoragePlan,
) -> ObjectsPlan {
    let mut p = ObjectsPlan::default();
    let in_store: BTreeSet<(&str, &str)> = listed
        .iter()
        .flat_map(|(b, keys)| keys.iter().map(move |l| (b.as_str(), l.key.as_str())))
        .collect();
    let in_table: BTreeSet<(&str, &str)> = objects
        .iter()
        .map(|o| (o.bucket.as_str(), o.name.as_str()))
        .collect();
    for o in objects {
        if !in_store.contains(&(o.bucket.as_str(), o.name.as_str())) {
            p.missing_in_store.push(ObjectRef {
                bucket: o.bucket.clone(),
                key: o.name.clone(),
            });
            continue;
        }
        let (meta, note) = object_meta(o, plan.storage_class.as_deref());
        p.notes.extend(note);
        p.objects.push(ObjectPlan {
            bucket: o.bucket.clone(),
            key: o.name.clone(),
            dest_bucket: plan.dest_bucket(&o.bucket),
            size: o.size,
            meta,
        });
    }
    for (b, k) in &in_store {
        if !in_table.contains(&(*b, *k)) {
            p.not_in_table.push(ObjectRef {
                bucket: b.to_string(),
                key: k.to_string(),
            });
        }
    }
    let dest: BTreeSet<String> = plan
        .buckets
        .iter()
        .map(|b| b.dest.clone())
        .chain(p.objects.iter().map(|o| o.dest_bucket.clone()))
        .collect();
    p.dest_buckets = dest.into_iter().collect();
    let placeholders = p
        .objects
        .iter()
        .filter(|o| o.key.ends_with(".emptyFolderPlaceholder"))
        .count();
    if placeholders > 0 {
        p.notes.push(format!(
            "{placeholders} .emptyFolderPlaceholder object(s) (the dashboard's empty folders) are copied as they are"
        ));
    }
    p
}

/// Reads the object list and the store's listing, and plans the copy.
pub async fn prepare(client: &Client, source: &Store, plan: &StoragePlan) -> Result<ObjectsPlan> {
    let objects = objects(client).await?;
    let names: BTreeSet<String> = plan
        .buckets
        .iter()
        .map(|b| b.id.clone())
        .chain(objects.iter().map(|o| o.bucket.clone()))
        .collect();
    let mut listed = BTreeMap::new();
    for b in names {
        let keys = source.list(&b).await?;
        listed.insert(b, keys);
    }
    Ok(plan_objects(&objects, &listed, plan))
}

/// What the Storage step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageSummary {
    /// What was to be copied.
    pub objects: ObjectsPlan,
    /// What the copy did.
    pub copy: transfer::CopyReport,
    /// Rows whose references were rewritten (`None`: no rewrite planned, or
    /// objects failed).
    pub rewritten: Option<u64>,
    /// References that match no copied object, left as they were.
    pub unresolved: Vec<rewrite::Unresolved>,
    /// Rewritten columns with values still pointing at Supabase Storage.
    pub remaining: Vec<RemainingReferences>,
    /// References to objects missing from the Storage source, left as they
    /// were (`--allow-missing-objects`).
    #[serde(default)]
    pub to_missing_objects: Vec<rewrite::Unresolved>,
}

impl StorageSummary {
    /// Objects failed, references unresolved or left pointing at Supabase.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .copy
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.object, f.reason))
            .collect();
        out.extend(self.unresolved.iter().map(|u| {
            format!(
                "{} [{}]: {:?} matches no copied object; left as it is",
                u.column, u.key, u.value
            )
        }));
        out.extend(self.remaining.iter().map(|r| {
            format!(
                "{}: {} value(s) still point at Supabase Storage",
                r.column, r.rows
            )
        }));
        out
    }
}

/// The whole Storage step: plan the objects, copy them, then (when the plan
/// says so and every object copied) rewrite the references on the target and
/// check none still points at Supabase Storage.
///
/// With FORCE ROW LEVEL SECURITY lifted meanwhile ([`crate::rls`]).
pub async fn migrate(
    m: &crate::migration::Migration,
    stores: &config::Stores,
    opts: transfer::TransferOptions,
) -> Result<StorageSummary> {
    let (source_db, target, plan, observer) = (&m.source, &m.target, &m.plan.storage, &m.observer);
    crate::rls::unforced(
        target,
        migrate_rows(source_db, target, stores, plan, opts, observer),
    )
    .await
}

/// [`migrate`]'s work, run with FORCE ROW LEVEL SECURITY lifted.
async fn migrate_rows(
    source_db: &ConnInfo,
    target: &ConnInfo,
    stores: &config::Stores,
    plan: &StoragePlan,
    opts: transfer::TransferOptions,
    observer: &SharedObserver,
) -> Result<StorageSummary> {
    let client = connect(source_db).await?;
    let objects = prepare(&client, &stores.source, plan).await?;
    check_missing(&objects, opts.allow_missing_objects)?;
    let copy = transfer::copy(&stores.source, &stores.dest, &objects, opts, observer).await?;
    let mut summary = StorageSummary {
        objects,
        copy,
        ..StorageSummary::default()
    };
    if !summary.copy.failed.is_empty() || plan.rewrite.is_none() {
        return Ok(summary);
    }
    let mut tgt = connect(target).await?;
    let r = rewrite::plan_rewrite(&tgt, &summary.objects, plan).await?;
    summary.rewritten = Some(rewrite::rewrite(&mut tgt, &r, plan).await?);
    let (to_missing, unresolved) = to_missing_objects(r.unresolved, &summary.objects, plan);
    summary.unresolved = unresolved;
    summary.remaining = remaining_supabase_references(&tgt, &plan.references).await?;
    // Those left pointing at missing objects were allowed: not problems.
    for rem in &mut summary.remaining {
        rem.rows -= to_missing.iter().filter(|u| u.column == rem.column).count() as i64;
    }
    summary.remaining.retain(|r| r.rows > 0);
    summary.to_missing_objects = to_missing;
    Ok(summary)
}

/// Splits unresolved references: those naming an object missing from the
/// Storage source (left as they are, reported), and the others.
fn to_missing_objects(
    unresolved: Vec<rewrite::Unresolved>,
    objects: &ObjectsPlan,
    plan: &StoragePlan,
) -> (Vec<rewrite::Unresolved>, Vec<rewrite::Unresolved>) {
    let missing: BTreeSet<(&str, &str)> = objects
        .missing_in_store
        .iter()
        .map(|o| (o.bucket.as_str(), o.key.as_str()))
        .collect();
    unresolved.into_iter().partition(|u| {
        let bucket = plan
            .references
            .iter()
            .find(|r| format!("{}.{}", r.table, r.column) == u.column)
            .map(|r| r.bucket.as_str())
            .unwrap_or("");
        match crate::plan::refs::parse(&u.value, bucket, &|_| false) {
            crate::plan::refs::Reference::Object(c) => c
                .iter()
                .any(|(b, k)| missing.contains(&(b.as_str(), k.as_str()))),
            _ => false,
        }
    })
}

/// Objects `storage.objects` lists but the store does not have stop the
/// step before anything is copied, unless allowed (`--allow-missing-objects`:
/// they are reported).
pub fn check_missing(objects: &ObjectsPlan, allowed: bool) -> Result<()> {
    let missing = &objects.missing_in_store;
    if missing.is_empty() || allowed {
        return Ok(());
    }
    let shown: Vec<String> = missing.iter().take(20).map(|o| o.to_string()).collect();
    let more = if missing.len() > 20 {
        format!(" and {} more", missing.len() - 20)
    } else {
        String::new()
    };
    Err(Error::invalid_input(format!(
        "{} objects listed in storage.objects are not in the Storage source: {}{more}; nothing was copied",
        missing.len(),
        shown.join(", ")
    ))
    .with_hint("restore them to the source, or pass --allow-missing-objects to migrate without them (they are listed in the report)"))
}

/// Values of a reference column that still point at Supabase Storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemainingReferences {
    /// `schema.table.column`.
    pub column: String,
    /// Rows.
    pub rows: i64,
}

/// Values in the reference columns that still point at Supabase Storage.
pub async fn remaining_supabase_references(
    target: &Client,
    references: &[crate::plan::refs::RefColumn],
) -> Result<Vec<RemainingReferences>> {
    let mut out = Vec::new();
    for rc in references {
        let column = format!("{}.{}", rc.table, rc.column);
        let rows: i64 = target
            .query_one(
                &format!(
                    "select count(*) from {} t where t.{col} is not null and {v} <> '' \
                     and {v} not like 's3://%' \
                     and ({v} like '%/storage/v1/%' or {v} not like '%://%')",
                    rc.table.quoted(),
                    col = crate::pg::quote_ident(&rc.column),
                    // (LIKE needs a deterministic collation)
                    v = format_args!(
                        "(t.{}::text collate \"C\")",
                        crate::pg::quote_ident(&rc.column)
                    )
                ),
                &[],
            )
            .await
            .map_err(|e| Error::postgres(format!("checking {column}"), e))?
            .get(0);
        if rows > 0 {
            out.push(RemainingReferences { column, rows });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::storage::{plan, StorageChoices};

    fn obj(b: &str, n: &str, um: Option<&str>) -> StoredObject {
        StoredObject {
            bucket: b.into(),
            name: n.into(),
            size: Some(10),
            mimetype: Some("image/png".into()),
            cache_control: Some("max-age=3600".into()),
            user_metadata: um.map(str::to_string),
        }
    }

    #[test]
    fn objects_are_planned_and_both_kinds_of_strays_reported() {
        let objects = vec![
            obj(
                "docs",
                "a/b c.png",
                Some(r#"{"original name": "ü.png", "tags": ["x"]}"#),
            ),
            obj("docs", "gone.png", None),
            obj("docs", "f/.emptyFolderPlaceholder", None),
        ];
        let listed: BTreeMap<String, Vec<Listed>> = [(
            "docs".to_string(),
            vec![
                Listed {
                    key: "a/b c.png".into(),
                    size: 10,
                },
                Listed {
                    key: "f/.emptyFolderPlaceholder".into(),
                    size: 0,
                },
                Listed {
                    key: "stray.bin".into(),
                    size: 3,
                },
            ],
        )]
        .into();
        let sp = plan(
            true,
            &[],
            0,
            &StorageChoices {
                bucket_prefix: Some("app-".into()),
                ..StorageChoices::default()
            },
            None,
            &[],
        );
        let p = plan_objects(&objects, &listed, &sp);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].dest_bucket, "app-docs");
        assert_eq!(
            p.objects[0].meta.metadata[USER_METADATA_KEY],
            r#"{"original name": "\u00fc.png", "tags": ["x"]}"#
        );
        assert_eq!(
            p.objects[0].meta.storage_class.as_deref(),
            Some("STANDARD_IA")
        );
        let strays = |v: &[ObjectRef]| v.iter().map(|o| o.to_string()).collect::<Vec<_>>();
        assert_eq!(strays(&p.missing_in_store), ["docs/gone.png"]);
        assert_eq!(strays(&p.not_in_table), ["docs/stray.bin"]);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        let big = obj(
            "docs",
            "x",
            Some(&format!("{{\"k\": \"{}\"}}", "v".repeat(3000))),
        );
        let (m, note) = object_meta(&big, None);
        assert!(m.metadata.is_empty() && note.is_some());
    }
}
