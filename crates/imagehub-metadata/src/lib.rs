//! The metadata database: the registry's tables (`registry.rs`), accounts, the hub's
//! images, jobs, pulls, DataPacks and search, and garbage-collection plans. SQLite
//! today, behind methods that a PostgreSQL implementation can take later. This file is
//! the face: the handle, opening and closing, and the errors.
//!
//! This crate knows rows, not rules: it must not depend on the blob store or on HTTP.
//! Every multi-row change runs in one `BEGIN IMMEDIATE` transaction, so concurrent
//! writers serialise instead of failing to upgrade a read lock; the writes on the push
//! path go through one group-committing writer (`writer.rs`).

mod accounts;
mod builds;
mod datapacks;
mod gc;
mod images;
mod imports;
mod jobs;
mod pulls;
mod registry;
mod search;
mod sync;
mod visibility;
mod web_sessions;
mod writer;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imagehub_oci::Digest;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use writer::Writer;

/// Errors of the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("manifest references {digest}, which this repository does not have")]
    MissingReference { digest: Digest, is_manifest: bool },
    #[error("the name {0:?} is already taken")]
    NameTaken(String),
    #[error("an organization must keep at least one owner")]
    LastOwner,
    #[error("the organization still holds {repositories} repositories")]
    OrgNotEmpty { repositories: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database holds an invalid value: {0}")]
    Corrupt(String),
    #[error("committing to the database failed: {0}")]
    CommitFailed(std::sync::Arc<sqlx::Error>),
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("{limit} upload sessions are already open {scope}; finish or cancel some first")]
    TooManyUploads { scope: UploadScope, limit: u32 },
}

pub use accounts::{
    AccessTokenRow, AuditAction, AuditEvent, MemberRow, NamespaceKind, NewAccessToken,
    NewAuditEvent, NewUser, OrgRow, RepositoryFilter, UserRow, UserSource,
};
pub use builds::{BuildJobRow, BuildState, NewBuildJob};
pub use gc::{GcPlan, UnlinkedBlob};
pub use images::{DetailRow, ImageInfo, ImageRow};
pub use imports::{ImportGroupRow, ImportJobRow, ImportState, ImportsOf, NewImportJob};
pub use jobs::{Job, JobOutcome};
pub use registry::{NewManifest, Referrer, StoredManifest, UploadCaps, UploadScope};
pub use search::{BrowseOrder, SearchDocument, SearchPage};
pub use sync::{SyncRuleRow, SyncRunRow};
pub use web_sessions::WebSessionRow;

type Result<T, E = MetadataError> = std::result::Result<T, E>;

/// Totals reported by `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub uploads_in_progress: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub repositories: u64,
}

/// The metadata database handle; cheap to clone.
#[derive(Clone)]
pub struct Metadata {
    pool: SqlitePool,
    /// Connections that commit without waiting for fsync (see [`Metadata::relaxed`]).
    relaxed: SqlitePool,
    /// The group-committing writer of the push path.
    writer: Writer,
}

impl Metadata {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Metadata> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before a client is told its push succeeded.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool =
            SqlitePoolOptions::new().max_connections(8).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writer = Writer::start(&options).await?;
        let relaxed = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Metadata { pool, relaxed, writer })
    }

    /// The same database through connections that commit without waiting for the disk
    /// (WAL with `synchronous=NORMAL`): a crash may lose the last such commits, whole
    /// and in order, never anything committed through the durable handle. Only for
    /// work that is redone when lost, such as indexing: a lost result goes with its
    /// lost job deletion, and the job runs again.
    pub fn relaxed(&self) -> Metadata {
        Metadata {
            pool: self.relaxed.clone(),
            relaxed: self.relaxed.clone(),
            writer: self.writer.clone(),
        }
    }

    /// Totals for monitoring: upload sessions open, blobs stored and their bytes.
    pub async fn usage(&self) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM uploads), (SELECT count(*) FROM blobs),
                    (SELECT coalesce(sum(size), 0) FROM blobs), (SELECT count(*) FROM repositories)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage {
            uploads_in_progress: row.get::<i64, _>(0) as u64,
            blobs: row.get::<i64, _>(1) as u64,
            blob_bytes: row.get::<i64, _>(2) as u64,
            repositories: row.get::<i64, _>(3) as u64,
        })
    }

    /// Checks the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection, letting SQLite checkpoint its WAL.
    pub async fn close(&self) {
        self.writer.close().await;
        self.relaxed.close().await;
        self.pool.close().await;
    }
}

pub(crate) fn now() -> i64 {
    unix_seconds(SystemTime::now())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `time` in seconds since the Unix epoch, the unit of every timestamp column.
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What the unit tests of this crate share.
#[cfg(test)]
mod test_support {
    use crate::Metadata;

    /// A fresh database in a temporary directory, removed when the directory is dropped.
    pub async fn open() -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("imagehub.db")).await.unwrap();
        (dir, meta)
    }
}
