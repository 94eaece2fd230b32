//! The job queue: jobs claimed with a lease, their outcomes stored in one transaction,
//! retries with backoff, and jobs given back at shutdown.

use sqlx::Row;

use crate::images::{put_image_details, put_image_info};
use imagehub_extract::DetailSource;

use crate::{ImageInfo, Metadata, Result, now};

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub repository: String,
    pub digest: String,
    /// Including this one.
    pub attempts: u32,
}

/// What one indexing job produced, stored by [`Metadata::finish_jobs`].
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub job_id: i64,
    pub repository: String,
    pub digest: String,
    /// `None` stores nothing (the image was indexed already, or is gone).
    pub info: Option<ImageInfo>,
    /// `(source, details JSON)`; `None` removes that source's details.
    pub details: Vec<(DetailSource, Option<String>)>,
}

impl Metadata {
    /// Claims up to `limit` due jobs for `lease_secs` (after which, if not finished,
    /// they are due again), counting the attempt; oldest first.
    pub async fn claim_jobs(&self, lease_secs: i64, limit: u32) -> Result<Vec<Job>> {
        let now = now();
        // Due checked again outside the subquery, as for import jobs (`claim_import_job`).
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET run_after = $1 + $2, attempts = attempts + 1
             WHERE id IN (SELECT id FROM jobs WHERE run_after <= $1 ORDER BY run_after, id LIMIT $3 {})
               AND run_after <= $1
             RETURNING id, kind, repository, digest, attempts",
            self.engine.skip_locked()
        ))
        .bind(now)
        .bind(lease_secs)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut jobs: Vec<Job> = rows
            .iter()
            .map(|r| Job {
                id: r.get(0),
                kind: r.get(1),
                repository: r.get(2),
                digest: r.get(3),
                attempts: r.get::<i64, _>(4) as u32,
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Stores what a batch of jobs produced and removes the jobs, in one transaction.
    pub async fn finish_jobs(&self, outcomes: &[JobOutcome]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for outcome in outcomes {
            // A manifest deleted since it was indexed leaves nothing behind.
            let exists = sqlx::query("SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = $1 AND m.digest = $2")
                .bind(&outcome.repository)
                .bind(&outcome.digest)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if let Some(info) = outcome.info.as_ref().filter(|_| exists) {
                put_image_info(&mut tx, &outcome.repository, &outcome.digest, info).await?;
            }
            for (source, details_json) in outcome.details.iter().filter(|_| exists) {
                put_image_details(
                    &mut tx,
                    &outcome.repository,
                    &outcome.digest,
                    *source,
                    details_json.as_deref(),
                )
                .await?;
            }
            sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(outcome.job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt; the job runs again after `retry_in_secs`.
    pub async fn retry_job(&self, id: i64, error: &str, retry_in_secs: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET run_after = $1, last_error = $2 WHERE id = $3")
            .bind(now() + retry_in_secs)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back a claimed job that was interrupted (by shutdown), not failed: it is due
    /// at once and the claim does not count as an attempt.
    pub async fn release_job(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET run_after = $1, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs waiting or running.
    pub async fn pending_jobs(&self) -> Result<u64> {
        let row = sqlx::query("SELECT count(*) FROM jobs").fetch_one(&self.pool).await?;
        Ok(row.get::<i64, _>(0) as u64)
    }
}
