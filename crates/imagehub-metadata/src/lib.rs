//! The metadata database: the registry's tables (`registry.rs`), accounts, the hub's
//! images, jobs, pulls, DataPacks and search, and garbage-collection plans, on SQLite
//! (embedded, the default) or PostgreSQL (shared by replicas). This file is the face:
//! the handle, opening and closing, and the errors.
//!
//! One SQL text serves both engines through sqlx's `Any` driver: parameters are `$N`
//! (SQLite reads them too), and PostgreSQL's migrations define the one SQLite function
//! the queries use, `json_each(text)`. What cannot be shared branches on [`Engine`]:
//! full-text search (FTS5 or `tsvector`) and how a write transaction begins.
//!
//! This crate knows rows, not rules: it must not depend on the blob store or on HTTP.
//! Every multi-row change runs in one write transaction ([`Metadata::begin_write`]), so
//! concurrent writers serialise as they do on SQLite, whichever replica they run on; the
//! writes on the push path go through one group-committing writer (`writer.rs`).

mod accounts;
mod builds;
mod copy;
mod datapacks;
mod gc;
mod images;
mod imports;
mod jobs;
mod login_failures;
mod notices;
mod pulls;
mod registry;
mod search;
mod sync;
mod tag_lookups;
mod visibility;
mod web_sessions;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use imagehub_oci::Digest;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor, Row};
use tag_lookups::TagLookups;
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
    #[error("the database is closed (its writer or lookup task has stopped)")]
    Stopped,
    #[error("database error: {0}")]
    Shared(std::sync::Arc<sqlx::Error>),
    #[error("{limit} upload sessions are already open {scope}; finish or cancel some first")]
    TooManyUploads { scope: UploadScope, limit: u32 },
    #[error("the database already holds a hub (users or repositories); copy into an empty one")]
    TargetNotEmpty,
    #[error("metadata is copied from SQLite into PostgreSQL, not otherwise")]
    CopyDirection,
}

/// Which SQL engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Takes the transaction-level advisory lock every PostgreSQL write transaction takes first:
/// writes serialise across replicas as they do on one SQLite file, so a check and the
/// write it guards (an upload cap, a last owner) cannot interleave with another's.
/// (A macro, so the statements beginning a write transaction can be constant strings.)
macro_rules! lock_writes {
    () => {
        "SELECT pg_advisory_xact_lock(7882834684746557812)" // 0x6d65_7461_7772_6974, "metawrit"
    };
}

/// The session-level advisory lock a garbage collection holds on PostgreSQL from its
/// plan to its last deletion, so replicas collect one at a time.
pub const GC_LOCK: i64 = 0x6d65_7461_6763_6c6b; // "metagclk"

/// Held while a garbage collection runs (see [`Metadata::try_lock_gc`]); the lock goes
/// with its connection when dropped.
pub struct GcLock {
    _session: Option<AnyConnection>,
}

pub use accounts::{
    AccessTokenRow, AuditAction, AuditEvent, MemberRow, NamespaceKind, NewAccessToken,
    NewAuditEvent, NewUser, OrgRow, RepositoryFilter, UserRow, UserSource,
};
pub use builds::{BuildJobRow, BuildState, NewBuildJob};
pub use copy::MetadataCopy;
pub use gc::{GcPlan, UnlinkedBlob};
pub use images::{DetailRow, ImageInfo, ImageRow};
pub use imports::{ImportGroupRow, ImportJobRow, ImportState, ImportsOf, NewImportJob};
pub use jobs::{Job, JobOutcome};
pub use login_failures::LoginFailures;
pub use notices::{Notice, Notices};
pub use registry::{BlobLink, NewManifest, Referrer, StoredManifest, UploadCaps, UploadScope};
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
    engine: Engine,
    pool: AnyPool,
    /// Connections that commit without waiting for fsync (see [`Metadata::relaxed`]).
    relaxed: AnyPool,
    /// The group-committing writer of the push path.
    writer: Writer,
    /// On PostgreSQL, pulls by tag looked up in batches (`tag_lookups.rs`).
    tag_lookups: Option<TagLookups>,
    /// On PostgreSQL, the database's URL, for the connection listening for notices.
    url: Option<Arc<str>>,
}

/// Session settings of SQLite connections. FULL synchronous: a commit is on disk before
/// a client is told its push succeeded.
const SQLITE_DURABLE: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
    PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
const SQLITE_RELAXED: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
/// PostgreSQL commits durably by default; relaxed connections skip waiting for the WAL
/// flush, which loses at most the last such commits in a crash, never corrupts.
const POSTGRES_RELAXED: &str = "SET synchronous_commit = off";

impl Metadata {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", sqlite_path_in_url(path));
        let options: AnyConnectOptions = url.parse()?;
        let pool = open_pool(&options, 8, SQLITE_DURABLE).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let mut writer_conn = options.connect().await?;
        writer_conn.execute(SQLITE_DURABLE).await?;
        let relaxed = open_pool(&options, 2, SQLITE_RELAXED).await?;
        let writer = Writer::start(writer_conn, Engine::Sqlite);
        Ok(Metadata { engine: Engine::Sqlite, pool, relaxed, writer, tag_lookups: None, url: None })
    }

    /// Connects to the PostgreSQL database at `url` and migrates it.
    pub async fn open_postgres(url: &str) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse()?;
        let pool = open_pool(&options, 16, "").await?;
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        let writer = Writer::start(options.connect().await?, Engine::Postgres);
        let relaxed = open_pool(&options, 2, POSTGRES_RELAXED).await?;
        let tag_lookups = Some(TagLookups::start(pool.clone()));
        let url = Some(url.into());
        Ok(Metadata { engine: Engine::Postgres, pool, relaxed, writer, tag_lookups, url })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The same database through connections that commit without waiting for the disk
    /// (WAL with `synchronous=NORMAL`): a crash may lose the last such commits, whole
    /// and in order, never anything committed through the durable handle. Only for
    /// work that is redone when lost, such as indexing: a lost result goes with its
    /// lost job deletion, and the job runs again.
    pub fn relaxed(&self) -> Metadata {
        Metadata {
            engine: self.engine,
            pool: self.relaxed.clone(),
            relaxed: self.relaxed.clone(),
            writer: self.writer.clone(),
            tag_lookups: self.tag_lookups.clone(),
            url: self.url.clone(),
        }
    }

    /// Takes the garbage-collection lock: `None` while another process holds it. On
    /// PostgreSQL it is an advisory lock on a connection of its own, released when the
    /// guard is dropped, or when the process dies; on SQLite, which one machine holds,
    /// there is nothing to take.
    pub async fn try_lock_gc(&self) -> Result<Option<GcLock>> {
        if self.engine == Engine::Sqlite {
            return Ok(Some(GcLock { _session: None }));
        }
        let mut session = self.pool.acquire().await?.detach();
        let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(GC_LOCK)
            .fetch_one(&mut session)
            .await?
            .get(0);
        Ok(taken.then_some(GcLock { _session: Some(session) }))
    }

    /// Begins a read-only transaction whose queries all see the same committed state
    /// (SQLite's read transactions do; PostgreSQL's need REPEATABLE READ).
    pub(crate) async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin().await?,
            Engine::Postgres => {
                self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?
            }
        })
    }

    /// Begins a write transaction: one at a time over the whole database (see
    /// [`Engine::begin_write`]).
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.pool.begin_with(self.engine.begin_write()).await?)
    }

    /// Totals for monitoring: upload sessions open, blobs stored and their bytes.
    pub async fn usage(&self) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM uploads), (SELECT count(*) FROM blobs),
                    (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs), (SELECT count(*) FROM repositories)",
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

/// A yes/no column: BOOLEAN on PostgreSQL, 0 or 1 on SQLite (which has no booleans).
pub(crate) fn flag(row: &sqlx::any::AnyRow, index: usize) -> bool {
    row.try_get::<bool, _>(index).unwrap_or_else(|_| row.get::<i64, _>(index) != 0)
}

impl Engine {
    /// What begins a write transaction, so that write transactions run one at a time:
    /// SQLite's `BEGIN IMMEDIATE` takes the file's write lock; on PostgreSQL `BEGIN`
    /// and the write lock, held until the transaction ends, in one round trip (a
    /// simple query may hold several statements; the lock is a constant).
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => concat!("BEGIN; ", lock_writes!()),
        }
    }

    /// What ends the subquery choosing jobs to claim: on PostgreSQL the rows are locked
    /// and rows another claimer holds skipped, so concurrent claimers take different
    /// jobs; SQLite has one writer at a time (and no such clause).
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// [`Engine::begin_write`] with a first savepoint, `write`, for the group-commit
    /// writer (one round trip on PostgreSQL).
    pub(crate) fn begin_write_batch(self) -> &'static str {
        match self {
            Engine::Sqlite => "BEGIN IMMEDIATE; SAVEPOINT write",
            Engine::Postgres => concat!("BEGIN; ", lock_writes!(), "; SAVEPOINT write"),
        }
    }
}

/// How long a pooled connection may sit idle before it is checked again when taken.
const CHECK_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool whose connections each run `setup` (settings statements) when opened.
async fn open_pool(options: &AnyConnectOptions, size: u32, setup: &'static str) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(size)
        // sqlx pings every connection it hands out by default: on PostgreSQL a round
        // trip per query, doubling a manifest GET's. Only a connection idle long enough
        // for a server or proxy to have dropped it is checked (as pgx's pool does); a
        // failed check closes it and another is taken.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if !setup.is_empty() {
                    conn.execute(setup).await?;
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?)
}

/// `path` as the path part of a `sqlite:` URL, which sqlx percent-decodes and ends at
/// the first `?`. The three characters that matter, by hand rather than a crate.
fn sqlite_path_in_url(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
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
