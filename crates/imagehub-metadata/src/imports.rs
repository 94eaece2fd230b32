//! Import jobs (migration 0014): what to copy from which registry into which
//! repository, who asked, and how far it got.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, MetadataError, Result, now};

/// Where an import job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Queued => "queued",
            ImportState::Running => "running",
            ImportState::Succeeded => "succeeded",
            ImportState::Failed => "failed",
            ImportState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, ImportState::Succeeded | ImportState::Failed | ImportState::Cancelled)
    }
}

impl FromStr for ImportState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => ImportState::Queued,
            "running" => ImportState::Running,
            "succeeded" => ImportState::Succeeded,
            "failed" => ImportState::Failed,
            "cancelled" => ImportState::Cancelled,
            _ => return Err(format!("import state {s:?}")),
        })
    }
}

/// Whose jobs to list.
#[derive(Debug, Clone, Copy)]
pub enum ImportsOf<'a> {
    Namespace(&'a str),
    User(&'a str),
}

/// A job about to be created.
#[derive(Debug, Clone)]
pub struct NewImportJob<'a> {
    pub namespace: &'a str,
    pub created_by: &'a str,
    pub source: &'a str,
    pub target_repository: &'a str,
    pub target_tag: Option<&'a str>,
    /// JSON array of `os/arch[/variant]`, or `None` for all.
    pub platforms: Option<String>,
    /// Sealed credentials.
    pub credentials: Option<Vec<u8>>,
    /// The batch it belongs to.
    pub group: Option<i64>,
}

/// An import job as stored.
#[derive(Debug, Clone)]
pub struct ImportJobRow {
    pub id: i64,
    pub namespace: String,
    pub created_by: String,
    pub source: String,
    pub target_repository: String,
    pub target_tag: Option<String>,
    pub platforms: Option<String>,
    pub credentials: Option<Vec<u8>>,
    pub state: ImportState,
    pub reason: Option<String>,
    /// Unix seconds before which a queued job does not run.
    pub run_after: i64,
    pub attempts: u32,
    pub digest: Option<String>,
    /// JSON, as the runner last wrote it.
    pub progress: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub group: Option<i64>,
}

/// A batch of import jobs as stored.
#[derive(Debug, Clone)]
pub struct ImportGroupRow {
    pub id: i64,
    pub namespace: String,
    pub created_by: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, namespace, created_by, source, target_repository, target_tag, platforms, credentials, \
     state, reason, run_after, attempts, digest, progress, created_at, started_at, finished_at, group_id";

fn row(r: &AnyRow) -> Result<ImportJobRow> {
    Ok(ImportJobRow {
        id: r.get(0),
        namespace: r.get(1),
        created_by: r.get(2),
        source: r.get(3),
        target_repository: r.get(4),
        target_tag: r.get(5),
        platforms: r.get(6),
        credentials: r.get(7),
        state: r.get::<String, _>(8).parse().map_err(MetadataError::Corrupt)?,
        reason: r.get(9),
        run_after: r.get(10),
        attempts: r.get::<i64, _>(11) as u32,
        digest: r.get(12),
        progress: r.get(13),
        created_at: r.get(14),
        started_at: r.get(15),
        finished_at: r.get(16),
        group: r.get(17),
    })
}

impl Metadata {
    pub async fn create_import_job(&self, job: NewImportJob<'_>) -> Result<ImportJobRow> {
        let now = now();
        let found = sqlx::query(&format!(
            "INSERT INTO import_jobs (namespace, created_by, source, target_repository, target_tag, platforms,
                                      credentials, run_after, created_at, group_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
        ))
        .bind(job.namespace)
        .bind(job.created_by)
        .bind(job.source)
        .bind(job.target_repository)
        .bind(job.target_tag)
        .bind(job.platforms)
        .bind(job.credentials)
        .bind(now)
        .bind(now)
        .bind(job.group)
        .fetch_one(&self.pool)
        .await?;
        row(&found)
    }

    /// Creates a batch and its jobs in one transaction.
    pub async fn create_import_group(
        &self,
        namespace: &str,
        created_by: &str,
        jobs: Vec<NewImportJob<'_>>,
    ) -> Result<(ImportGroupRow, Vec<ImportJobRow>)> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO import_groups (namespace, created_by, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(namespace)
        .bind(created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let mut rows = Vec::with_capacity(jobs.len());
        for job in jobs {
            let found = sqlx::query(&format!(
                "INSERT INTO import_jobs (namespace, created_by, source, target_repository, target_tag, platforms,
                                          credentials, run_after, created_at, group_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
            ))
            .bind(job.namespace)
            .bind(job.created_by)
            .bind(job.source)
            .bind(job.target_repository)
            .bind(job.target_tag)
            .bind(job.platforms)
            .bind(job.credentials)
            .bind(now)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            rows.push(row(&found)?);
        }
        tx.commit().await?;
        let group = ImportGroupRow {
            id,
            namespace: namespace.to_string(),
            created_by: created_by.to_string(),
            created_at: now,
        };
        Ok((group, rows))
    }

    /// A batch and its jobs, in order.
    pub async fn import_group(
        &self,
        id: i64,
    ) -> Result<Option<(ImportGroupRow, Vec<ImportJobRow>)>> {
        let Some(found) = sqlx::query(
            "SELECT id, namespace, created_by, created_at FROM import_groups WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let group = ImportGroupRow {
            id: found.get(0),
            namespace: found.get(1),
            created_by: found.get(2),
            created_at: found.get(3),
        };
        let jobs = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM import_jobs WHERE group_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let jobs = jobs.iter().map(row).collect::<Result<Vec<_>>>()?;
        Ok(Some((group, jobs)))
    }

    /// Jobs of a namespace that have not ended.
    pub async fn pending_imports_in(&self, namespace: &str) -> Result<u64> {
        let row = sqlx::query(
            "SELECT count(*) FROM import_jobs WHERE namespace = $1 AND state IN ('queued', 'running')",
        )
        .bind(namespace)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    pub async fn import_job(&self, id: i64) -> Result<Option<ImportJobRow>> {
        let found = sqlx::query(&format!("SELECT {COLUMNS} FROM import_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Jobs of a namespace or of a user, newest first, from the first older than
    /// `before` on.
    pub async fn import_jobs(
        &self,
        of: ImportsOf<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ImportJobRow>> {
        let (column, value) = match of {
            ImportsOf::Namespace(namespace) => ("namespace", namespace),
            ImportsOf::User(user) => ("created_by", user),
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM import_jobs WHERE {column} = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(value)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Claims the oldest due job: queued and due, or running with its lease run out
    /// (its runner died). It runs for `lease_secs` before it is due again.
    pub async fn claim_import_job(&self, lease_secs: i64) -> Result<Option<ImportJobRow>> {
        let now = now();
        // The due condition is checked again outside the subquery: on PostgreSQL a
        // claimer that waited for another's claim of the same row re-reads the row, not
        // the subquery, and must find it no longer due (else both run the job).
        let found = sqlx::query(&format!(
            "UPDATE import_jobs SET state = 'running', run_after = $1 + $2, attempts = attempts + 1,
                    started_at = COALESCE(started_at, $1)
             WHERE id = (SELECT id FROM import_jobs
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

    /// Extends a running job's lease and records its progress; `false` when the job is
    /// no longer running (it was cancelled).
    pub async fn import_progress(&self, id: i64, lease_secs: i64, progress: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE import_jobs SET progress = $1, run_after = $2 WHERE id = $3 AND state = 'running'",
        )
        .bind(progress)
        .bind(now() + lease_secs)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts a running job back in the queue until `run_after`, saying why it waits.
    pub async fn requeue_import_job(&self, id: i64, run_after: i64, reason: &str) -> Result<()> {
        sqlx::query(
            "UPDATE import_jobs SET state = 'queued', run_after = $1, reason = $2 WHERE id = $3 AND state = 'running'",
        )
        .bind(run_after)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a running (or queued) job, clearing its credentials. `false` when it had
    /// ended already (a cancellation came first).
    pub async fn finish_import_job(
        &self,
        id: i64,
        state: ImportState,
        reason: Option<&str>,
        digest: Option<&str>,
        progress: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE import_jobs SET state = $1, reason = $2, digest = COALESCE($3, digest),
                    progress = COALESCE($4, progress), credentials = NULL, finished_at = $5
             WHERE id = $6 AND state IN ('queued', 'running')",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(digest)
        .bind(progress)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Running jobs go back to the queue (at startup: their runner is gone).
    pub async fn requeue_running_imports(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE import_jobs SET state = 'queued', run_after = $1 WHERE state = 'running'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
