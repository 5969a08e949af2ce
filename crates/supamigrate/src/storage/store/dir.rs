//! A directory as an object store: `<root>/<bucket>/<key>`, with each
//! object's metadata and checksum beside it in
//! `<root>/.supamigrate-meta/<bucket>/<key>.json`.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{Digests, Head, Listed, ObjectMeta, ObjectStore, Reader};
use crate::error::{Error, Result};

/// A directory store.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// The store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    /// Its folder.
    pub fn root(&self) -> &Path {
        &self.root
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

impl DirStore {
    async fn write_file(
        &self,
        path: &Path,
        reader: &mut Reader,
        part_size: usize,
    ) -> Result<Digests> {
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
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
        let io = |e| Error::io(format!("writing {}", path.display()), e);
        loop {
            let part = reader.part(part_size).await?;
            if part.is_empty() && d.bytes > 0 {
                break;
            }
            d.add_part(&part);
            f.write_all(&part).await.map_err(io)?;
            if part.len() < part_size {
                break;
            }
        }
        f.sync_all().await.map_err(io)?;
        tmp_path.persist(path).map_err(|e| io(e.error))?;
        Ok(d)
    }
}

impl ObjectStore for DirStore {
    fn label(&self) -> String {
        self.root.display().to_string()
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool> {
        let p = safe_path(&self.root, bucket, "x")?;
        let dir = p.parent().unwrap_or(&self.root);
        let existed = dir.exists();
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(!existed)
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<Head>> {
        let p = safe_path(&self.root, bucket, key)?;
        let Ok(md) = tokio::fs::metadata(&p).await else {
            return Ok(None);
        };
        let side: Option<DirMeta> = tokio::fs::read(meta_path(&self.root, bucket, key)?)
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

    async fn open(&self, bucket: &str, key: &str) -> Result<Option<Reader>> {
        let p = safe_path(&self.root, bucket, key)?;
        match tokio::fs::File::open(&p).await {
            Ok(f) => Ok(Some(Reader::File(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("opening {}", p.display()), e)),
        }
    }

    async fn list(&self, bucket: &str) -> Result<Vec<Listed>> {
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(d) = stack.pop() {
            let Ok(mut rd) = tokio::fs::read_dir(&d).await else {
                continue;
            };
            let io = |e| Error::io(format!("listing {}", d.display()), e);
            while let Some(e) = rd.next_entry().await.map_err(io)? {
                let ft = e.file_type().await.map_err(io)?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    let key = e
                        .path()
                        .strip_prefix(&base)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let size = e.metadata().await.map(|m| m.len()).unwrap_or(0);
                    out.push(Listed { key, size });
                }
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
        let path = safe_path(&self.root, bucket, key)?;
        let d = self.write_file(&path, reader, part_size).await?;
        let side = DirMeta {
            size: d.bytes,
            sha256: d.sha256_hex(),
            meta: meta.clone(),
        };
        let mp = meta_path(&self.root, bucket, key)?;
        if let Some(parent) = mp.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let text = serde_json::to_vec(&side)
            .map_err(|e| Error::internal(format!("serializing object metadata: {e}")))?;
        crate::fsutil::write_atomically(&mp, &text, 0o644)?;
        Ok(d)
    }

    fn checksum_form(&self, d: &Digests, _part_size: usize) -> String {
        d.sha256_hex()
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
        let from = DirStore::new(src);
        let to = DirStore::new(tmp.path().join("dst"));
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
            assert_eq!(
                h.checksum.as_deref(),
                Some(to.checksum_form(&d, 1000).as_str())
            );
            assert_eq!(h.meta, meta);
            let again = to.digest("nb", key, 1000).await.unwrap().unwrap();
            assert_eq!(again.sha256_hex(), d.sha256_hex());
        }
        let listed: Vec<(String, u64)> = from
            .list("b")
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.key, l.size))
            .collect();
        assert_eq!(
            listed,
            vec![
                (".emptyFolderPlaceholder".to_string(), 0),
                ("x y/ü.bin".to_string(), 2500)
            ]
        );
        assert!(to.head("nb", "absent").await.unwrap().is_none());
        assert!(to.head("nb", "../escape").await.is_err());
    }
}
