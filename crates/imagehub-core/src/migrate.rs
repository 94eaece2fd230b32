//! Moving a single-machine hub to the scale-out backends (issue 18): its blobs from the
//! filesystem into an S3-compatible bucket, its metadata from SQLite into PostgreSQL.

use std::path::Path;

use imagehub_blobstore::{BlobStore, CopyReport, S3Settings, copy_blobs};
use imagehub_metadata::{Metadata, MetadataCopy, MetadataError};
use imagehub_oci::Digest;

use crate::CoreError;

/// Blobs copied at once.
const PARALLEL: usize = 4;

/// Copies every blob stored under `data_dir` into the bucket `s3`, each verified against
/// its digest on the way; blobs the bucket holds already are skipped, so running it again
/// resumes an interrupted copy. Nothing under `data_dir` is changed.
pub async fn copy_blobs_to_bucket(
    data_dir: &Path,
    s3: &S3Settings,
    progress: &(dyn Fn(&Digest, u64) + Sync),
) -> Result<CopyReport, CoreError> {
    let from = BlobStore::open(data_dir, None).await?;
    let to = BlobStore::open(data_dir, Some(s3)).await?;
    Ok(copy_blobs(&from, &to, PARALLEL, progress).await?)
}

/// Copies the metadata of the hub under `data_dir` (its SQLite database, read in one
/// snapshot) into the PostgreSQL database `url`, which must hold no hub yet: all or
/// nothing, every manifest's digest checked in PostgreSQL. Nothing under `data_dir` is
/// changed.
pub async fn copy_metadata_to_postgres(
    data_dir: &Path,
    url: &str,
) -> Result<MetadataCopy, MetadataError> {
    let from = Metadata::open_sqlite(&data_dir.join("imagehub.db")).await?;
    let to = Metadata::open_postgres(url).await?;
    let copied = from.copy_to(&to).await;
    from.close().await;
    to.close().await;
    copied
}
