//! Housekeeping on the registry's storage: garbage collection, upload expiry and the
//! clean-up of what a crash can leave behind. None of it needs the server stopped.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use imagehub_metadata::unix_seconds;
use serde::Serialize;

use crate::{CoreError, Registry};

type Result<T, E = CoreError> = std::result::Result<T, E>;

/// How a garbage collection runs.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Nothing written more recently than this is removed, so a push in flight never
    /// loses a blob it has uploaded but not yet referenced from a manifest.
    pub grace_period: Duration,
    /// Only count what would be removed.
    pub dry_run: bool,
}

/// What a garbage collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Another collection (another replica's) was running: this one did nothing.
    pub busy: bool,
    /// Untagged manifests no index lists and no live subject keeps.
    pub manifests: u64,
    pub manifest_bytes: u64,
    /// Blob links (blob in a repository) no manifest references.
    pub blob_links: u64,
    /// Blobs no repository links, deleted from disk.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Files under `blobs/` the database never recorded (a crash between the rename of
    /// an upload and its commit).
    pub orphan_files: u64,
    pub orphan_bytes: u64,
}

impl GcReport {
    /// Bytes freed (or that would be freed).
    pub fn bytes_freed(&self) -> u64 {
        self.manifest_bytes + self.blob_bytes + self.orphan_bytes
    }
}

/// How old an upload must be before a starting replica treats its state without a
/// session (or its session without state) as an earlier run's leftover.
const SHARED_UPLOAD_MIN_AGE: Duration = Duration::from_secs(600);

impl Registry {
    /// Removes what no tag and no index references, older than the grace period.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<GcReport> {
        let Some(_lock) = self.meta.try_lock_gc().await? else {
            tracing::info!("another garbage collection is running; this one is skipped");
            return Ok(GcReport { dry_run: options.dry_run, busy: true, ..GcReport::default() });
        };
        let cutoff_time = SystemTime::now() - options.grace_period;
        let cutoff = unix_seconds(cutoff_time);
        let plan = self.meta.collect_garbage(cutoff, !options.dry_run).await?;
        let mut report = GcReport {
            dry_run: options.dry_run,
            manifests: plan.manifests,
            manifest_bytes: plan.manifest_bytes,
            blob_links: plan.blob_links,
            ..GcReport::default()
        };
        for blob in &plan.blobs {
            report.blobs += 1;
            report.blob_bytes += if options.dry_run {
                blob.size
            } else {
                self.blobs.delete_blob_written_before(&blob.digest, cutoff_time).await?
            };
        }
        for file in self.blobs.walk_blobs().await? {
            if file.modified >= cutoff_time || self.meta.blob_known(&file.digest).await? {
                continue;
            }
            if !options.dry_run {
                self.blobs.delete_blob_written_before(&file.digest, cutoff_time).await?;
            }
            report.orphan_files += 1;
            report.orphan_bytes += file.size;
        }
        tracing::info!(
            gc.dry_run = report.dry_run,
            gc.manifests = report.manifests,
            gc.blob_links = report.blob_links,
            gc.blobs = report.blobs,
            gc.orphan_files = report.orphan_files,
            gc.bytes_freed = report.bytes_freed(),
            "garbage collection finished"
        );
        Ok(report)
    }

    /// Deletes upload sessions started more than `max_age` ago; returns how many.
    pub async fn expire_uploads(&self, max_age: Duration) -> Result<u64> {
        let cutoff = unix_seconds(SystemTime::now() - max_age);
        let mut expired = 0;
        for id in self.meta.uploads_started_before(cutoff).await? {
            self.blobs.delete_upload_named(&id).await?;
            self.meta.delete_upload(&id).await?;
            expired += 1;
        }
        if expired > 0 {
            tracing::info!(uploads.expired = expired, "expired abandoned uploads");
        }
        Ok(expired)
    }

    /// Makes upload files and upload rows agree after a crash: a file without a session
    /// (the crash came between creating it and recording it) is deleted, and so is a
    /// session whose file is gone. Sessions with files survive, so uploads resume.
    pub async fn clean_stale_uploads(&self) -> Result<u64> {
        // Replicas sharing the database and the bucket may be between creating a session's
        // state and recording it (or deleting them) right now; only what is old enough
        // to be nobody's is a leftover there.
        let min_age = match self.meta.engine() {
            imagehub_metadata::Engine::Sqlite => Duration::ZERO,
            imagehub_metadata::Engine::Postgres => SHARED_UPLOAD_MIN_AGE,
        };
        let young = |name: &String| {
            let started =
                name.parse::<imagehub_blobstore::UploadId>().ok().and_then(|id| id.started_at());
            started.is_some_and(|t| t.elapsed().unwrap_or_default() < min_age)
        };
        let sessions: HashSet<String> = self.meta.upload_ids().await?.into_iter().collect();
        let files: HashSet<String> = self.blobs.upload_names().await?.into_iter().collect();
        let mut cleaned = 0;
        for file in files.difference(&sessions).filter(|f| !young(f)) {
            self.blobs.delete_upload_named(file).await?;
            cleaned += 1;
        }
        // In a bucket, an upload that has received nothing has nothing there yet: a
        // session without objects is not a leftover (its expiry removes it).
        let bare_sessions_are_leftovers = self.blobs.keeps_empty_uploads();
        for session in
            sessions.difference(&files).filter(|s| bare_sessions_are_leftovers && !young(s))
        {
            self.meta.delete_upload(session).await?;
            cleaned += 1;
        }
        if cleaned > 0 {
            tracing::info!(
                uploads.cleaned = cleaned,
                "removed upload leftovers from an earlier run"
            );
        }
        Ok(cleaned)
    }
}
