//! Rows of the hub: base info of images, detail info by source, and the job queue.

use sqlx::{Row, SqliteConnection};

use crate::{Metadata, Result, now, visibility};

/// How stale a DataPack's last use may be before a read records a new one.
const DATAPACK_TOUCH_SECS: i64 = 24 * 3600;

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

/// Base info of one manifest, as the indexing job computed it.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub config_digest: Option<String>,
    /// JSON array of `{"os", "architecture", "variant"?, "size"}`.
    pub platforms_json: String,
    pub size: Option<u64>,
    pub created: Option<String>,
    pub error: Option<String>,
}

/// An image of a repository as listings show it: a tag, or a digest without a tag.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub pushed_at: i64,
    pub pushed_by: Option<String>,
    /// `None` until the indexing job has run.
    pub info: Option<ImageInfo>,
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
    pub details: Vec<(String, Option<String>)>,
}

/// One stored set of details.
#[derive(Debug, Clone)]
pub struct DetailRow {
    pub reference: String,
    pub source: String,
    pub details_json: String,
}

/// The columns `image_row` reads after the tag, from `manifests m` and `image_info i`.
macro_rules! image_columns {
    () => {
        "m.digest, m.media_type, m.pushed_at, m.pushed_by, i.config_digest, i.platforms, i.size, i.created, i.error, i.indexed_at"
    };
}
const IMAGE_COLUMNS: &str = image_columns!();

/// Where the images of repositories come from, and which manifests are images: every
/// tag, and every manifest without a tag that is neither an index's child nor a
/// referrer (those belong to another image). Callers add the repository condition.
const IMAGES_FROM: &str = "FROM repositories r JOIN manifests m ON m.repository_id = r.id
     LEFT JOIN tags t ON t.repository_id = r.id AND t.digest = m.digest
     LEFT JOIN image_info i ON i.repository_id = r.id AND i.digest = m.digest
     WHERE (t.name IS NOT NULL OR (m.subject IS NULL AND NOT EXISTS (
         SELECT 1 FROM manifest_references mr WHERE mr.repository_id = r.id
         AND mr.child_digest = m.digest AND mr.child_is_manifest)))";

/// The order of a repository's images that puts its latest first: tags before untagged
/// manifests, then most recently pushed.
const LATEST_FIRST: &str = "t.name IS NULL, m.pushed_at_ms DESC, t.name";

impl Metadata {
    /// Claims up to `limit` due jobs for `lease_secs` (after which, if not finished,
    /// they are due again), counting the attempt; oldest first.
    pub async fn claim_jobs(&self, lease_secs: i64, limit: u32) -> Result<Vec<Job>> {
        let now = now();
        let rows = sqlx::query(
            "UPDATE jobs SET run_after = ?1 + ?2, attempts = attempts + 1
             WHERE id IN (SELECT id FROM jobs WHERE run_after <= ?1 ORDER BY run_after, id LIMIT ?3)
             RETURNING id, kind, repository, digest, attempts",
        )
        .bind(now)
        .bind(lease_secs)
        .bind(limit)
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for outcome in outcomes {
            // A manifest deleted since it was indexed leaves nothing behind.
            let exists = sqlx::query("SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?")
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
                    source,
                    details_json.as_deref(),
                )
                .await?;
            }
            sqlx::query("DELETE FROM jobs WHERE id = ?")
                .bind(outcome.job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt; the job runs again after `retry_in_secs`.
    pub async fn retry_job(&self, id: i64, error: &str, retry_in_secs: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET run_after = ?, last_error = ? WHERE id = ?")
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
        sqlx::query("UPDATE jobs SET run_after = ?, attempts = max(attempts - 1, 0) WHERE id = ?")
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

    /// Stores (or with `None`, removes) one source's details for a reference.
    pub async fn put_image_details(
        &self,
        repository: &str,
        reference: &str,
        source: &str,
        details_json: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        put_image_details(&mut conn, repository, reference, source, details_json).await
    }

    /// Every stored detail set for any of `keys`, `(repository, reference)` pairs, with
    /// its repository.
    pub async fn image_details_of(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, DetailRow)>> {
        let keys = serde_json::to_string(keys).expect("string pairs serialise");
        let rows = sqlx::query(
            "SELECT repository, reference, source, details FROM image_details WHERE (repository, reference) IN
             (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    DetailRow { reference: r.get(1), source: r.get(2), details_json: r.get(3) },
                )
            })
            .collect())
    }

    /// Every stored detail set of `repository` for any of `references`.
    pub async fn image_details(
        &self,
        repository: &str,
        references: &[&str],
    ) -> Result<Vec<DetailRow>> {
        let refs =
            serde_json::Value::from(references.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                .to_string();
        let rows = sqlx::query(
            "SELECT reference, source, details FROM image_details
             WHERE repository = ? AND reference IN (SELECT value FROM json_each(?))",
        )
        .bind(repository)
        .bind(refs)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DetailRow { reference: r.get(0), source: r.get(1), details_json: r.get(2) })
            .collect())
    }

    /// The images of a repository (see `IMAGES_FROM`), most recently pushed first.
    pub async fn images(&self, repository: &str) -> Result<Vec<ImageRow>> {
        let sql = format!(
            "SELECT t.name, {IMAGE_COLUMNS} {IMAGES_FROM} AND r.name = ?1 ORDER BY m.pushed_at_ms DESC, t.name"
        );
        let rows = sqlx::query(&sql).bind(repository).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| image_row(r, r.get(0))).collect())
    }

    /// The latest image of each of `repositories`, by repository name (repositories
    /// without images are left out): its most recently pushed tag, else its most
    /// recently pushed image; the first of [`Metadata::images`] that has a tag, without
    /// listing them all.
    pub async fn latest_images(&self, repositories: &[String]) -> Result<Vec<(String, ImageRow)>> {
        let sql = format!(
            "SELECT * FROM (SELECT t.name, {IMAGE_COLUMNS}, r.name, row_number() OVER (PARTITION BY r.id ORDER BY {LATEST_FIRST}) AS n
             {IMAGES_FROM} AND r.name IN (SELECT value FROM json_each(?1))) WHERE n = 1"
        );
        let names = serde_json::Value::from(repositories.to_vec()).to_string();
        let rows = sqlx::query(&sql).bind(names).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(11), image_row(r, r.get(0)))).collect())
    }

    /// One image by tag or digest.
    pub async fn image(&self, repository: &str, reference: &str) -> Result<Option<ImageRow>> {
        let row = sqlx::query(&format!(
            "SELECT t.name, {IMAGE_COLUMNS}
             FROM repositories r JOIN manifests m ON m.repository_id = r.id
             LEFT JOIN tags t ON t.repository_id = r.id AND t.digest = m.digest AND t.name = ?2
             LEFT JOIN image_info i ON i.repository_id = r.id AND i.digest = m.digest
             WHERE r.name = ?1 AND (t.name IS NOT NULL OR m.digest = ?2)
             LIMIT 1"
        ))
        .bind(repository)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| image_row(&r, r.get(0))))
    }

    /// Deletes a repository with its tags, manifests and blob links (by cascade) and the
    /// details stored for it; returns whether it existed.
    pub async fn delete_repository(&self, repository: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM repositories WHERE name = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM image_details WHERE repository = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE repository = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pull_counts WHERE repository = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Repository names in `namespace` that hold images, visible through `filter`
    /// (`None`: all), sorted.
    pub async fn repositories_in(
        &self,
        namespace: &str,
        filter: Option<&crate::RepositoryFilter>,
    ) -> Result<Vec<String>> {
        let params = visibility::Params::of(filter);
        let sql = format!(
            "SELECT r.name FROM repositories r {}
             WHERE r.namespace = ?1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) AND {}
             ORDER BY r.name",
            visibility::JOINS,
            visibility::condition(2)
        );
        let rows = visibility::bind(sqlx::query(&sql).bind(namespace), &params)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Adds counted pulls: `(repository, digest, pulls)`.
    pub async fn add_pulls(&self, pulls: &[(String, String, u64)]) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (repository, digest, count) in pulls {
            sqlx::query(
                "INSERT INTO pull_counts (repository, digest, count) VALUES (?, ?, ?)
                 ON CONFLICT (repository, digest) DO UPDATE SET count = count + excluded.count",
            )
            .bind(repository)
            .bind(digest)
            .bind(*count as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pulls of one image (`Some(digest)`) or of a whole repository (`None`).
    pub async fn pull_count(&self, repository: &str, digest: Option<&str>) -> Result<u64> {
        let row = sqlx::query("SELECT COALESCE(sum(count), 0) FROM pull_counts WHERE repository = ?1 AND (?2 IS NULL OR digest = ?2)")
            .bind(repository)
            .bind(digest)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Pulls of each of `repositories` (those never pulled are left out).
    pub async fn pull_counts(&self, repositories: &[String]) -> Result<Vec<(String, u64)>> {
        let names = serde_json::Value::from(repositories.to_vec()).to_string();
        let rows = sqlx::query("SELECT repository, sum(count) FROM pull_counts WHERE repository IN (SELECT value FROM json_each(?)) GROUP BY repository")
            .bind(names)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<i64, _>(1) as u64)).collect())
    }

    /// Every stored detail set of `source` in the repositories of `namespace`, by
    /// repository and reference: what an export of user edits lists.
    pub async fn details_in_namespace(
        &self,
        namespace: &str,
        source: &str,
    ) -> Result<Vec<(String, DetailRow)>> {
        let rows = sqlx::query(
            "SELECT repository, reference, source, details FROM image_details
             WHERE source = ? AND substr(repository, 1, length(?) + 1) = ? || '/'
             ORDER BY repository, reference",
        )
        .bind(source)
        .bind(namespace)
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    DetailRow { reference: r.get(1), source: r.get(2), details_json: r.get(3) },
                )
            })
            .collect())
    }

    /// Stores a DataPack spec under its name (idempotent: the name is its hash), marks
    /// it used now, and drops the least recently used beyond `keep`.
    pub async fn put_datapack(&self, name: &str, spec_json: &str, keep: u32) -> Result<()> {
        let now = now();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO datapacks (name, spec, created_at, used_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO UPDATE SET used_at = ?3",
        )
        .bind(name)
        .bind(spec_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The one just stored stays; of the others, the most recently used.
        sqlx::query(
            "DELETE FROM datapacks WHERE name IN
             (SELECT name FROM datapacks WHERE name != ?1 ORDER BY used_at DESC, name LIMIT -1 OFFSET ?2)",
        )
        .bind(name)
        .bind(keep.saturating_sub(1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stored DataPack spec. Reading it marks it used, at most once a day, so reads
    /// stay reads.
    pub async fn datapack(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT spec, used_at FROM datapacks WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let now = now();
        if row.get::<i64, _>(1) < now - DATAPACK_TOUCH_SECS {
            sqlx::query("UPDATE datapacks SET used_at = ? WHERE name = ?")
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(row.get(0)))
    }

    /// Forgets DataPacks unused for `max_age_secs`; returns how many.
    pub async fn prune_datapacks(&self, max_age_secs: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM datapacks WHERE used_at < ?")
            .bind(now() - max_age_secs)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Whether base info exists and was computed without error.
    pub async fn image_indexed(&self, repository: &str, digest: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM image_info i JOIN repositories r ON r.id = i.repository_id
             WHERE r.name = ? AND i.digest = ? AND i.error IS NULL",
        )
        .bind(repository)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

fn image_row(r: &sqlx::sqlite::SqliteRow, tag: Option<String>) -> ImageRow {
    let indexed: Option<i64> = r.get(10);
    ImageRow {
        tag,
        digest: r.get(1),
        media_type: r.get(2),
        pushed_at: r.get(3),
        pushed_by: r.get(4),
        info: indexed.map(|_| ImageInfo {
            config_digest: r.get(5),
            platforms_json: r.get(6),
            size: r.get::<Option<i64>, _>(7).map(|s| s as u64),
            created: r.get(8),
            error: r.get(9),
        }),
    }
}

/// Stores the base info of `repository@digest`, if the manifest still exists.
async fn put_image_info(
    conn: &mut SqliteConnection,
    repository: &str,
    digest: &str,
    info: &ImageInfo,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO image_info (repository_id, digest, config_digest, platforms, size, created, error, indexed_at)
         SELECT m.repository_id, m.digest, ?, ?, ?, ?, ?, ? FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.name = ? AND m.digest = ?
         ON CONFLICT (repository_id, digest) DO UPDATE SET config_digest = excluded.config_digest,
            platforms = excluded.platforms, size = excluded.size, created = excluded.created,
            error = excluded.error, indexed_at = excluded.indexed_at",
    )
    .bind(&info.config_digest)
    .bind(&info.platforms_json)
    .bind(info.size.map(|s| s as i64))
    .bind(&info.created)
    .bind(&info.error)
    .bind(now())
    .bind(repository)
    .bind(digest)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores (or with `None`, removes) one source's details for a reference.
async fn put_image_details(
    conn: &mut SqliteConnection,
    repository: &str,
    reference: &str,
    source: &str,
    details_json: Option<&str>,
) -> Result<()> {
    match details_json {
        Some(json) => {
            sqlx::query(
                "INSERT INTO image_details (repository, reference, source, details, updated_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (repository, reference, source) DO UPDATE SET details = excluded.details, updated_at = excluded.updated_at",
            )
            .bind(repository)
            .bind(reference)
            .bind(source)
            .bind(json)
            .bind(now())
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM image_details WHERE repository = ? AND reference = ? AND source = ?",
            )
            .bind(repository)
            .bind(reference)
            .bind(source)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use imagehub_oci::RepoName;

    use super::*;
    use crate::MetadataError;

    async fn open() -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("imagehub.db")).await.unwrap();
        (dir, meta)
    }

    #[tokio::test]
    async fn datapacks_are_kept_by_last_use_and_bounded_in_number_and_age() {
        let (_dir, meta) = open().await;
        for name in ["a", "b", "c"] {
            meta.put_datapack(name, "{}", 2).await.unwrap();
        }
        // Kept: the two most recently used (ties by name, newest second first).
        let mut kept = 0;
        for name in ["a", "b", "c"] {
            kept += usize::from(meta.datapack(name).await.unwrap().is_some());
        }
        assert_eq!(kept, 2);
        assert!(meta.datapack("c").await.unwrap().is_some(), "the one just stored is kept");
        assert_eq!(meta.prune_datapacks(3600).await.unwrap(), 0, "nothing is an hour old");
        assert_eq!(
            meta.prune_datapacks(-1).await.unwrap(),
            2,
            "everything is older than a second from now"
        );
        assert!(meta.datapack("c").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn upload_sessions_are_capped_per_owner_and_per_repository() {
        let (_dir, meta) = open().await;
        let caps = crate::UploadCaps { per_owner: 3, per_repository: 2 };
        let repo = |name: &str| name.parse::<RepoName>().unwrap();
        meta.create_upload("1", &repo("x/a"), "alice", caps).await.unwrap();
        meta.create_upload("2", &repo("x/a"), "alice", caps).await.unwrap();
        let full = meta.create_upload("3", &repo("x/a"), "bob", caps).await;
        assert!(
            matches!(
                full,
                Err(MetadataError::TooManyUploads {
                    scope: crate::UploadScope::Repository,
                    limit: 2
                })
            ),
            "{full:?}"
        );
        meta.create_upload("4", &repo("x/b"), "alice", caps).await.unwrap();
        let full = meta.create_upload("5", &repo("x/c"), "alice", caps).await;
        assert!(
            matches!(
                full,
                Err(MetadataError::TooManyUploads { scope: crate::UploadScope::User, limit: 3 })
            ),
            "{full:?}"
        );
        meta.delete_upload("1").await.unwrap();
        meta.create_upload("6", &repo("x/c"), "alice", caps).await.unwrap();
        assert_eq!(
            meta.upload_repository("3").await.unwrap(),
            None,
            "a refused session leaves no row"
        );
    }
}
