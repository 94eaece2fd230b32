//! Registry rules: pushing and pulling blobs and manifests, cross-repository mounts,
//! deletes and listings, built on the blob store and the metadata database.
//!
//! This crate knows nothing of HTTP: it takes parsed names and byte streams and
//! returns typed results and `CoreError`s; the server maps those to the wire.

pub mod accounts;
mod builds;
mod datapack;
mod error;
mod hash_pool;
mod hub;
mod image_config;
mod image_contents;
mod imports;
mod indexer;
mod login_limiter;
mod maintenance;
mod migrate;
mod pulls;
mod registry;
mod replicas;
mod session_epochs;
mod settings;
mod tag_cache;

pub use accounts::{
    Access, AccountError, AccountSettings, Accounts, Caller, Credential, NewWebSession,
    SESSION_IDLE, SESSION_MAX_AGE, TokenGrant, UserCaller,
};
pub use builds::{
    BuildJobError, BuildJobRequest, BuildSettings, MAX_LOG_BYTES, MAX_PENDING_BUILDS,
};
pub use datapack::{DataPackError, DataPackSpec, MAX_DATAPACK_NAMES, PackKind};
pub use error::CoreError;
pub use hub::{ImageView, SearchHit, latest_image, sort_images_by_name};
pub use image_config::{HistoryEntry, ImageConfig, RunConfig};
pub use image_contents::{ImageContents, LayerView, PlatformContents};
pub use imagehub_blobstore::{CopyReport, S3Settings, UploadId};
pub use imagehub_build::{
    Command as BuildCommand, CommandError as BuildCommandError,
    parse_command as parse_build_command,
};
pub use imagehub_client::{
    ClientSettings, Credentials, ReferenceError, RegistrySettings, RemoteReference,
};
pub use imagehub_extract::{
    DetailSource, Details, DetailsEdit, Limits as ExtractLimits, parse_readme,
};
pub use imagehub_metadata::{
    AuditAction, AuditEvent, BrowseOrder, BuildJobRow, BuildState, GC_LOCK, ImageInfo, ImageRow,
    MemberRow, MetadataCopy, OrgRow, Referrer, RepositoryFilter, StoredManifest, Usage, UserRow,
};
pub use imagehub_metadata::{
    ImportGroupRow, ImportJobRow, ImportState, ImportsOf, SyncRuleRow, SyncRunRow,
};
pub use imports::{
    ImportError, ImportRequest, ImportSettings, MAX_BATCH, MIN_INTERVAL, RemoteImage, Schedule,
    SyncRuleSpec, TagOutcome,
};
pub use indexer::IndexSettings;
pub use maintenance::{GcOptions, GcReport};
pub use migrate::{copy_blobs_to_bucket, copy_metadata_to_postgres};
pub use registry::{BlobReader, Placement, PushedManifest, Registry};
pub use settings::{DataPackLimits, Settings, UploadCaps, UploadScope};
pub use tag_cache::Tags;
