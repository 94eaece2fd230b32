//! A client of OCI registries, for importing images into the hub (and for the CLI and
//! the builder): references normalised as docker does, anonymous, Basic and Docker
//! token auth, retries with backoff and `Retry-After`, manifests kept byte for byte,
//! blobs streamed and verified, and the operator's rules on which registries and
//! addresses may be reached. The hub stores what it imports through its own core; the
//! write half (`push.rs`: uploads, resumable in chunks, manifests, `copy_image`) is for
//! the CLI.

mod auth;
mod blob;
mod chunks;
mod credstore;
mod error;
mod guard;
mod push;
mod reference;
mod registry;

pub use auth::Credentials;
pub use blob::BlobStream;
pub use chunks::{ChunkSource, FileChunks, StreamChunks, UPLOAD_CHUNK};
pub use credstore::{CredentialStore, StoreError};
pub use error::ClientError;
pub use guard::is_public;
pub use push::{BlobCopy, CopyProgress, CopyReport, copy_image};
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
