//! The blob store the registry uses: the filesystem under the data directory (the
//! default), or an S3-compatible bucket shared by replicas. One face for both, with
//! uploads named by id, so that the registry above never knows which it has.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use imagehub_oci::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use crate::{
    AppendError, BlobStoreError, FsBlobStore, S3BlobStore, S3Settings, StoredBlob, UploadId,
};

/// A blob's bytes as they are read.
pub type BlobBytes = Pin<Box<dyn Stream<Item = Result<Bytes, BlobStoreError>> + Send>>;

/// Bytes read from a file per chunk of a stream.
const READ_CHUNK: usize = 256 * 1024;

/// Where blobs are kept.
#[derive(Clone)]
pub enum BlobStore {
    Fs(FsBlobStore),
    S3(S3Uploads),
}

/// The S3 store, with the locks that serialise requests on one upload in this process.
#[derive(Clone)]
pub struct S3Uploads {
    store: S3BlobStore,
    locks: Arc<Mutex<std::collections::HashMap<UploadId, Arc<tokio::sync::Mutex<()>>>>>,
}

impl S3Uploads {
    async fn lock(&self, id: UploadId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock =
            self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(id).or_default().clone();
        lock.lock_owned().await
    }

    fn forget(&self, id: UploadId) {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

impl BlobStore {
    /// The filesystem store under `data_dir`, or the bucket `s3` names.
    pub async fn open(
        data_dir: &Path,
        s3: Option<&S3Settings>,
    ) -> Result<BlobStore, BlobStoreError> {
        Ok(match s3 {
            None => BlobStore::Fs(FsBlobStore::open(data_dir).await?),
            Some(settings) => BlobStore::S3(S3Uploads {
                store: S3BlobStore::open(settings)?,
                locks: Arc::default(),
            }),
        })
    }

    /// Checks the store answers: the blob folder exists, or the bucket lists.
    pub async fn ping(&self) -> Result<(), BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.ping().await,
            BlobStore::S3(s3) => s3.store.ping().await,
        }
    }

    /// A stored blob's size, or `None`.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.stat(digest).await,
            BlobStore::S3(s3) => s3.store.stat(digest).await,
        }
    }

    /// Where a client should fetch the blob itself (a presigned URL of the bucket), when
    /// the operator chose redirects.
    pub async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>, BlobStoreError> {
        match self {
            BlobStore::Fs(_) => Ok(None),
            BlobStore::S3(s3) => s3.store.redirect_url(digest).await,
        }
    }

    /// `len` bytes of a stored blob from `start`, or `None` when it is not stored.
    pub async fn read(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<Option<BlobBytes>, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => {
                let Some(mut file) = fs.open_blob(digest).await? else { return Ok(None) };
                if start > 0 {
                    file.seek(io::SeekFrom::Start(start)).await?;
                }
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
                Ok(Some(Box::pin(stream.map_err(BlobStoreError::Io))))
            }
            BlobStore::S3(s3) => {
                let found = s3.store.read_blob(digest, start, Some(start + len)).await?;
                Ok(found.map(|stream| Box::pin(stream) as BlobBytes))
            }
        }
    }

    /// A whole stored blob for reading, or `None`.
    pub async fn reader(
        &self,
        digest: &Digest,
    ) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, BlobStoreError> {
        let s3 = match self {
            BlobStore::Fs(fs) => {
                let file = fs.open_blob(digest).await?;
                return Ok(file.map(|f| Box::new(f) as Box<dyn AsyncRead + Send + Unpin>));
            }
            BlobStore::S3(s3) => s3,
        };
        // The whole object in one request: no size needed first.
        let Some(stream) = s3.store.read_blob(digest, 0, None).await? else { return Ok(None) };
        let stream = stream.map_err(|e| io::Error::other(e.to_string()));
        Ok(Some(Box::new(tokio_util::io::StreamReader::new(stream))))
    }

    /// A whole stored blob as a blocking reader, for a blocking thread; `handle` is the
    /// runtime that drives the bucket's requests.
    pub fn blocking_reader(
        &self,
        digest: &Digest,
        handle: &tokio::runtime::Handle,
    ) -> io::Result<Box<dyn io::Read + Send>> {
        match self {
            BlobStore::Fs(fs) => Ok(Box::new(std::fs::File::open(fs.blob_path(digest))?)),
            BlobStore::S3(_) => {
                let reader = handle
                    .block_on(self.reader(digest))
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, digest.to_string()))?;
                Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(reader, handle.clone())))
            }
        }
    }

    /// A small stored blob whole (a config), at most `max` bytes.
    pub async fn read_to_vec(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, BlobStoreError> {
        let missing =
            || BlobStoreError::Io(io::Error::new(io::ErrorKind::NotFound, digest.to_string()));
        let mut reader = self.reader(digest).await?.ok_or_else(missing)?.take(max);
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    /// Stores a whole blob from `body`, only if its bytes have `digest` (and
    /// `expected_len`, when given); its size. Nothing is left behind on a failure.
    pub async fn put_blob<S, E>(
        &self,
        digest: &Digest,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        if let BlobStore::S3(s3) = self {
            // Straight to its key, as multipart parts: no upload state, no copy.
            return s3.store.put_blob(digest, body, expected_len).await;
        }
        let id = self.create_upload().await?;
        let stored = match self.append(id, None, body, expected_len).await {
            Ok(_) => self.commit_upload(id, digest).await.map_err(AppendError::Store),
            Err(e) => Err(e),
        };
        if stored.is_err() {
            self.delete_upload(id).await?;
        }
        stored
    }

    // ---- uploads ----

    pub async fn create_upload(&self) -> Result<UploadId, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => Ok(fs.create_upload().await?.id()),
            BlobStore::S3(s3) => Ok(s3.store.create_upload()),
        }
    }

    /// Bytes an upload received so far.
    pub async fn upload_len(&self, id: UploadId) -> Result<u64, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => Ok(fs.open_upload(id).await?.len()),
            BlobStore::S3(s3) => {
                let _lock = s3.lock(id).await;
                s3.store.upload_len(id).await
            }
        }
    }

    /// Appends `body` to an upload, which must hold `start` bytes when `start` is given
    /// (else nothing is appended and [`AppendError::OutOfOrder`] says how many it holds).
    /// On any failure the upload is left as it was. The new length.
    pub async fn append<S, E>(
        &self,
        id: UploadId,
        start: Option<u64>,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        match self {
            BlobStore::Fs(fs) => {
                let mut upload = fs.open_upload(id).await?;
                if start.is_some_and(|start| start != upload.len()) {
                    return Err(AppendError::OutOfOrder { current_len: upload.len() });
                }
                upload.append(body, expected_len).await
            }
            BlobStore::S3(s3) => {
                let _lock = s3.lock(id).await;
                s3.store.append(id, start, body, expected_len).await
            }
        }
    }

    /// [`BlobStore::append`] then [`BlobStore::commit_upload`], in one step; in a bucket,
    /// an upload that has received nothing and whose `body` fits in one part goes to its
    /// key in one request.
    pub async fn finish_upload<S, E>(
        &self,
        id: UploadId,
        body: S,
        expected_len: Option<u64>,
        expected: &Digest,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        match self {
            BlobStore::Fs(_) => {
                self.append(id, None, body, expected_len).await?;
                self.commit_upload(id, expected).await.map_err(AppendError::Store)
            }
            BlobStore::S3(s3) => {
                let lock = s3.lock(id).await;
                let size = s3.store.finish_upload(id, body, expected_len, expected).await?;
                drop(lock);
                s3.forget(id);
                Ok(size)
            }
        }
    }

    /// Verifies an upload against `expected` and stores it as that blob; its size. On a
    /// mismatch the upload is left as it was.
    pub async fn commit_upload(
        &self,
        id: UploadId,
        expected: &Digest,
    ) -> Result<u64, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.commit_upload(fs.open_upload(id).await?, expected).await,
            BlobStore::S3(s3) => {
                let _lock = s3.lock(id).await;
                let size = s3.store.commit_upload(id, expected).await?;
                s3.forget(id);
                Ok(size)
            }
        }
    }

    /// Deletes an upload and what it received; a missing upload is not an error.
    pub async fn delete_upload(&self, id: UploadId) -> Result<(), BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => match fs.open_upload(id).await {
                Ok(upload) => fs.delete_upload(upload).await,
                Err(BlobStoreError::UploadNotFound(_)) => Ok(()),
                Err(e) => Err(e),
            },
            BlobStore::S3(s3) => {
                let _lock = s3.lock(id).await;
                s3.store.delete_upload(id).await?;
                s3.forget(id);
                Ok(())
            }
        }
    }

    // ---- garbage collection ----

    pub async fn walk_blobs(&self) -> Result<Vec<StoredBlob>, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.walk_blobs().await,
            BlobStore::S3(s3) => s3.store.walk_blobs().await,
        }
    }

    pub async fn delete_blob_written_before(
        &self,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<u64, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.delete_blob_written_before(digest, cutoff).await,
            BlobStore::S3(s3) => s3.store.delete_blob_written_before(digest, cutoff).await,
        }
    }

    /// Whether an upload that has received nothing is kept in the store (an empty file),
    /// or is nothing there until bytes arrive (a bucket).
    pub fn keeps_empty_uploads(&self) -> bool {
        matches!(self, BlobStore::Fs(_))
    }

    /// The names of the uploads kept (their ids, or whatever else lies there).
    pub async fn upload_names(&self) -> Result<Vec<String>, BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.upload_files().await,
            BlobStore::S3(s3) => s3.store.upload_ids().await,
        }
    }

    /// Deletes an upload by name, whether or not a session holds it.
    pub async fn delete_upload_named(&self, name: &str) -> Result<(), BlobStoreError> {
        match self {
            BlobStore::Fs(fs) => fs.delete_upload_file(name).await,
            BlobStore::S3(s3) => match name.parse::<UploadId>() {
                Ok(id) => {
                    s3.store.delete_upload(id).await?;
                    s3.forget(id);
                    Ok(())
                }
                Err(_) => Ok(()),
            },
        }
    }
}

/// What [`copy_blobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs copied now, and their bytes.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Blobs the target held already with the same size.
    pub present: u64,
}

/// Copies every blob of `from` into `to`, `parallel` at a time, each verified against its
/// digest as it is written (the target stores nothing whose bytes do not match). Blobs
/// the target holds already are skipped, so an interrupted copy is resumed by running
/// it again. `progress` hears each blob done.
pub async fn copy_blobs(
    from: &BlobStore,
    to: &BlobStore,
    parallel: usize,
    progress: &(dyn Fn(&Digest, u64) + Sync),
) -> Result<CopyReport, BlobStoreError> {
    let blobs = from.walk_blobs().await?;
    let results: Vec<(bool, u64)> = futures_util::stream::iter(blobs)
        .map(|blob| async move {
            if to.stat(&blob.digest).await? == Some(blob.size) {
                progress(&blob.digest, blob.size);
                return Ok::<_, BlobStoreError>((false, blob.size));
            }
            let bytes = from.read(&blob.digest, 0, blob.size).await?.ok_or_else(|| {
                BlobStoreError::Io(io::Error::new(io::ErrorKind::NotFound, blob.digest.to_string()))
            })?;
            let size =
                to.put_blob(&blob.digest, bytes, Some(blob.size)).await.map_err(|e| match e {
                    AppendError::Store(e) => e,
                    other => {
                        BlobStoreError::Io(io::Error::other(format!("{}: {other}", blob.digest)))
                    }
                })?;
            progress(&blob.digest, size);
            Ok((true, size))
        })
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await?;
    let mut report = CopyReport::default();
    for (copied, size) in results {
        match copied {
            true => {
                (report.copied, report.copied_bytes) =
                    (report.copied + 1, report.copied_bytes + size)
            }
            false => report.present += 1,
        }
    }
    Ok(report)
}
