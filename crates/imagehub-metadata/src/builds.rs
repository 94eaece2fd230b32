//! Build jobs (migration 0017): which app of the recipes repository to build, for which
//! platforms, who asked, what the build printed and what it pushed.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{ImportState, Metadata, MetadataError, Result, now};

/// A build job goes through the states of an import job.
pub type BuildState = ImportState;

/// A build job about to be created.
#[derive(Debug, Clone)]
pub struct NewBuildJob<'a> {
    pub app: &'a str,
    pub version: &'a str,
    /// JSON array of `os/arch`.
    pub platforms: &'a str,
    /// Where the image is pushed: `org/app`, and its tag.
    pub repository: &'a str,
    pub tag: &'a str,
    pub created_by: &'a str,
    /// How it was asked for: `api`, `command`, `webhook` or `web`.
    pub origin: &'a str,
}

/// A build job as stored.
#[derive(Debug, Clone)]
pub struct BuildJobRow {
    pub id: i64,
    pub app: String,
    pub version: String,
    pub platforms: String,
    pub repository: String,
    pub tag: String,
    pub created_by: String,
    pub origin: String,
    pub state: BuildState,
    pub reason: Option<String>,
    pub digest: Option<String>,
    pub platform_digests: Option<String>,
    pub log: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, app, version, platforms, repository, tag, created_by, origin, state, \
     reason, digest, platform_digests, log, created_at, started_at, finished_at";

fn row(r: &AnyRow) -> Result<BuildJobRow> {
    Ok(BuildJobRow {
        id: r.get(0),
        app: r.get(1),
        version: r.get(2),
        platforms: r.get(3),
        repository: r.get(4),
        tag: r.get(5),
        created_by: r.get(6),
        origin: r.get(7),
        state: r.get::<String, _>(8).parse().map_err(MetadataError::Corrupt)?,
        reason: r.get(9),
        digest: r.get(10),
        platform_digests: r.get(11),
        log: r.get(12),
        created_at: r.get(13),
        started_at: r.get(14),
        finished_at: r.get(15),
    })
}

impl Metadata {
    pub async fn create_build_job(&self, job: NewBuildJob<'_>) -> Result<BuildJobRow> {
        let now = now();
        let found = sqlx::query(&format!(
            "INSERT INTO build_jobs (app, version, platforms, repository, tag, created_by, origin,
                                     run_after, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(job.app)
        .bind(job.version)
        .bind(job.platforms)
        .bind(job.repository)
        .bind(job.tag)
        .bind(job.created_by)
        .bind(job.origin)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        row(&found)
    }

    pub async fn build_job(&self, id: i64) -> Result<Option<BuildJobRow>> {
        let found = sqlx::query(&format!("SELECT {COLUMNS} FROM build_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Jobs newest first, from the first older than `before` on (without their logs).
    pub async fn build_jobs(&self, before: Option<i64>, limit: u32) -> Result<Vec<BuildJobRow>> {
        let columns = COLUMNS.replace(", log,", ", '',");
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM build_jobs WHERE id < $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Jobs that have not ended.
    pub async fn pending_builds(&self) -> Result<u64> {
        let row =
            sqlx::query("SELECT count(*) FROM build_jobs WHERE state IN ('queued', 'running')")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Claims the oldest due job, as [`Metadata::claim_import_job`] does.
    pub async fn claim_build_job(&self, lease_secs: i64) -> Result<Option<BuildJobRow>> {
        let now = now();
        // Due checked again outside the subquery, as for import jobs (`claim_import_job`).
        let found = sqlx::query(&format!(
            "UPDATE build_jobs SET state = 'running', run_after = $1 + $2,
                    started_at = COALESCE(started_at, $1)
             WHERE id = (SELECT id FROM build_jobs
                         WHERE state IN ('queued', 'running') AND run_after <= $1 ORDER BY run_after, id LIMIT 1 {})
               AND state IN ('queued', 'running') AND run_after <= $1
             RETURNING {COLUMNS}",
            self.engine.skip_locked()
        ))
        .bind(now)
        .bind(lease_secs)
        .fetch_optional(&self.pool)
        .await?;
        found.as_ref().map(row).transpose()
    }

    /// Appends `text` to a running job's log while the log is under `max_bytes`, and
    /// extends its lease; `false` when the job is no longer running (it was cancelled).
    pub async fn append_build_log(
        &self,
        id: i64,
        text: &str,
        max_bytes: i64,
        lease_secs: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE build_jobs
             SET log = CASE WHEN length(log) < $1 THEN log || $2 ELSE log END, run_after = $3
             WHERE id = $4 AND state = 'running'",
        )
        .bind(max_bytes)
        .bind(text)
        .bind(now() + lease_secs)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends a running or queued job; `false` when it had ended already.
    pub async fn finish_build_job(
        &self,
        id: i64,
        state: BuildState,
        reason: Option<&str>,
        digest: Option<&str>,
        platform_digests: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE build_jobs SET state = $1, reason = $2, digest = $3, platform_digests = $4,
                    finished_at = $5
             WHERE id = $6 AND state IN ('queued', 'running')",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(digest)
        .bind(platform_digests)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Running jobs go back to the queue (at startup: their runner is gone).
    pub async fn requeue_running_builds(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE build_jobs SET state = 'queued', run_after = $1,
                    log = log || '-- the server stopped during this build; it starts again\n'
             WHERE state = 'running'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
