//! A client of OCI registries, for importing images into the hub (and for the CLI and
//! the builder): references normalised as docker does, anonymous, Basic and Docker
//! token auth, retries with backoff and `Retry-After`, manifests kept byte for byte,
//! blobs streamed and verified, and the operator's rules on which registries and
//! addresses may be reached. It does no registry writes: the hub stores what it pulls
//! through its own core.

mod auth;
mod blob;
mod credstore;
mod error;
mod guard;
mod push;
mod reference;
mod registry;

pub use auth::Credentials;
pub use blob::BlobStream;
pub use credstore::{CredentialStore, StoreError};
pub use error::ClientError;
pub use guard::is_public;
pub use push::{
    BlobCopy, ChunkSource, CopyProgress, CopyReport, StreamChunks, UPLOAD_CHUNK, copy_image,
};
pub use reference::{
    DOCKER_HUB, DOCKER_HUB_ENDPOINT, ReferenceError, RemoteReference, endpoint_of,
};
pub use registry::{
    ClientSettings, FetchedManifest, ManifestHead, RegistryClient, RegistrySettings, Target,
};

/// A time as RFC 3339, for messages.
fn rfc3339(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "later".to_string())
}
