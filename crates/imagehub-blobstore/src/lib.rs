//! Content-addressed blob storage on the filesystem, and resumable uploads that hash
//! their bytes in the same pass that writes them.
//!
//! This crate knows bytes and digests only: no repositories, no HTTP, no database.
//! It must not depend on any imagehub crate but `imagehub-oci`.
//!
//! On-disk layout under the data directory:
//!
//! ```text
//! <data_dir>/
//! ├── blobs/
//! │   ├── sha256/
//! │   │   └── ab/
//! │   │       └── ab12…ef        a complete blob, named by its digest, never rewritten
//! │   └── sha512/…
//! └── uploads/
//!     └── <uuid>                 bytes received so far for one upload session
//! ```
//!
//! Crash safety: a blob only ever appears under `blobs/` by `rename` of a fully written,
//! verified and fsynced upload file, followed by an fsync of the directory, so a blob
//! path either holds the whole content or does not exist.

mod upload;

use std::io;
use std::path::{Path, PathBuf};

use imagehub_oci::{Algorithm, Digest};

pub use upload::{AppendError, Upload, UploadId};

use upload::UploadTable;

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error("upload {0} does not exist")]
    UploadNotFound(UploadId),
    #[error("uploaded content has digest {actual}, not the expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob store I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// The filesystem blob store rooted at a data directory.
#[derive(Clone)]
pub struct FsBlobStore {
    blobs_dir: PathBuf,
    uploads_dir: PathBuf,
    uploads: UploadTable,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store under `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<FsBlobStore, BlobStoreError> {
        let store = FsBlobStore {
            blobs_dir: data_dir.join("blobs"),
            uploads_dir: data_dir.join("uploads"),
            uploads: UploadTable::default(),
        };
        tokio::fs::create_dir_all(&store.blobs_dir).await?;
        tokio::fs::create_dir_all(&store.uploads_dir).await?;
        Ok(store)
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir
            .join(digest.algorithm().as_str())
            .join(&digest.hex()[..2])
            .join(digest.hex())
    }

    /// The size of a stored blob, or `None` when it is not stored.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobStoreError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a stored blob for reading, or `None` when it is not stored.
    pub async fn open_blob(&self, digest: &Digest) -> Result<Option<tokio::fs::File>, BlobStoreError> {
        match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a new, empty upload.
    pub async fn create_upload(&self) -> Result<Upload, BlobStoreError> {
        self.checkout(UploadId::new(), true).await
    }

    /// Reopens an upload by id, e.g. for the next chunk, rehashing what was received.
    pub async fn open_upload(&self, id: UploadId) -> Result<Upload, BlobStoreError> {
        self.checkout(id, false).await
    }

    /// Deletes an upload's received bytes; deleting a missing upload is not an error.
    pub async fn delete_upload(&self, upload: Upload) -> Result<(), BlobStoreError> {
        self.forget(upload.id());
        remove_if_exists(&upload::upload_path(&self.uploads_dir, upload.id())).await
    }

    /// Verifies that `upload` hashes to `expected`, makes it durable and moves it to its
    /// content-addressed place. Returns the blob's size. On a mismatch the upload is
    /// left as it was.
    pub async fn commit_upload(&self, upload: Upload, expected: &Digest) -> Result<u64, BlobStoreError> {
        let actual = upload.digest(expected.algorithm()).await?;
        if &actual != expected {
            return Err(BlobStoreError::DigestMismatch { expected: expected.clone(), actual });
        }
        let size = upload.len();
        let target = self.blob_path(expected);
        let parent = target.parent().expect("blob paths have a parent").to_path_buf();
        let source = upload.into_durable_path().await?;
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::create_dir_all(&parent)?;
            // Same content under the same name: a concurrent commit of this blob can
            // replace ours or we theirs, and either way the path holds the whole blob.
            std::fs::rename(&source, &target)?;
            std::fs::File::open(&parent)?.sync_all()
        })
        .await
        .expect("blob commit task does not panic")?;
        Ok(size)
    }

    /// Deletes a stored blob; deleting a missing blob is not an error.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), BlobStoreError> {
        remove_if_exists(&self.blob_path(digest)).await
    }

    /// Hashes a stored file with `algorithm`, streaming it (used for sha512 uploads, whose
    /// algorithm is only known when the upload is finished).
    async fn hash_file(path: PathBuf, algorithm: Algorithm) -> Result<Digest, BlobStoreError> {
        tokio::task::spawn_blocking(move || -> io::Result<Digest> {
            use std::io::Read;
            let mut file = std::fs::File::open(path)?;
            let mut hasher = imagehub_oci::Hasher::new(algorithm);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok(hasher.finish());
                }
                hasher.update(&buf[..n]);
            }
        })
        .await
        .expect("hash task does not panic")
        .map_err(Into::into)
    }
}

async fn remove_if_exists(path: &Path) -> Result<(), BlobStoreError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
