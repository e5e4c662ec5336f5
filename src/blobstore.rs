//! Content-addressed blob files under `state_dir/blobs`: an upload is streamed to
//! a temporary file, hashed (SHA-256) and size-checked on the way, fsynced, and
//! renamed to `sha256-<hex>`; only then may the caller register it in the store,
//! so a blob is never visible half-written. Temporary files left by a crash are
//! removed at start. The same bytes always get the same Id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body::Body;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::fsutil::{create_private_dir, sync_dir};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload is over the {0}-byte limit ([limits] blob_bytes)")]
    TooLarge(u64),
    #[error("upload stalled: no data for {0} s")]
    Stalled(u64),
    #[error("upload did not complete: {0}; nothing was stored, send it again")]
    Incomplete(String),
    #[error("storing the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// `sha256:<64 lowercase hex>` → the hex part.
pub fn parse_id(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

#[derive(Clone)]
pub struct BlobFiles {
    dir: PathBuf,
}

impl BlobFiles {
    /// Opens (creating) the blob folder and clears temporary files of uploads a
    /// crash interrupted.
    pub fn open(state_dir: &Path) -> std::io::Result<BlobFiles> {
        let dir = state_dir.join("blobs");
        create_private_dir(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".upload-") {
                tracing::info!(file = %entry.path().display(), "removing an interrupted upload");
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(BlobFiles { dir })
    }

    /// Where the bytes of blob `id` live.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        parse_id(id).map(|hex| self.dir.join(format!("sha256-{hex}")))
    }

    /// Streams `body` to disk. Returns the Id and size once the file is durable.
    pub async fn receive<B>(
        &self,
        body: B,
        cap: u64,
        idle: Duration,
    ) -> Result<(String, u64), UploadError>
    where
        B: Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let tmp = self
            .dir
            .join(format!(".upload-{:016x}", rand::random::<u64>()));
        let result = self.receive_into(&tmp, body, cap, idle).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn receive_into<B>(
        &self,
        tmp: &Path,
        mut body: B,
        cap: u64,
        idle: Duration,
    ) -> Result<(String, u64), UploadError>
    where
        B: Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(tmp).await?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return Err(UploadError::Stalled(idle.as_secs())),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(UploadError::Incomplete(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            size += data.len() as u64;
            if size > cap {
                return Err(UploadError::TooLarge(cap));
            }
            hash.update(&data);
            file.write_all(&data).await?;
        }
        file.sync_all().await?;
        drop(file);
        let id = format!("sha256:{}", hex::encode(hash.finalize()));
        let dest = self.path(&id).expect("a fresh id parses");
        if tokio::fs::try_exists(&dest).await? {
            tokio::fs::remove_file(tmp).await?;
        } else {
            tokio::fs::rename(tmp, &dest).await?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || sync_dir(&dir))
                .await
                .map_err(std::io::Error::other)??;
        }
        Ok((id, size))
    }

    /// Removes a blob's file (after its row is gone).
    pub async fn remove(&self, id: &str) -> std::io::Result<()> {
        match self.path(id) {
            Some(p) => match tokio::fs::remove_file(p).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn same_bytes_same_id_and_durable_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let idle = Duration::from_secs(5);
        let (a, n) = files
            .receive(Full::new(Bytes::from_static(b"test")), 100, idle)
            .await
            .unwrap();
        let (b, _) = files
            .receive(Full::new(Bytes::from_static(b"test")), 100, idle)
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(n, 4);
        assert_eq!(
            a,
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(std::fs::read(files.path(&a).unwrap()).unwrap(), b"test");
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            1
        );
    }

    #[tokio::test]
    async fn over_cap_and_broken_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let idle = Duration::from_secs(5);
        let e = files
            .receive(Full::new(Bytes::from(vec![0u8; 101])), 100, idle)
            .await
            .unwrap_err();
        assert!(matches!(e, UploadError::TooLarge(100)));
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"part"))),
            Err(std::io::Error::other("connection reset")),
        ];
        let body = StreamBody::new(tokio_stream_iter(chunks));
        let e = files.receive(body, 100, idle).await.unwrap_err();
        assert!(matches!(e, UploadError::Incomplete(_)), "{e}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            0
        );
    }

    #[test]
    fn stale_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/.upload-1234"), b"half").unwrap();
        BlobFiles::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            0
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(parse_id(
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        )
        .is_some());
        assert!(parse_id("sha256:9F86").is_none());
        assert!(parse_id("s3://bucket/update.bin").is_none());
        assert!(parse_id("sha256:../../etc/passwd").is_none());
    }

    /// A stream over a fixed list of items.
    fn tokio_stream_iter<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Unpin {
        struct Iter<T>(std::vec::IntoIter<T>);
        impl<T: Unpin> futures_core::Stream for Iter<T> {
            type Item = T;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<T>> {
                std::task::Poll::Ready(self.0.next())
            }
        }
        Iter(items.into_iter())
    }
}
