//! Database references to Storage objects: which forms they take, and what
//! they become. Pure.
//!
//! Supabase apps store a bare object path (`<user>/license/front.pdf`,
//! bucket implied by the column), or a URL:
//! `…/storage/v1/object/{public|authenticated|sign}/<bucket>/<path>[?token=…]`,
//! `…/storage/v1/object/<bucket>/<path>`, or the image renderer's
//! `…/storage/v1/render/image/{public|authenticated|sign}/<bucket>/<path>`.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use serde::{Deserialize, Serialize};

use crate::pg::TableName;

/// A column that holds object references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RefColumn {
    /// Its table.
    pub table: TableName,
    /// The column.
    pub column: String,
    /// The bucket of bare paths.
    pub bucket: String,
}

impl RefColumn {
    /// Parses `schema.table.column=bucket` (schema optional: `public`).
    pub fn parse(s: &str) -> Option<RefColumn> {
        let (path, bucket) = s.split_once('=')?;
        let parts: Vec<&str> = path.split('.').collect();
        let (schema, table, column) = match parts.as_slice() {
            [t, c] => ("public", *t, *c),
            [s, t, c] => (*s, *t, *c),
            _ => return None,
        };
        if table.is_empty() || column.is_empty() || bucket.is_empty() {
            return None;
        }
        Some(RefColumn {
            table: TableName::new(schema, table),
            column: column.to_string(),
            bucket: bucket.to_string(),
        })
    }
}

impl std::fmt::Display for RefColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}={}", self.table, self.column, self.bucket)
    }
}

/// What a stored value refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A Storage object: candidates (bucket, key), most likely first.
    Object(Vec<(String, String)>),
    /// Already points at the new location.
    Moved,
    /// Some other URL: not Supabase Storage, left alone.
    Foreign,
}

const ROUTES: &[&str] = &["/storage/v1/object/", "/storage/v1/render/image/"];
const MODES: &[&str] = &["public/", "authenticated/", "sign/"];

/// Classifies `value` from a column whose bare paths live in `bucket`.
/// `moved` tells whether a value is already a new location.
pub fn parse(value: &str, bucket: &str, moved: &dyn Fn(&str) -> bool) -> Reference {
    let v = value.trim();
    if moved(v) {
        return Reference::Moved;
    }
    for route in ROUTES {
        if let Some(i) = v.find(route) {
            let mut rest = &v[i + route.len()..];
            for m in MODES {
                if let Some(r) = rest.strip_prefix(m) {
                    rest = r;
                    break;
                }
            }
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            let decoded = percent_decode_str(rest).decode_utf8_lossy().into_owned();
            return match decoded.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => {
                    Reference::Object(vec![(b.to_string(), k.to_string())])
                }
                _ => Reference::Foreign,
            };
        }
    }
    if v.contains("://") {
        return Reference::Foreign;
    }
    let key = v.trim_start_matches('/');
    let mut candidates = vec![(bucket.to_string(), key.to_string())];
    if let Some((b, k)) = key.split_once('/') {
        if !k.is_empty() {
            candidates.push((b.to_string(), k.to_string()));
        }
    }
    Reference::Object(candidates)
}

/// The values `value` may have become after `storage copy` with these
/// options: the new location of each candidate object, or `value` itself
/// when it is not a Supabase Storage reference (or already moved).
pub fn expected_after_rewrite(
    value: &str,
    bucket: &str,
    bucket_prefix: &str,
    url_prefix: Option<&str>,
) -> Vec<String> {
    let moved = |v: &str| {
        v.starts_with(&format!("s3://{bucket_prefix}"))
            || url_prefix.is_some_and(|p| v.starts_with(p))
    };
    match parse(value, bucket, &moved) {
        Reference::Moved | Reference::Foreign => vec![value.to_string()],
        Reference::Object(candidates) => candidates
            .iter()
            .map(|(b, k)| new_location(&format!("{bucket_prefix}{b}"), k, url_prefix))
            .chain(std::iter::once(value.to_string()))
            .collect(),
    }
}

/// `value` with the `token` of a signed URL replaced, for display: a signed
/// URL's token grants access to the object.
pub fn redact_token(value: &str) -> String {
    let Some((base, query)) = value.split_once('?') else {
        return value.to_string();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("token", _)) => "token=[redacted]".to_string(),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", q.join("&"))
}

/// Characters escaped in a URL path segment (`/` separates segments and stays).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'+')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')');

/// The new location of `key` in `bucket`: `s3://bucket/key`, or with a URL
/// prefix `prefix/bucket/key` (each segment percent-encoded).
pub fn new_location(bucket: &str, key: &str, url_prefix: Option<&str>) -> String {
    match url_prefix {
        None => format!("s3://{bucket}/{key}"),
        Some(p) => {
            let enc: Vec<String> = key
                .split('/')
                .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                .collect();
            format!("{}/{bucket}/{}", p.trim_end_matches('/'), enc.join("/"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(b: &str, k: &str) -> Reference {
        Reference::Object(vec![(b.into(), k.into())])
    }

    #[test]
    fn every_supabase_form_is_recognized() {
        let moved = |v: &str| v.starts_with("s3://");
        let cases: Vec<(&str, Reference)> = vec![
            (
                "https://abc.supabase.co/storage/v1/object/public/receipts/a/S-1/POD%201%20%F0%9F%93%A6.jpg",
                obj("receipts", "a/S-1/POD 1 📦.jpg"),
            ),
            (
                "https://abc.supabase.co/storage/v1/object/authenticated/documents/d/id-card/ID%20card%20(scan).jpg",
                obj("documents", "d/id-card/ID card (scan).jpg"),
            ),
            (
                "https://abc.supabase.co/storage/v1/object/sign/receipts/x/y.jpg?token=eyJ.abc",
                obj("receipts", "x/y.jpg"),
            ),
            ("/storage/v1/object/docs/a.pdf", obj("docs", "a.pdf")),
            (
                "https://abc.supabase.co/storage/v1/render/image/public/pics/p.png?width=200",
                obj("pics", "p.png"),
            ),
            ("s3://app-files-docs/a.pdf", Reference::Moved),
            ("https://example.com/file.pdf", Reference::Foreign),
            ("https://abc.supabase.co/storage/v1/object/public/", Reference::Foreign),
            (
                "d1/license/license front.pdf",
                Reference::Object(vec![
                    ("documents".into(), "d1/license/license front.pdf".into()),
                    ("d1".into(), "license/license front.pdf".into()),
                ]),
            ),
            (
                "/top.pdf",
                Reference::Object(vec![("documents".into(), "top.pdf".into())]),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value, "documents", &moved), want, "{value}");
        }
    }

    #[test]
    fn expected_values_after_the_rewrite() {
        let e = expected_after_rewrite(
            "https://x.supabase.co/storage/v1/object/public/pod/a%20b.jpg",
            "docs",
            "app-files-",
            None,
        );
        assert_eq!(e[0], "s3://app-files-pod/a b.jpg");
        assert_eq!(
            expected_after_rewrite("https://example.com/x", "docs", "app-files-", None),
            vec!["https://example.com/x".to_string()]
        );
        let bare = expected_after_rewrite("d/f.pdf", "docs", "p-", Some("https://cdn"));
        assert_eq!(bare[0], "https://cdn/p-docs/d/f.pdf");
        assert_eq!(bare[1], "https://cdn/p-d/f.pdf");
    }

    #[test]
    fn signed_url_tokens_are_redacted_for_display() {
        assert_eq!(
            redact_token("https://x/storage/v1/object/sign/b/k.jpg?token=eyJ.abc&download=1"),
            "https://x/storage/v1/object/sign/b/k.jpg?token=[redacted]&download=1"
        );
        assert_eq!(redact_token("a/b.pdf"), "a/b.pdf");
    }

    #[test]
    fn new_locations_and_columns() {
        assert_eq!(
            new_location("app-files-pod", "a b/ü (1).jpg", None),
            "s3://app-files-pod/a b/ü (1).jpg"
        );
        assert_eq!(
            new_location(
                "app-files-pod",
                "a b/ü (1).jpg",
                Some("https://cdn.example.com/")
            ),
            "https://cdn.example.com/app-files-pod/a%20b/%C3%BC%20%281%29.jpg"
        );
        let c = RefColumn::parse("documents.file_path=documents").unwrap();
        assert_eq!(c.table, TableName::new("public", "documents"));
        assert!(RefColumn::parse("nonsense").is_none());
    }
}
