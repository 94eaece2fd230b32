//! Content-addressed blob storage on the filesystem (this file, `upload.rs`) or in an
//! S3-compatible bucket (`s3.rs`), behind one face (`store.rs`), and resumable uploads
//! that hash their bytes in the same pass that writes them.
//!
//! This crate knows bytes and digests only: no repositories, no HTTP, no database.
//! It must not depend on any imagehub crate but `imagehub-oci`.
//!
//! On-disk layout of the filesystem store under the data directory:
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

mod s3;
mod store;
mod upload;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use imagehub_oci::{Algorithm, Digest};

pub use s3::{S3BlobStore, S3Settings};
pub use store::{BlobBytes, BlobStore, CopyReport, copy_blobs};
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
        self.blobs_dir.join(digest.algorithm().as_str()).join(&digest.hex()[..2]).join(digest.hex())
    }

    /// The size of a stored blob, or `None` when it is not stored.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobStoreError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the blob folder is there.
    pub async fn ping(&self) -> Result<(), BlobStoreError> {
        tokio::fs::metadata(&self.blobs_dir).await?;
        Ok(())
    }

    /// Opens a stored blob for reading, or `None` when it is not stored.
    pub async fn open_blob(
        &self,
        digest: &Digest,
    ) -> Result<Option<tokio::fs::File>, BlobStoreError> {
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
    pub async fn commit_upload(
        &self,
        upload: Upload,
        expected: &Digest,
    ) -> Result<u64, BlobStoreError> {
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
        let hashed = tokio::task::spawn_blocking(move || {
            upload::hash_file(&path, imagehub_oci::Hasher::new(algorithm))
        });
        let (_, hasher) = hashed.await.expect("hash task does not panic")?;
        Ok(hasher.finish())
    }
}

/// A file found under `blobs/` by a walk (garbage collection only; listings never walk).
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: SystemTime,
}

impl FsBlobStore {
    /// Every blob file on disk. Files whose names are not digests are skipped.
    pub async fn walk_blobs(&self) -> Result<Vec<StoredBlob>, BlobStoreError> {
        let root = self.blobs_dir.clone();
        let walk = move || -> io::Result<Vec<StoredBlob>> {
            let mut found = Vec::new();
            for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
                let dir = root.join(algorithm.as_str());
                for prefix in read_dir_if_exists(&dir)? {
                    for entry in read_dir_if_exists(&prefix?.path())? {
                        let entry = entry?;
                        let name = entry.file_name();
                        let Ok(digest) =
                            format!("{}:{}", algorithm.as_str(), name.to_string_lossy()).parse()
                        else {
                            continue;
                        };
                        let meta = entry.metadata()?;
                        found.push(StoredBlob {
                            digest,
                            size: meta.len(),
                            modified: meta.modified()?,
                        });
                    }
                }
            }
            Ok(found)
        };
        Ok(tokio::task::spawn_blocking(walk).await.expect("blob walk does not panic")?)
    }

    /// Deletes a blob file only if it was last written before `cutoff`: a file written
    /// since then belongs to an upload that just committed the same content again.
    /// Returns the bytes freed.
    pub async fn delete_blob_written_before(
        &self,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<u64, BlobStoreError> {
        let path = self.blob_path(digest);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        if meta.modified()? >= cutoff {
            return Ok(0);
        }
        remove_if_exists(&path).await?;
        Ok(meta.len())
    }

    /// Ids of the upload files on disk.
    pub async fn upload_files(&self) -> Result<Vec<String>, BlobStoreError> {
        let mut ids = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.uploads_dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            ids.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(ids)
    }

    /// Deletes an upload file by name, whether or not a session holds it.
    pub async fn delete_upload_file(&self, name: &str) -> Result<(), BlobStoreError> {
        if let Ok(id) = name.parse::<UploadId>() {
            self.forget(id);
        }
        remove_if_exists(&self.uploads_dir.join(name)).await
    }
}

fn read_dir_if_exists(
    dir: &Path,
) -> io::Result<Box<dyn Iterator<Item = io::Result<std::fs::DirEntry>>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

async fn remove_if_exists(path: &Path) -> Result<(), BlobStoreError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::stream;
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn store() -> (tempfile::TempDir, FsBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        (dir, store)
    }

    /// A request body of `chunks`.
    fn body(chunks: &[&[u8]]) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> {
        stream::iter(chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>())
    }

    fn sha256(data: &[u8]) -> Digest {
        let mut hasher = imagehub_oci::Hasher::new(Algorithm::Sha256);
        hasher.update(data);
        hasher.finish()
    }

    async fn read_blob(store: &FsBlobStore, digest: &Digest) -> Vec<u8> {
        let mut file = store.open_blob(digest).await.unwrap().expect("the blob exists");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn chunks_resumed_across_checkouts_commit_under_their_digest() {
        let (_dir, store) = store().await;
        let mut upload = store.create_upload().await.unwrap();
        let id = upload.id();
        assert_eq!(upload.append(body(&[b"hello ", b"wor"]), Some(9)).await.unwrap(), 9);
        drop(upload);
        // A later request reopens it: length and hash state are rebuilt from the file.
        let mut upload = store.open_upload(id).await.unwrap();
        assert_eq!(upload.len(), 9);
        upload.append(body(&[b"ld"]), None).await.unwrap();
        let digest = sha256(b"hello world");
        assert_eq!(store.commit_upload(upload, &digest).await.unwrap(), 11);
        assert_eq!(store.stat(&digest).await.unwrap(), Some(11));
        assert_eq!(read_blob(&store, &digest).await, b"hello world");
        assert!(store.upload_files().await.unwrap().is_empty(), "the upload file became the blob");
        assert!(matches!(store.open_upload(id).await, Err(BlobStoreError::UploadNotFound(_))));
    }

    #[tokio::test]
    async fn a_chunk_of_the_wrong_length_or_a_broken_body_is_not_kept() {
        let (_dir, store) = store().await;
        let mut upload = store.create_upload().await.unwrap();
        upload.append(body(&[b"kept"]), None).await.unwrap();
        let short = upload.append(body(&[b"short"]), Some(100)).await;
        assert!(matches!(short, Err(AppendError::LengthMismatch { expected: 100, actual: 5 })));
        let broken = stream::iter(vec![
            Ok(Bytes::from_static(b"half")),
            Err(io::Error::other("client left")),
        ]);
        assert!(matches!(upload.append(broken, None).await, Err(AppendError::Body(_))));
        assert_eq!(upload.len(), 4);
        let id = upload.id();
        drop(upload);
        assert_eq!(store.open_upload(id).await.unwrap().len(), 4, "the file was truncated back");
    }

    #[tokio::test]
    async fn a_digest_mismatch_leaves_the_upload_and_stores_nothing() {
        let (_dir, store) = store().await;
        let mut upload = store.create_upload().await.unwrap();
        upload.append(body(&[b"content"]), None).await.unwrap();
        let id = upload.id();
        let wrong = sha256(b"other");
        let result = store.commit_upload(upload, &wrong).await;
        assert!(matches!(result, Err(BlobStoreError::DigestMismatch { .. })));
        assert_eq!(store.stat(&wrong).await.unwrap(), None);
        assert_eq!(store.open_upload(id).await.unwrap().len(), 7);
    }

    #[tokio::test]
    async fn deleting_is_idempotent_and_walking_lists_what_is_stored() {
        let (_dir, store) = store().await;
        let mut upload = store.create_upload().await.unwrap();
        upload.append(body(&[b"blob"]), None).await.unwrap();
        let digest = sha256(b"blob");
        store.commit_upload(upload, &digest).await.unwrap();
        let walked = store.walk_blobs().await.unwrap();
        assert_eq!(walked.iter().map(|b| &b.digest).collect::<Vec<_>>(), [&digest]);
        store.delete_blob(&digest).await.unwrap();
        store.delete_blob(&digest).await.unwrap();
        assert_eq!(store.stat(&digest).await.unwrap(), None);
        let upload = store.create_upload().await.unwrap();
        assert_eq!(store.upload_files().await.unwrap().len(), 1);
        store.delete_upload(upload).await.unwrap();
        assert!(store.upload_files().await.unwrap().is_empty());
    }
}
