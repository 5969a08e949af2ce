//! Object stores: S3 (AWS, Supabase's S3 endpoint, any S3-compatible server)
//! and a local directory (`<root>/<bucket>/<key>`, the sandbox's Storage
//! backend, or a destination for trying things out).
//!
//! Objects are read and written in parts of at most `part_size` bytes, so
//! memory stays bounded whatever the object size. Uploads carry SHA-256
//! checksums the server checks (per part for multipart uploads).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, CreateBucketConfiguration, StorageClass,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, ErrorKind, Result};

/// How an object is described on write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
    /// Storage class (S3 only).
    pub storage_class: Option<String>,
}

/// What a store knows about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Size in bytes.
    pub size: u64,
    /// The store's content checksum, in the form [`Digests::form`] gives for
    /// it; `None` when the store keeps none.
    pub checksum: Option<String>,
    /// Content-Type, Cache-Control, user metadata.
    pub meta: ObjectMeta,
}

/// SHA-256 of a whole object and of each of its parts.
#[derive(Debug, Clone, Default)]
pub struct Digests {
    whole: Sha256,
    parts: Vec<[u8; 32]>,
    /// Bytes seen.
    pub bytes: u64,
}

impl Digests {
    /// Adds one part.
    pub fn add_part(&mut self, data: &[u8]) {
        self.whole.update(data);
        self.parts.push(Sha256::digest(data).into());
        self.bytes += data.len() as u64;
    }

    /// Hex SHA-256 of the whole object.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.whole.clone().finalize())
    }

    /// The checksum as `store` reports it for an object written with
    /// `part_size`: for S3, base64 SHA-256 of a single-part object, or of the
    /// parts' digests with `-N` for a multipart one (objects of `part_size`
    /// bytes or more); for a directory, the hex SHA-256.
    pub fn form(&self, store: &Store, part_size: usize) -> String {
        match store {
            Store::Dir(_) => self.sha256_hex(),
            Store::S3(_) => {
                if self.bytes < part_size as u64 {
                    aws_smithy_types::base64::encode(self.whole.clone().finalize())
                } else {
                    let mut h = Sha256::new();
                    for p in &self.parts {
                        h.update(p);
                    }
                    format!(
                        "{}-{}",
                        aws_smithy_types::base64::encode(h.finalize()),
                        self.parts.len()
                    )
                }
            }
        }
    }
}

/// An S3 client with its label for messages.
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    label: String,
    region: Option<String>,
}

impl S3 {
    /// A client from an SDK configuration; path-style addressing when an
    /// endpoint is given (S3-compatible servers, Supabase).
    pub fn new(config: &aws_config::SdkConfig, endpoint: Option<&str>, label: &str) -> S3 {
        let mut b = aws_sdk_s3::config::Builder::from(config);
        if let Some(url) = endpoint {
            b = b
                .endpoint_url(endpoint_with_slash(url))
                .force_path_style(true);
        } else if config.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        S3 {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            label: label.to_string(),
            region: config.region().map(|r| r.to_string()),
        }
    }
}

/// HTTPS over rustls with ring (no second crypto library).
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An endpoint with a path (Supabase's `…/storage/v1/s3`) must end in `/`:
/// aws-sdk-rust mis-joins it otherwise (awslabs/aws-sdk-rust#1387).
pub fn endpoint_with_slash(url: &str) -> String {
    let has_path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .is_some_and(|(_, path)| !path.is_empty());
    if has_path && !url.ends_with('/') {
        format!("{url}/")
    } else {
        url.to_string()
    }
}

/// The SDK configuration from the standard AWS chain (AWS_REGION,
/// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL_S3
/// or AWS_ENDPOINT_URL…), over rustls with ring.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}

/// An S3 client for an endpoint with its own keys (Supabase Storage's S3
/// endpoint and its project S3 access keys), not the AWS chain.
pub async fn s3_with_keys(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    region: &str,
    label: &str,
) -> Store {
    let creds =
        aws_sdk_s3::config::Credentials::new(access_key, secret_key, None, None, "supabase");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .credentials_provider(creds)
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    Store::S3(S3::new(&config, Some(endpoint), label))
}

/// Where objects live.
#[derive(Debug, Clone)]
pub enum Store {
    /// `<root>/<bucket>/<key>`; metadata in `<root>/.supamigrate-meta/`.
    Dir(PathBuf),
    /// An S3 endpoint.
    S3(S3),
}

/// A stored object being read part by part.
pub enum Reader {
    /// A local file.
    File(tokio::fs::File),
    /// An S3 body, with bytes received beyond the last part.
    S3(ByteStream, Vec<u8>),
}

impl Reader {
    /// The next part (at most `max` bytes); empty at the end.
    pub async fn part(&mut self, max: usize) -> Result<Vec<u8>> {
        match self {
            Reader::File(f) => {
                let mut buf = vec![0u8; max];
                let mut n = 0;
                while n < max {
                    let k = f
                        .read(&mut buf[n..])
                        .await
                        .map_err(|e| Error::io("reading an object", e))?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                buf.truncate(n);
                Ok(buf)
            }
            Reader::S3(body, rest) => {
                while rest.len() < max {
                    match body.next().await {
                        Some(Ok(chunk)) => rest.extend_from_slice(&chunk),
                        Some(Err(e)) => {
                            return Err(Error::new(
                                ErrorKind::ObjectStore,
                                format!(
                                    "reading an object body: {}",
                                    crate::connect::error_chain(&e)
                                ),
                            ))
                        }
                        None => break,
                    }
                }
                let take = rest.len().min(max);
                let tail = rest.split_off(take);
                Ok(std::mem::replace(rest, tail))
            }
        }
    }
}

/// A key safe to use as a relative path: no `..`, no root, no empty segment.
fn safe_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf> {
    let rel = Path::new(bucket).join(key);
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(Error::invalid_input(format!(
            "object key {key:?} in bucket {bucket:?} cannot be a file path (\"..\", \"/\" or empty segments)"
        )));
    }
    Ok(root.join(rel))
}

fn meta_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf> {
    let p = safe_path(&root.join(".supamigrate-meta"), bucket, key)?;
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    Ok(p.with_file_name(name))
}

#[derive(Serialize, Deserialize)]
struct DirMeta {
    size: u64,
    sha256: String,
    #[serde(flatten)]
    meta: ObjectMeta,
}

impl Store {
    /// For messages.
    pub fn label(&self) -> String {
        match self {
            Store::Dir(p) => p.display().to_string(),
            Store::S3(s) => s.label.clone(),
        }
    }

    /// Creates `bucket` when missing; true when created.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        match self {
            Store::Dir(root) => {
                let p = safe_path(root, bucket, "x")?;
                let dir = p.parent().unwrap_or(root);
                let existed = dir.exists();
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                Ok(!existed)
            }
            Store::S3(s) => {
                match s.client.head_bucket().bucket(bucket).send().await {
                    Ok(_) => return Ok(false),
                    Err(e) => {
                        let missing = e.as_service_error().is_some_and(|x| x.is_not_found());
                        if !missing {
                            return Err(Error::s3(
                                format!("checking bucket {bucket} on {}", s.label),
                                e,
                            ));
                        }
                    }
                }
                let mut req = s.client.create_bucket().bucket(bucket);
                if let Some(r) = s.region.as_deref().filter(|r| *r != "us-east-1") {
                    req = req.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(r))
                            .build(),
                    );
                }
                req.send().await.map_err(|e| {
                    Error::s3(format!("creating bucket {bucket} on {}", s.label), e)
                })?;
                Ok(true)
            }
        }
    }

    /// The object's size, checksum and metadata; `None` when absent.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>> {
        match self {
            Store::Dir(root) => {
                let p = safe_path(root, bucket, key)?;
                let Ok(md) = tokio::fs::metadata(&p).await else {
                    return Ok(None);
                };
                let side: Option<DirMeta> = tokio::fs::read(meta_path(root, bucket, key)?)
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Ok(Some(match side {
                    Some(m) if m.size == md.len() => Head {
                        size: md.len(),
                        checksum: Some(m.sha256),
                        meta: m.meta,
                    },
                    _ => Head {
                        size: md.len(),
                        checksum: None,
                        meta: ObjectMeta::default(),
                    },
                }))
            }
            Store::S3(s) => {
                match s
                    .client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send()
                    .await
                {
                    Ok(h) => Ok(Some(Head {
                        size: h.content_length().unwrap_or(0).max(0) as u64,
                        checksum: h.checksum_sha256().map(str::to_string),
                        meta: ObjectMeta {
                            content_type: h.content_type().map(str::to_string),
                            cache_control: h.cache_control().map(str::to_string),
                            metadata: h
                                .metadata()
                                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                                .unwrap_or_default(),
                            storage_class: h.storage_class().map(|c| c.as_str().to_string()),
                        },
                    })),
                    Err(e) if e.as_service_error().is_some_and(|x| x.is_not_found()) => Ok(None),
                    Err(e) => Err(Error::s3(format!("HEAD {bucket}/{key} on {}", s.label), e)),
                }
            }
        }
    }

    /// Opens an object for reading; `None` when absent.
    pub async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>> {
        match self {
            Store::Dir(root) => {
                let p = safe_path(root, bucket, key)?;
                match tokio::fs::File::open(&p).await {
                    Ok(f) => Ok(Some(Reader::File(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(format!("opening {}", p.display()), e)),
                }
            }
            Store::S3(s) => match s.client.get_object().bucket(bucket).key(key).send().await {
                Ok(o) => Ok(Some(Reader::S3(o.body, Vec::new()))),
                Err(e) if e.as_service_error().is_some_and(|x| x.is_no_such_key()) => Ok(None),
                Err(e) => Err(Error::s3(format!("GET {bucket}/{key} on {}", s.label), e)),
            },
        }
    }

    /// Every key in `bucket` with its size.
    pub async fn list(&self, bucket: &str) -> Result<Vec<(String, u64)>> {
        match self {
            Store::Dir(root) => {
                let base = root.join(bucket);
                let mut out = Vec::new();
                let mut stack = vec![base.clone()];
                while let Some(d) = stack.pop() {
                    let Ok(mut rd) = tokio::fs::read_dir(&d).await else {
                        continue;
                    };
                    while let Some(e) = rd
                        .next_entry()
                        .await
                        .map_err(|e| Error::io(format!("listing {}", d.display()), e))?
                    {
                        let ft = e
                            .file_type()
                            .await
                            .map_err(|err| Error::io(format!("listing {}", d.display()), err))?;
                        if ft.is_dir() {
                            stack.push(e.path());
                        } else if ft.is_file() {
                            let key = e
                                .path()
                                .strip_prefix(&base)
                                .map(|p| p.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            let size = e.metadata().await.map(|m| m.len()).unwrap_or(0);
                            out.push((key, size));
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
            Store::S3(s) => {
                let mut out = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let page = s
                        .client
                        .list_objects_v2()
                        .bucket(bucket)
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .map_err(|e| Error::s3(format!("listing {bucket} on {}", s.label), e))?;
                    for o in page.contents() {
                        if let Some(k) = o.key() {
                            out.push((k.to_string(), o.size().unwrap_or(0).max(0) as u64));
                        }
                    }
                    match page.next_continuation_token() {
                        Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                        _ => break,
                    }
                }
                out.sort();
                Ok(out)
            }
        }
    }

    /// Writes an object from `reader` in parts of `part_size` (multipart above
    /// one part), with `meta`; returns the digests of what was sent. The
    /// object appears whole or not at all.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        match self {
            Store::Dir(root) => {
                let path = safe_path(root, bucket, key)?;
                let dir = path.parent().unwrap_or(root).to_path_buf();
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                let tmp = tempfile::Builder::new()
                    .prefix(".supamigrate-part-")
                    .tempfile_in(&dir)
                    .map_err(|e| Error::io(format!("writing into {}", dir.display()), e))?;
                let (file, tmp_path) = tmp.into_parts();
                let mut f = tokio::fs::File::from_std(file);
                let mut d = Digests::default();
                loop {
                    let part = reader.part(part_size).await?;
                    if part.is_empty() && d.bytes > 0 {
                        break;
                    }
                    d.add_part(&part);
                    f.write_all(&part)
                        .await
                        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                    if part.len() < part_size {
                        break;
                    }
                }
                f.sync_all()
                    .await
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                tmp_path
                    .persist(&path)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e.error))?;
                let side = DirMeta {
                    size: d.bytes,
                    sha256: d.sha256_hex(),
                    meta: meta.clone(),
                };
                let mp = meta_path(root, bucket, key)?;
                if let Some(parent) = mp.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
                }
                let text = serde_json::to_vec(&side)
                    .map_err(|e| Error::new(ErrorKind::Io, "object metadata").with_source(e))?;
                crate::fsutil::write_atomically(&mp, &text, 0o644)?;
                Ok(d)
            }
            Store::S3(s) => {
                let first = reader.part(part_size).await?;
                let mut d = Digests::default();
                let class = meta.storage_class.as_deref().map(StorageClass::from);
                if first.len() < part_size {
                    d.add_part(&first);
                    let sha = aws_smithy_types::base64::encode(Sha256::digest(&first));
                    s.client
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(ByteStream::from(first))
                        .set_content_type(meta.content_type.clone())
                        .set_cache_control(meta.cache_control.clone())
                        .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
                        .set_storage_class(class)
                        .checksum_sha256(sha)
                        .send()
                        .await
                        .map_err(|e| Error::s3(format!("PUT {bucket}/{key} on {}", s.label), e))?;
                    return Ok(d);
                }
                let up = s
                    .client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .set_content_type(meta.content_type.clone())
                    .set_cache_control(meta.cache_control.clone())
                    .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
                    .set_storage_class(class)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send()
                    .await
                    .map_err(|e| Error::s3(format!("starting the upload of {bucket}/{key}"), e))?;
                let id = up.upload_id().unwrap_or_default().to_string();
                let result = async {
                    let mut parts = Vec::new();
                    let mut data = first;
                    loop {
                        let n = parts.len() as i32 + 1;
                        d.add_part(&data);
                        let sha = aws_smithy_types::base64::encode(Sha256::digest(&data));
                        let last = data.len() < part_size;
                        let r = s
                            .client
                            .upload_part()
                            .bucket(bucket)
                            .key(key)
                            .upload_id(&id)
                            .part_number(n)
                            .body(ByteStream::from(data))
                            .checksum_sha256(sha.clone())
                            .send()
                            .await
                            .map_err(|e| {
                                Error::s3(format!("uploading part {n} of {bucket}/{key}"), e)
                            })?;
                        parts.push(
                            CompletedPart::builder()
                                .part_number(n)
                                .set_e_tag(r.e_tag().map(str::to_string))
                                .checksum_sha256(sha)
                                .build(),
                        );
                        if last {
                            break;
                        }
                        data = reader.part(part_size).await?;
                        if data.is_empty() {
                            break;
                        }
                    }
                    s.client
                        .complete_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(&id)
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(parts))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            Error::s3(format!("completing the upload of {bucket}/{key}"), e)
                        })?;
                    Ok::<(), Error>(())
                }
                .await;
                if let Err(e) = result {
                    let _ = s
                        .client
                        .abort_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(&id)
                        .send()
                        .await;
                    return Err(e);
                }
                Ok(d)
            }
        }
    }

    /// Digests of a stored object, read in parts of `part_size`; `None` when absent.
    pub async fn digest(
        &self,
        bucket: &str,
        key: &str,
        part_size: usize,
    ) -> Result<Option<Digests>> {
        let Some(mut r) = self.open(bucket, key).await? else {
            return Ok(None);
        };
        let mut d = Digests::default();
        loop {
            let part = r.part(part_size).await?;
            if part.is_empty() && d.bytes > 0 {
                break;
            }
            d.add_part(&part);
            if part.len() < part_size {
                break;
            }
        }
        Ok(Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_store_round_trips_objects_and_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("b/x y")).unwrap();
        let big: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(src.join("b/x y/ü.bin"), &big).unwrap();
        std::fs::write(src.join("b/.emptyFolderPlaceholder"), b"").unwrap();
        let from = Store::Dir(src);
        let to = Store::Dir(tmp.path().join("dst"));
        assert!(to.ensure_bucket("nb").await.unwrap());
        let meta = ObjectMeta {
            content_type: Some("application/pdf".into()),
            cache_control: Some("max-age=3600".into()),
            metadata: [("a".to_string(), "1".to_string())].into(),
            storage_class: None,
        };
        for key in ["x y/ü.bin", ".emptyFolderPlaceholder"] {
            let mut r = from.open("b", key).await.unwrap().unwrap();
            let d = to.put("nb", key, &mut r, 1000, &meta).await.unwrap();
            let h = to.head("nb", key).await.unwrap().unwrap();
            assert_eq!(h.size, d.bytes);
            assert_eq!(h.checksum.as_deref(), Some(d.form(&to, 1000).as_str()));
            assert_eq!(h.meta, meta);
            let again = to.digest("nb", key, 1000).await.unwrap().unwrap();
            assert_eq!(again.sha256_hex(), d.sha256_hex());
        }
        assert_eq!(
            from.list("b").await.unwrap(),
            vec![
                (".emptyFolderPlaceholder".to_string(), 0),
                ("x y/ü.bin".to_string(), 2500)
            ]
        );
        assert!(to.head("nb", "absent").await.unwrap().is_none());
        assert!(to.head("nb", "../escape").await.is_err());
    }

    #[test]
    fn endpoints_with_a_path_get_their_trailing_slash() {
        for (url, want) in [
            (
                "https://ref.storage.supabase.co/storage/v1/s3",
                "https://ref.storage.supabase.co/storage/v1/s3/",
            ),
            (
                "https://ref.storage.supabase.co/storage/v1/s3/",
                "https://ref.storage.supabase.co/storage/v1/s3/",
            ),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/"),
        ] {
            assert_eq!(endpoint_with_slash(url), want);
        }
    }

    #[test]
    fn multipart_checksums_take_the_s3_composite_form() {
        let mut d = Digests::default();
        d.add_part(b"abc");
        assert_eq!(d.sha256_hex(), hex::encode(Sha256::digest(b"abc")));
        d.add_part(b"def");
        let mut h = Sha256::new();
        h.update(Sha256::digest(b"abc"));
        h.update(Sha256::digest(b"def"));
        let s3 = Store::S3(S3 {
            client: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::new()
                    .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                    .build(),
            ),
            label: "t".into(),
            region: None,
        });
        assert_eq!(
            d.form(&s3, 3),
            format!("{}-2", aws_smithy_types::base64::encode(h.finalize()))
        );
        assert_eq!(
            d.form(&s3, 100),
            aws_smithy_types::base64::encode(Sha256::digest(b"abcdef"))
        );
    }
}
