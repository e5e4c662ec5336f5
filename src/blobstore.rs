//! Content-addressed blob files under `state_dir/blobs`: an upload is streamed to
//! a temporary file, hashed (SHA-256) and size-checked on the way, fsynced, and
//! renamed to `sha256-<hex>`; only then may the caller register it in the store,
//! so a blob is never visible half-written. The same bytes always get the same Id.
//!
//! Publishing (rename, then the row) and deleting (the row, then the file) of one
//! Id run under that Id's lock (`lock`), so they never interleave: without it, an
//! upload that found the file present could insert its row just after a delete
//! removed the file. A crash between the two steps leaves a file with no row;
//! start-up (`reconcile`) removes such files and reports rows with no file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// Locks per Id: striped (an Id's first hex digits pick one of these), so
/// memory is fixed; two Ids sharing a stripe only wait for each other.
const LOCK_STRIPES: usize = 256;

#[derive(Clone)]
pub struct BlobFiles {
    dir: PathBuf,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

/// Held while one Id is published or deleted.
pub struct BlobLock<'a> {
    id: String,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

/// An upload that is durable on disk but not yet visible under its Id. Dropped
/// unpublished, its temporary file is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    pub id: String,
    pub size: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// What start-up found comparing blob rows with blob files.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Files with no row, removed: an upload cut off between its rename and its
    /// row, or a delete cut off between its row and its file.
    pub removed: Vec<String>,
    /// Rows whose file is missing: such a blob cannot be delivered.
    pub missing: Vec<String>,
}

/// Test hook, debug builds only: with `SK_TEST_PAUSE_AFTER_RENAME_SECS=N` set,
/// an upload sleeps N s between renaming its file into place and inserting its
/// row, so a test can kill -9 the process exactly there. (Not `STATIONKEEPER_*`:
/// those are config keys.)
async fn test_pause_after_rename() {
    if !cfg!(debug_assertions) {
        return;
    }
    if let Some(secs) = std::env::var("SK_TEST_PAUSE_AFTER_RENAME_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(
            secs,
            "test hook: pausing between a blob's rename and its row"
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
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
        Ok(BlobFiles {
            dir,
            locks: Arc::new((0..LOCK_STRIPES).map(|_| Default::default()).collect()),
        })
    }

    /// Takes the lock of blob `id`: hold it across publishing a file and
    /// inserting its row, or across deleting the row and the file.
    pub async fn lock(&self, id: &str) -> BlobLock<'_> {
        let stripe = parse_id(id)
            .and_then(|hex| usize::from_str_radix(&hex[..2], 16).ok())
            .unwrap_or(0)
            % LOCK_STRIPES;
        BlobLock {
            id: id.to_string(),
            _guard: self.locks[stripe].lock().await,
        }
    }

    /// Makes a staged upload visible under its Id (renamed into place, the
    /// folder fsynced), or drops it if the same bytes are already there.
    pub async fn publish(&self, staged: Staged, lock: &BlobLock<'_>) -> std::io::Result<()> {
        assert_eq!(lock.id, staged.id, "publish holds the lock of its own Id");
        let dest = self.path(&staged.id).expect("a fresh id parses");
        if !tokio::fs::try_exists(&dest).await? {
            tokio::fs::rename(&staged.tmp, &dest).await?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || sync_dir(&dir))
                .await
                .map_err(std::io::Error::other)??;
        }
        drop(staged);
        test_pause_after_rename().await;
        Ok(())
    }

    /// The Ids of the blob files present.
    fn file_ids(&self) -> std::io::Result<HashSet<String>> {
        let mut ids = HashSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_prefix("sha256-") {
                let id = format!("sha256:{hex}");
                if parse_id(&id).is_some() {
                    ids.insert(id);
                }
            }
        }
        Ok(ids)
    }

    /// At start, before anything serves: removes blob files that have no row
    /// (`rows`), and lists rows whose file is missing. Orphans are removed, not
    /// adopted: the one crash that leaves a complete file without a row and
    /// whose blob was wanted is an upload that never answered 201, and its
    /// client sends it again (the same bytes get the same Id); the other is a
    /// delete the operator asked for, which adopting would undo. It assumes no
    /// other process is uploading into the same folder at that moment (one server
    /// per `state_dir` today); several processes sharing one would need a grace
    /// period on the file's age here.
    pub fn reconcile(&self, rows: &HashSet<String>) -> std::io::Result<Reconciled> {
        let files = self.file_ids()?;
        let mut out = Reconciled::default();
        for id in files.difference(rows) {
            let path = self.path(id).expect("listed ids parse");
            std::fs::remove_file(&path)?;
            out.removed.push(id.clone());
        }
        out.missing = rows.difference(&files).cloned().collect();
        out.removed.sort();
        out.missing.sort();
        Ok(out)
    }

    /// Whether blob `id`'s file is there.
    pub async fn exists(&self, id: &str) -> bool {
        match self.path(id) {
            Some(p) => tokio::fs::try_exists(p).await.unwrap_or(false),
            None => false,
        }
    }

    /// Where the bytes of blob `id` live.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        parse_id(id).map(|hex| self.dir.join(format!("sha256-{hex}")))
    }

    /// Streams `body` to a temporary file, durable when this returns; `publish`
    /// (under the Id's `lock`) makes it visible.
    pub async fn receive<B>(&self, body: B, cap: u64, idle: Duration) -> Result<Staged, UploadError>
    where
        B: Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut staged = Staged {
            tmp: self
                .dir
                .join(format!(".upload-{:016x}", rand::random::<u64>())),
            id: String::new(),
            size: 0,
        };
        // On any error `staged` is dropped, which removes the temporary file.
        let (id, size) = receive_into(&staged.tmp, body, cap, idle).await?;
        staged.id = id;
        staged.size = size;
        Ok(staged)
    }

    /// Removes a blob's file (after its row is gone), under the Id's `lock`.
    pub async fn remove(&self, id: &str, lock: &BlobLock<'_>) -> std::io::Result<()> {
        assert_eq!(lock.id, id, "remove holds the lock of its own Id");
        match self.path(id) {
            Some(p) => match tokio::fs::remove_file(p).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// Streams, hashes and fsyncs `body` into `tmp`; returns the Id and size.
async fn receive_into<B>(
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
    Ok((format!("sha256:{}", hex::encode(hash.finalize())), size))
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
        let mut ids = Vec::new();
        for _ in 0..2 {
            let staged = files
                .receive(Full::new(Bytes::from_static(b"test")), 100, idle)
                .await
                .unwrap();
            assert_eq!(staged.size, 4);
            let id = staged.id.clone();
            files.publish(staged, &files.lock(&id).await).await.unwrap();
            ids.push(id);
        }
        let (a, b) = (ids[0].clone(), ids[1].clone());
        assert_eq!(a, b);
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

    #[tokio::test]
    async fn an_unpublished_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let staged = files
            .receive(
                Full::new(Bytes::from_static(b"x")),
                100,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        drop(staged);
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            0
        );
    }

    #[test]
    fn reconcile_removes_files_without_rows_and_lists_rows_without_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let (kept, orphan, gone) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
            format!("sha256:{}", "c".repeat(64)),
        );
        for id in [&kept, &orphan] {
            std::fs::write(files.path(id).unwrap(), b"bytes").unwrap();
        }
        std::fs::write(dir.path().join("blobs/README"), b"not a blob").unwrap();
        let rows: HashSet<String> = [kept.clone(), gone.clone()].into();
        let r = files.reconcile(&rows).unwrap();
        assert_eq!(r.removed, vec![orphan.clone()]);
        assert_eq!(r.missing, vec![gone]);
        assert!(files.path(&kept).unwrap().exists());
        assert!(!files.path(&orphan).unwrap().exists());
        assert!(
            dir.path().join("blobs/README").exists(),
            "foreign files stay"
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
