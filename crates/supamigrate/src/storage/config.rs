//! Where objects come from and go to: Supabase Storage's S3 endpoint (with
//! the project's S3 keys), any S3 endpoint, or a directory; the destination
//! S3 through the standard AWS configuration, or a directory.

use std::path::PathBuf;

use super::store::{aws_config, S3Store, Store};
use crate::connect::Password;
use crate::error::{Error, Result};

/// The S3 keys Supabase Storage's endpoint accepts (dashboard: Storage → S3
/// connection).
#[derive(Clone)]
pub struct S3Keys {
    /// `SUPABASE_S3_ACCESS_KEY_ID`.
    pub access_key: String,
    /// `SUPABASE_S3_SECRET_ACCESS_KEY`.
    pub secret_key: Password,
    /// `SUPABASE_S3_REGION` (default `us-east-1`).
    pub region: String,
}

impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Keys")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Where the stores are.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Read objects from this directory (`<dir>/<bucket>/<name>`).
    pub source_dir: Option<PathBuf>,
    /// Supabase Storage's S3 endpoint (default from the project ref).
    pub source_endpoint: Option<String>,
    /// The project ref, for the default endpoint.
    pub project_ref: Option<String>,
    /// The endpoint's keys.
    pub source_keys: Option<S3Keys>,
    /// Write objects to this directory instead of S3.
    pub dest_dir: Option<PathBuf>,
    /// An S3-compatible destination with its own endpoint and keys, instead
    /// of the AWS configuration chain (the demo's local S3 server).
    pub dest_s3: Option<(String, S3Keys)>,
}

/// The two stores.
pub struct Stores {
    /// Supabase Storage.
    pub source: Store,
    /// Where the objects go.
    pub dest: Store,
}

impl StoreConfig {
    /// The Supabase S3 keys from the environment (`env` looks a variable up).
    pub fn keys_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<S3Keys> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        Some(S3Keys {
            access_key: var("SUPABASE_S3_ACCESS_KEY_ID")?,
            secret_key: Password::new(var("SUPABASE_S3_SECRET_ACCESS_KEY")?),
            region: var("SUPABASE_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        })
    }

    /// Opens both stores.
    pub async fn open(&self) -> Result<Stores> {
        Ok(Stores {
            source: self.open_source().await?,
            dest: self.open_dest().await?,
        })
    }

    /// The source store.
    pub async fn open_source(&self) -> Result<Store> {
        if let Some(d) = &self.source_dir {
            if !d.is_dir() {
                return Err(Error::invalid_input(format!(
                    "--source-dir {} is not a directory",
                    d.display()
                ))
                .with_hint("give the folder that holds one subfolder per bucket"));
            }
            return Ok(Store::dir(d.clone()));
        }
        let endpoint = match (&self.source_endpoint, &self.project_ref) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => format!("https://{r}.storage.supabase.co/storage/v1/s3"),
            (None, None) => {
                return Err(Error::invalid_input("no Storage source given")
                    .with_hint("set SUPABASE_PROJECT_REF (with SUPABASE_S3_ACCESS_KEY_ID/SUPABASE_S3_SECRET_ACCESS_KEY from the project's Storage S3 settings), or --source-endpoint, or --source-dir"))
            }
        };
        let Some(keys) = &self.source_keys else {
            return Err(Error::invalid_input(
                "SUPABASE_S3_ACCESS_KEY_ID and SUPABASE_S3_SECRET_ACCESS_KEY are needed to read Supabase Storage",
            )
            .with_hint("create S3 access keys in the Supabase dashboard (Storage → S3 connection)"));
        };
        Ok(Store::S3(
            S3Store::with_keys(
                &endpoint,
                &keys.access_key,
                keys.secret_key.expose(),
                &keys.region,
                &format!("Supabase Storage ({endpoint})"),
            )
            .await,
        ))
    }

    /// The destination store.
    pub async fn open_dest(&self) -> Result<Store> {
        if let Some(d) = &self.dest_dir {
            return Ok(Store::dir(d.clone()));
        }
        if let Some((endpoint, keys)) = &self.dest_s3 {
            return Ok(Store::S3(
                S3Store::with_keys(
                    endpoint,
                    &keys.access_key,
                    keys.secret_key.expose(),
                    &keys.region,
                    &format!("S3 at {endpoint}"),
                )
                .await,
            ));
        }
        let config = aws_config().await;
        if config.region().is_none() {
            return Err(Error::invalid_input("no AWS region for the destination S3")
                .with_hint("set AWS_REGION (or a region in the AWS_PROFILE), or use --dest-dir"));
        }
        let label = match config.endpoint_url() {
            Some(e) => format!("S3 at {e}"),
            None => "S3".to_string(),
        };
        Ok(Store::S3(S3Store::new(&config, None, &label)))
    }
}
