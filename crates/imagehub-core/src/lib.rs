//! Registry rules: pushing and pulling blobs and manifests, cross-repository mounts,
//! deletes and listings, built on the blob store and the metadata database.
//!
//! This crate knows nothing of HTTP: it takes parsed names and byte streams and
//! returns typed results and `CoreError`s; the server maps those to the wire.

mod error;
mod maintenance;
mod registry;
mod tag_cache;

pub use error::CoreError;
pub use imagehub_blobstore::UploadId;
pub use imagehub_metadata::{Referrer, StoredManifest, Usage};
pub use maintenance::{GcOptions, GcReport};
pub use tag_cache::Tags;
pub use registry::{BlobReader, PushedManifest, Registry};
