//! Pure OCI domain types: `Digest`, `RepoName`, `Tag`, `Reference`, media types,
//! manifest parsing and validation, and the OCI error-code table.
//!
//! This crate performs no IO and has no async code; every other crate builds on it.
//! It must not depend on any other imagehub crate.

pub mod digest;
pub mod error_code;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod resumable;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use error_code::OciErrorCode;
pub use manifest::{Descriptor, Manifest, ManifestError, ManifestKind, Platform, PlatformError};
pub use name::{AccountName, ImageName, NameError, Reference, RepoName, Tag};
pub use resumable::ResumableHasher;
