//! Upload sessions: bytes appended to a file under `uploads/` while a SHA-256 state is
//! kept in memory, so chunks are hashed once, as they are written.
//!
//! Requests on one upload are serialised by a per-upload lock; the hash state survives
//! between requests in memory and is rebuilt from the file after a restart.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use imagehub_oci::{Algorithm, Digest, Hasher};
use tokio::sync::OwnedMutexGuard;

use crate::{BlobStoreError, FsBlobStore};

/// The id of an upload session: a UUID, so it can never name a path outside `uploads/`;
/// version 7, so it tells when the session began (see [`UploadId::started_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(uuid::Uuid);

impl UploadId {
    pub(crate) fn new() -> UploadId {
        UploadId(uuid::Uuid::now_v7())
    }

    /// When the session began, read from the id; `None` for ids made before they were
    /// version 7.
    pub fn started_at(&self) -> Option<std::time::SystemTime> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        Some(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
    }
}

impl FromStr for UploadId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(UploadId)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Hash state of one upload; `hasher` is `None` until rebuilt after a restart.
#[derive(Default)]
pub(crate) struct UploadState {
    len: u64,
    hasher: Option<Hasher>,
}

/// The in-memory states of uploads, keyed by id.
pub(crate) type UploadTable = Arc<Mutex<HashMap<UploadId, Arc<tokio::sync::Mutex<UploadState>>>>>;

/// Why appending to an upload failed; in every case the upload is left as it was before.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("reading the request body failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("received {actual} bytes where {expected} were declared")]
    LengthMismatch { expected: u64, actual: u64 },
    /// The chunk does not start where the upload ends.
    #[error("the upload holds {current_len} bytes; a chunk must start there")]
    OutOfOrder { current_len: u64 },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

/// An upload session checked out for one request; holds the upload's lock until dropped.
pub struct Upload {
    id: UploadId,
    path: PathBuf,
    state: OwnedMutexGuard<UploadState>,
    table: UploadTable,
}

impl FsBlobStore {
    pub(crate) async fn checkout(
        &self,
        id: UploadId,
        create: bool,
    ) -> Result<Upload, BlobStoreError> {
        let path = upload_path(&self.uploads_dir, id);
        if create {
            tokio::fs::File::create(&path).await?;
        }
        let entry = {
            let mut table = self.uploads.lock().expect("upload table lock is not poisoned");
            let entry = table.entry(id).or_default();
            Arc::clone(entry)
        };
        let mut state = entry.lock_owned().await;
        if state.hasher.is_none() {
            match rehash(path.clone()).await {
                Ok((len, hasher)) => *state = UploadState { len, hasher: Some(hasher) },
                Err(e) => {
                    drop(state);
                    self.forget(id);
                    return Err(match e.kind() {
                        io::ErrorKind::NotFound => BlobStoreError::UploadNotFound(id),
                        _ => e.into(),
                    });
                }
            }
        }
        Ok(Upload { id, path, state, table: Arc::clone(&self.uploads) })
    }

    pub(crate) fn forget(&self, id: UploadId) {
        self.uploads.lock().expect("upload table lock is not poisoned").remove(&id);
    }
}

/// Reads an upload file from the start to rebuild its length and SHA-256 state.
async fn rehash(path: PathBuf) -> io::Result<(u64, Hasher)> {
    tokio::task::spawn_blocking(move || hash_file(&path, Hasher::new(Algorithm::Sha256)))
        .await
        .expect("rehash task does not panic")
}

/// Feeds a whole file to `hasher`, returning the file's length and the hasher.
pub(crate) fn hash_file(path: &Path, mut hasher: Hasher) -> io::Result<(u64, Hasher)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((len, hasher));
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// Chunks in flight between the receiving task and each of the writer and hasher
/// threads; with hyper's frames of at most a few hundred KiB this bounds memory per
/// upload to a few MiB whatever the blob size.
const PIPELINE_DEPTH: usize = 16;

/// Written bytes after which the writer asks a flusher thread to write back what it has
/// so far, so the disk works while the body is still arriving and the fsync before the
/// final rename only waits for the tail of a large blob.
const FLUSH_EVERY: u64 = 8 * 1024 * 1024;

/// Writes chunks at `start` onward; returns how many bytes were written.
fn write_chunks(
    path: &Path,
    start: u64,
    mut chunks: tokio::sync::mpsc::Receiver<Bytes>,
) -> io::Result<u64> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(io::SeekFrom::Start(start))?;
    let mut flusher: Option<Flusher> = None;
    let (mut written, mut unflushed) = (0u64, 0u64);
    while let Some(chunk) = chunks.blocking_recv() {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
        unflushed += chunk.len() as u64;
        if unflushed >= FLUSH_EVERY {
            match &flusher {
                Some(flusher) => flusher.request(),
                None => flusher = Some(Flusher::start(file.try_clone()?)),
            }
            unflushed = 0;
        }
    }
    if let Some(flusher) = flusher {
        flusher.finish()?;
    }
    Ok(written)
}

/// A thread that runs `fdatasync` on request, beside the writer. Requests made while a
/// flush runs fold into the next one.
struct Flusher {
    requests: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

impl Flusher {
    fn start(file: std::fs::File) -> Flusher {
        let (requests, pending) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            file.sync_data()?;
            while pending.recv().is_ok() {
                file.sync_data()?;
            }
            Ok(())
        });
        Flusher { requests, thread }
    }

    fn request(&self) {
        // A full channel means a flush is already queued; it will cover these bytes.
        let _ = self.requests.try_send(());
    }

    fn finish(self) -> io::Result<()> {
        drop(self.requests);
        self.thread.join().unwrap_or_else(|_| Err(io::Error::other("flusher thread panicked")))
    }
}

fn hash_chunks(mut hasher: Hasher, mut chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Hasher {
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
    }
    hasher
}

impl Upload {
    pub fn id(&self) -> UploadId {
        self.id
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.state.len
    }

    pub fn is_empty(&self) -> bool {
        self.state.len == 0
    }

    /// Appends a request body, hashing it on the way. When `expected_len` is given and the
    /// body has another length, nothing is kept. Returns the new total length.
    pub async fn append<S, E>(
        &mut self,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let start_len = self.state.len;
        let hasher = self.state.hasher.clone().expect("checked-out uploads have a hasher");
        // Receiving (here), writing and hashing run side by side: each chunk goes to a
        // writer thread and a hasher thread, so the slowest of the three sets the pace.
        let (write_tx, write_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let (hash_tx, hash_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let writer = tokio::task::spawn_blocking({
            let path = self.path.clone();
            move || write_chunks(&path, start_len, write_rx)
        });
        let hashing = tokio::task::spawn_blocking(move || hash_chunks(hasher, hash_rx));
        let mut body = std::pin::pin!(body);
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    let sent = write_tx.send(bytes.clone()).await.is_ok()
                        && hash_tx.send(bytes).await.is_ok();
                    if !sent {
                        break; // The writer failed; its error is reported below.
                    }
                }
                Err(e) => {
                    body_error = Some(AppendError::Body(Box::new(e)));
                    break;
                }
            }
        }
        drop((write_tx, hash_tx));
        let hasher = hashing.await.expect("upload hasher does not panic");
        let outcome =
            writer.await.expect("upload writer does not panic").map(|written| (written, hasher));
        let error = match (body_error, outcome) {
            (Some(e), _) => e,
            (None, Err(e)) => AppendError::Store(e.into()),
            (None, Ok((written, _))) if expected_len.is_some_and(|n| n != written) => {
                AppendError::LengthMismatch { expected: expected_len.unwrap_or(0), actual: written }
            }
            (None, Ok((written, hasher))) => {
                self.state.len = start_len + written;
                self.state.hasher = Some(hasher);
                return Ok(self.state.len);
            }
        };
        self.truncate_to(start_len).await?;
        Err(error)
    }

    async fn truncate_to(&self, len: u64) -> Result<(), BlobStoreError> {
        let file = tokio::fs::OpenOptions::new().write(true).open(&self.path).await?;
        file.set_len(len).await?;
        Ok(())
    }

    /// The digest of everything received, with `algorithm`.
    pub(crate) async fn digest(&self, algorithm: Algorithm) -> Result<Digest, BlobStoreError> {
        match algorithm {
            Algorithm::Sha256 => {
                Ok(self.state.hasher.clone().expect("checked-out uploads have a hasher").finish())
            }
            other => FsBlobStore::hash_file(self.path.clone(), other).await,
        }
    }

    /// Fsyncs the upload file and ends the session, returning the file's path.
    pub(crate) async fn into_durable_path(self) -> Result<PathBuf, BlobStoreError> {
        let path = self.path.clone();
        let file = tokio::fs::File::open(&path).await?;
        file.sync_all().await?;
        self.table.lock().expect("upload table lock is not poisoned").remove(&self.id);
        Ok(path)
    }
}

pub(crate) fn upload_path(dir: &Path, id: UploadId) -> PathBuf {
    dir.join(id.to_string())
}
