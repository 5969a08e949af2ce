//! S3 through aws-sdk-s3 (on rustls with ring): AWS, Supabase Storage's S3
//! endpoint, or any S3-compatible server.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, CreateBucketConfiguration, StorageClass,
};
use sha2::{Digest, Sha256};

use super::{Digests, Head, Listed, ObjectMeta, ObjectStore, Reader};
use crate::error::{Error, Result};

/// An S3 client with its label for messages.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    label: String,
    region: Option<String>,
}

impl S3Store {
    /// A client from an SDK configuration; path-style addressing when an
    /// endpoint is given (S3-compatible servers, Supabase).
    pub fn new(config: &aws_config::SdkConfig, endpoint: Option<&str>, label: &str) -> S3Store {
        let mut b = aws_sdk_s3::config::Builder::from(config);
        if let Some(url) = endpoint {
            b = b
                .endpoint_url(endpoint_with_slash(url))
                .force_path_style(true);
        } else if config.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        S3Store {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            label: label.to_string(),
            region: config.region().map(|r| r.to_string()),
        }
    }

    /// A client for an endpoint with its own keys (Supabase Storage's S3
    /// endpoint and its project S3 access keys), not the AWS chain.
    pub async fn with_keys(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        label: &str,
    ) -> S3Store {
        let creds =
            aws_sdk_s3::config::Credentials::new(access_key, secret_key, None, None, "supabase");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .credentials_provider(creds)
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        S3Store::new(&config, Some(endpoint), label)
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

impl S3Store {
    async fn put_single(
        &self,
        bucket: &str,
        key: &str,
        data: Vec<u8>,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        let mut d = Digests::default();
        d.add_part(&data);
        let sha = aws_smithy_types::base64::encode(Sha256::digest(&data));
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(data))
            .set_content_type(meta.content_type.clone())
            .set_cache_control(meta.cache_control.clone())
            .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
            .set_storage_class(meta.storage_class.as_deref().map(StorageClass::from))
            .checksum_sha256(sha)
            .send()
            .await
            .map_err(|e| Error::s3(format!("PUT {bucket}/{key} on {}", self.label), e))?;
        Ok(d)
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: Vec<u8>,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        let up = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(meta.content_type.clone())
            .set_cache_control(meta.cache_control.clone())
            .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
            .set_storage_class(meta.storage_class.as_deref().map(StorageClass::from))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| Error::s3(format!("starting the upload of {bucket}/{key}"), e))?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let mut d = Digests::default();
        let result = self
            .upload_parts(bucket, key, &id, first, reader, part_size, &mut d)
            .await;
        if let Err(e) = result {
            let _ = self
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

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        first: Vec<u8>,
        reader: &mut Reader,
        part_size: usize,
        d: &mut Digests,
    ) -> Result<()> {
        let mut parts = Vec::new();
        let mut data = first;
        loop {
            let n = parts.len() as i32 + 1;
            d.add_part(&data);
            let sha = aws_smithy_types::base64::encode(Sha256::digest(&data));
            let last = data.len() < part_size;
            let r = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(data))
                .checksum_sha256(sha.clone())
                .send()
                .await
                .map_err(|e| Error::s3(format!("uploading part {n} of {bucket}/{key}"), e))?;
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
        self.complete(bucket, key, id, parts, d.bytes).await
    }

    /// Completes a multipart upload of `bytes` bytes.
    async fn complete(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        parts: Vec<CompletedPart>,
        bytes: u64,
    ) -> Result<()> {
        let n = parts.len();
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let Err(e) = completed else {
            return Ok(());
        };
        // Some S3 implementations answer a completed upload in a form the
        // SDK cannot read (moto: another root element, HTTP 200). The
        // object tells: there, of the size sent, made of the parts sent.
        // (Its bytes are checked after the upload in any case.)
        let unreadable = e.raw_response().is_some_and(|r| r.status().as_u16() == 200);
        if unreadable {
            if let Some(h) = self.head(bucket, key).await? {
                if h.size == bytes {
                    tracing::warn!(
                        object = %format!("{bucket}/{key}"),
                        parts = n,
                        "the store's answer to CompleteMultipartUpload could not be read; the object is there with the size sent"
                    );
                    return Ok(());
                }
            }
        }
        Err(Error::s3(
            format!("completing the multipart upload of {bucket}/{key} ({n} parts)"),
            e,
        ))
    }
}

impl ObjectStore for S3Store {
    fn label(&self) -> String {
        self.label.clone()
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(false),
            Err(e) => {
                let missing = e.as_service_error().is_some_and(|x| x.is_not_found());
                if !missing {
                    return Err(Error::s3(
                        format!("checking bucket {bucket} on {}", self.label),
                        e,
                    ));
                }
            }
        }
        let mut req = self.client.create_bucket().bucket(bucket);
        if let Some(r) = self.region.as_deref().filter(|r| *r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(r))
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| Error::s3(format!("creating bucket {bucket} on {}", self.label), e))?;
        Ok(true)
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>> {
        let r = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match r {
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
            Err(e) => Err(Error::s3(
                format!("HEAD {bucket}/{key} on {}", self.label),
                e,
            )),
        }
    }

    async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(Reader::S3(o.body, Vec::new()))),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_no_such_key()) => Ok(None),
            Err(e) => Err(Error::s3(
                format!("GET {bucket}/{key} on {}", self.label),
                e,
            )),
        }
    }

    async fn list(&self, bucket: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| Error::s3(format!("listing {bucket} on {}", self.label), e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(Listed {
                        key: k.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
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

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        reader: &mut Reader,
        part_size: usize,
        meta: &ObjectMeta,
    ) -> Result<Digests> {
        let first = reader.part(part_size).await?;
        if first.len() < part_size {
            self.put_single(bucket, key, first, meta).await
        } else {
            self.put_multipart(bucket, key, first, reader, part_size, meta)
                .await
        }
    }

    fn checksum_form(&self, d: &Digests, part_size: usize) -> String {
        d.s3_form(part_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
