//! The errors of registry operations, each naming what failed.

use imagehub_blobstore::{AppendError, BlobStoreError};
use imagehub_metadata::MetadataError;
use imagehub_oci::{Digest, ManifestError, RepoName};

/// Why a registry operation failed. Variants other than `Internal` are the client's
/// doing and carry what the client needs to know.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("repository {0} is not known")]
    NameUnknown(RepoName),
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(Digest),
    #[error("manifest {0} is not known in this repository")]
    ManifestUnknown(String),
    #[error("upload {0} is not known")]
    UploadUnknown(String),
    #[error("chunk does not start where the upload ends ({current_len} bytes received)")]
    UploadOutOfOrder { current_len: u64 },
    #[error("upload is invalid: {0}")]
    UploadInvalid(String),
    #[error("content has digest {actual}, not the {expected} the client declared")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest references {digest}, which is not in this repository")]
    ManifestReferenceUnknown { digest: Digest, is_manifest: bool },
    #[error(
        "{limit} upload sessions are already open {scope}; finish or cancel some, or let them expire"
    )]
    TooManyUploads { scope: imagehub_metadata::UploadScope, limit: u32 },
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<MetadataError> for CoreError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::MissingReference { digest, is_manifest } => {
                CoreError::ManifestReferenceUnknown { digest, is_manifest }
            }
            MetadataError::TooManyUploads { scope, limit } => {
                CoreError::TooManyUploads { scope, limit }
            }
            other => CoreError::Internal(Box::new(other)),
        }
    }
}

impl From<BlobStoreError> for CoreError {
    fn from(e: BlobStoreError) -> Self {
        match e {
            BlobStoreError::UploadNotFound(id) => CoreError::UploadUnknown(id.to_string()),
            BlobStoreError::DigestMismatch { expected, actual } => {
                CoreError::DigestMismatch { expected, actual }
            }
            other => CoreError::Internal(Box::new(other)),
        }
    }
}

impl From<AppendError> for CoreError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Store(e) => e.into(),
            AppendError::OutOfOrder { current_len } => CoreError::UploadOutOfOrder { current_len },
            other => CoreError::UploadInvalid(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        CoreError::Internal(Box::new(e))
    }
}
