//! The Storage part of the plan: which buckets go where, which columns hold
//! references to their objects, and what S3 has no equivalent for. The
//! object list itself is read when the Storage step runs (it may be long,
//! and it is compared with the store's own listing then).

use serde::{Deserialize, Serialize};

use super::refs::{self, RefColumn, Reference};
use crate::catalog::data::ColumnSample;
use crate::catalog::Bucket;

/// The storage class of the copies when none is chosen: the runbook's.
pub const DEFAULT_STORAGE_CLASS: &str = "STANDARD_IA";

/// One bucket and where its objects go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPlan {
    /// The Supabase bucket.
    pub id: String,
    /// The destination bucket.
    pub dest: String,
    /// Objects `storage.objects` lists in it.
    pub objects: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// How references are rewritten after the objects are copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// New references are `URL/bucket/key` instead of `s3://bucket/key`.
    pub url_prefix: Option<String>,
}

/// The Storage plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoragePlan {
    /// The source has Supabase Storage.
    pub present: bool,
    /// Destination bucket = prefix + Supabase bucket.
    pub bucket_prefix: String,
    /// The copies' storage class (`None`: the store's default).
    pub storage_class: Option<String>,
    /// Every bucket.
    pub buckets: Vec<BucketPlan>,
    /// Columns holding references to Storage objects.
    pub references: Vec<RefColumn>,
    /// How each reference column was found (`--reference`, or the sampled
    /// values that showed it), one line each.
    pub reference_reasons: Vec<String>,
    /// The rewrite of those columns; `None` leaves them alone (`--no-rewrite`,
    /// or no reference column).
    pub rewrite: Option<Rewrite>,
    /// Settings S3 has no equivalent for, one line each.
    pub notes: Vec<String>,
}

impl StoragePlan {
    /// The destination bucket of `bucket`.
    pub fn dest_bucket(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.bucket_prefix)
    }

    /// Objects in every bucket.
    pub fn objects(&self) -> i64 {
        self.buckets.iter().map(|b| b.objects).sum()
    }

    /// Their bytes.
    pub fn bytes(&self) -> i64 {
        self.buckets.iter().map(|b| b.bytes).sum()
    }
}

/// What the user chose for Storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageChoices {
    /// Destination bucket prefix (`None`: `<project ref>-`, else `supabase-`).
    pub bucket_prefix: Option<String>,
    /// Storage class (`None`: the runbook's `STANDARD_IA`; `""`: the store's default).
    pub storage_class: Option<String>,
    /// Reference columns.
    pub references: Vec<RefColumn>,
    /// URL prefix of new references.
    pub url_prefix: Option<String>,
    /// Leave references alone.
    pub no_rewrite: bool,
}

/// The default bucket prefix for a project.
pub fn default_bucket_prefix(project_ref: Option<&str>) -> String {
    match project_ref {
        Some(r) if !r.is_empty() => format!("{}-", r.to_ascii_lowercase()),
        _ => "supabase-".to_string(),
    }
}

/// The Storage plan for `buckets` (with `policies` RLS policies on
/// `storage.objects`), as the user chose. Without `--reference`, the
/// reference columns are those discovery found in `samples`.
pub fn plan(
    present: bool,
    buckets: &[Bucket],
    policies: usize,
    choices: &StorageChoices,
    project_ref: Option<&str>,
    samples: &[ColumnSample],
) -> StoragePlan {
    let prefix = choices
        .bucket_prefix
        .clone()
        .unwrap_or_else(|| default_bucket_prefix(project_ref));
    let (references, reference_reasons) = if choices.references.is_empty() {
        discover(samples)
    } else {
        let reasons = choices
            .references
            .iter()
            .map(|r| format!("{r}: given with --reference"))
            .collect();
        (choices.references.clone(), reasons)
    };
    let mut p = StoragePlan {
        present,
        storage_class: match choices.storage_class.as_deref() {
            None => Some(DEFAULT_STORAGE_CLASS.to_string()),
            Some("") => None,
            Some(c) => Some(c.to_string()),
        },
        buckets: buckets
            .iter()
            .map(|b| BucketPlan {
                id: b.id.clone(),
                dest: format!("{prefix}{}", b.id),
                objects: b.objects,
                bytes: b.bytes,
            })
            .collect(),
        bucket_prefix: prefix,
        rewrite: (!choices.no_rewrite && !references.is_empty()).then(|| Rewrite {
            url_prefix: choices.url_prefix.clone(),
        }),
        references,
        reference_reasons,
        notes: Vec::new(),
    };
    for b in buckets {
        p.notes.extend(bucket_notes(b));
    }
    if policies > 0 {
        p.notes.push(format!(
            "{policies} RLS policies on storage.objects do not carry over: use IAM, bucket policies or presigned URLs"
        ));
    }
    p
}

/// Reference columns from sampled values: a column is one when at least
/// half of its sampled values are Storage URLs or keys of
/// `storage.objects`; its bare paths belong to the bucket most of them name.
pub fn discover(samples: &[ColumnSample]) -> (Vec<RefColumn>, Vec<String>) {
    let mut refs = Vec::new();
    let mut reasons = Vec::new();
    for s in samples {
        let url_buckets: Vec<String> = s
            .urls
            .iter()
            .filter_map(|u| match refs::parse(u, "", &|_| false) {
                Reference::Object(c) => c.first().map(|(b, _)| b.clone()),
                _ => None,
            })
            .collect();
        let hits = url_buckets.len() + s.key_buckets.len();
        if hits == 0 || hits * 2 < s.values {
            continue;
        }
        // Bare keys of several buckets: which bucket a row's key is in is
        // not the column's to say.
        let mut key_set: Vec<&String> = s.key_buckets.iter().collect();
        key_set.sort();
        key_set.dedup();
        if key_set.len() > 1 {
            reasons.push(format!(
                "{}.{}: not rewritten: its values are keys of several buckets ({}); name it with --reference if one bucket holds them all",
                s.table,
                s.column,
                key_set.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let bucket = most_common(if s.key_buckets.is_empty() {
            &url_buckets
        } else {
            &s.key_buckets
        });
        let col = RefColumn {
            table: s.table.clone(),
            column: s.column.clone(),
            bucket,
        };
        reasons.push(format!(
            "{col}: discovered ({} of {} sampled values are Storage URLs, {} are object keys)",
            url_buckets.len(),
            s.values,
            s.key_buckets.len()
        ));
        refs.push(col);
    }
    (refs, reasons)
}

fn most_common(items: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(b, _)| b.to_string())
        .unwrap_or_default()
}

fn bucket_notes(b: &Bucket) -> Vec<String> {
    let mut notes = Vec::new();
    if b.public {
        notes.push(format!(
            "bucket {} is public: S3 buckets are private; grant read access with a bucket policy or serve through CloudFront",
            b.id
        ));
    }
    if let Some(n) = b.file_size_limit {
        notes.push(format!(
            "bucket {} limits files to {n} bytes: S3 has no such limit; enforce it in the uploader",
            b.id
        ));
    }
    if !b.allowed_mime_types.is_empty() {
        notes.push(format!(
            "bucket {} allows only {}: S3 has no MIME rules; enforce them in the uploader",
            b.id,
            b.allowed_mime_types.join(", ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_mapped_and_their_settings_reported() {
        let buckets = vec![Bucket {
            id: "docs".into(),
            name: "docs".into(),
            public: true,
            file_size_limit: Some(100),
            allowed_mime_types: vec!["image/png".into()],
            objects: 3,
            bytes: 30,
        }];
        let p = plan(
            true,
            &buckets,
            2,
            &StorageChoices::default(),
            Some("AbcRef"),
            &[],
        );
        assert_eq!(p.buckets[0].dest, "abcref-docs");
        assert_eq!(p.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(p.notes.len(), 4, "{:?}", p.notes);
        assert!(
            p.rewrite.is_none(),
            "no reference column: nothing to rewrite"
        );
        assert_eq!((p.objects(), p.bytes()), (3, 30));
        let refs = StorageChoices {
            references: vec![RefColumn::parse("public.files.path=docs").unwrap()],
            bucket_prefix: Some("x-".into()),
            storage_class: Some(String::new()),
            ..StorageChoices::default()
        };
        let p = plan(true, &buckets, 0, &refs, None, &[]);
        assert_eq!(p.dest_bucket("docs"), "x-docs");
        assert!(p.rewrite.is_some() && p.storage_class.is_none());
        let no = StorageChoices {
            no_rewrite: true,
            ..refs
        };
        assert!(plan(true, &buckets, 0, &no, None, &[]).rewrite.is_none());
        assert_eq!(default_bucket_prefix(None), "supabase-");
    }
}
