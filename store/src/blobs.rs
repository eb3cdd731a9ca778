//! Binary objects kept outside the log (avatars), behind a trait. The embedded default
//! (and, on a shared volume, the PostgreSQL shape) keeps them as files in a folder;
//! several nodes can share an S3 bucket instead ([`crate::s3::S3BlobStore`]).

use async_trait::async_trait;
use std::io;
use std::path::PathBuf;

/// Where blobs are stored.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()>;
    /// The blob under `key`, if any.
    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Deletes the blob under `key` (deleting a missing blob is fine).
    async fn delete(&self, key: &str) -> io::Result<()>;
}

/// Blobs as files under a folder; keys are relative paths of `[a-z0-9_-.]` segments.
#[derive(Debug, Clone)]
pub struct FolderBlobStore {
    root: PathBuf,
}

impl FolderBlobStore {
    /// Blobs under `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        if !valid_key(key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid blob key",
            ));
        }
        Ok(self.root.join(key))
    }
}

/// Whether `key` is a blob key every store accepts: `/`-separated segments of
/// `[A-Za-z0-9_-.]`, none empty, `.` or `..` (so a key never climbs out of its folder, nor
/// out of its bucket's path in a URL).
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        })
}

#[async_trait]
impl BlobStore for FolderBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Write aside, then rename: a reader never sees half a file.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(partial, path)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_reads_and_deletes() {
        let root = std::env::temp_dir().join(format!("blobs-{}", uuid::Uuid::new_v4()));
        let blobs = FolderBlobStore::new(&root);
        blobs.put("avatars/a/b.png", b"png".to_vec()).await.unwrap();
        assert_eq!(
            blobs.get("avatars/a/b.png").await.unwrap(),
            Some(b"png".to_vec())
        );
        blobs.delete("avatars/a/b.png").await.unwrap();
        blobs.delete("avatars/a/b.png").await.unwrap();
        assert_eq!(blobs.get("avatars/a/b.png").await.unwrap(), None);
        for bad in ["../escape", "/abs", "a//b", "a/./b", "sp ace"] {
            assert!(blobs.put(bad, vec![]).await.is_err(), "{bad}");
        }
        std::fs::remove_dir_all(root).ok();
    }
}
