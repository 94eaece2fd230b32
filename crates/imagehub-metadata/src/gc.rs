//! The queries behind garbage collection and upload expiry. Each deletion re-checks its
//! condition inside its own statement, so a push that lands between finding and deleting
//! keeps what it needs.

use imagehub_oci::Digest;
use sqlx::Row;

use crate::{Metadata, Result, parse_digest};

/// A blob that no repository links any more, with its size.
#[derive(Debug, Clone)]
pub struct UnlinkedBlob {
    pub digest: Digest,
    pub size: u64,
}

/// A condition shared by finding and deleting: an untagged manifest, older than the
/// cutoff, that no index in its repository lists and whose subject (if any) is gone.
const GARBAGE_MANIFEST: &str = "m.pushed_at <= ?1
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id
                    AND r.child_digest = m.digest AND r.child_is_manifest = 1)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                    WHERE s.repository_id = m.repository_id AND s.digest = m.subject))";

/// A blob link older than the cutoff that no manifest in its repository references.
const GARBAGE_LINK: &str = "rb.linked_at <= ?1
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = rb.repository_id
                    AND r.child_digest = rb.digest AND r.child_is_manifest = 0)";

impl Metadata {
    /// Counts the manifests garbage collection would delete now, and their bytes.
    pub async fn count_garbage_manifests(&self, cutoff: i64) -> Result<(u64, u64)> {
        let row = sqlx::query(&format!(
            "SELECT count(*), coalesce(sum(length(m.content)), 0) FROM manifests m WHERE {GARBAGE_MANIFEST}"
        ))
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
    }

    /// Deletes garbage manifests (one level: an index deleted now frees its children for
    /// the next call). Returns how many were deleted and their bytes.
    pub async fn delete_garbage_manifests(&self, cutoff: i64) -> Result<(u64, u64)> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (count, bytes) = {
            let row = sqlx::query(&format!(
                "SELECT count(*), coalesce(sum(length(m.content)), 0) FROM manifests m WHERE {GARBAGE_MANIFEST}"
            ))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?;
            (row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64)
        };
        sqlx::query(&format!(
            "DELETE FROM manifests AS m WHERE {GARBAGE_MANIFEST}"
        ))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((count, bytes))
    }

    /// Counts the blob links garbage collection would delete now.
    pub async fn count_garbage_links(&self, cutoff: i64) -> Result<u64> {
        let row = sqlx::query(&format!("SELECT count(*) FROM repository_blobs rb WHERE {GARBAGE_LINK}"))
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Deletes blob links no manifest references; returns how many.
    pub async fn delete_garbage_links(&self, cutoff: i64) -> Result<u64> {
        let done = sqlx::query(&format!("DELETE FROM repository_blobs AS rb WHERE {GARBAGE_LINK}"))
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Blobs older than the cutoff that no repository links (after the deletions above).
    pub async fn unlinked_blobs(&self, cutoff: i64) -> Result<Vec<UnlinkedBlob>> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size FROM blobs b WHERE b.created_at <= ?
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok(UnlinkedBlob { digest: parse_digest(r.get(0))?, size: r.get::<i64, _>(1) as u64 }))
            .collect()
    }

    /// Blobs a dry run would find unlinked once the garbage links were gone.
    pub async fn unlinked_blobs_after_link_gc(&self, cutoff: i64) -> Result<Vec<UnlinkedBlob>> {
        let rows = sqlx::query(&format!(
            "SELECT b.digest, b.size FROM blobs b WHERE b.created_at <= ?1
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest AND NOT ({GARBAGE_LINK}))"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok(UnlinkedBlob { digest: parse_digest(r.get(0))?, size: r.get::<i64, _>(1) as u64 }))
            .collect()
    }

    /// Forgets a blob if no repository links it (re-checked here); returns whether it did.
    /// The caller deletes the bytes afterwards.
    pub async fn forget_blob_if_unlinked(&self, digest: &Digest) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM blobs WHERE digest = ?1
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = ?1)",
        )
        .bind(digest.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the blob is recorded at all.
    pub async fn blob_known(&self, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = ?")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Upload sessions started before the cutoff.
    pub async fn uploads_started_before(&self, cutoff: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE started_at <= ?")
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Every upload session's id.
    pub async fn upload_ids(&self) -> Result<Vec<String>> {
        self.uploads_started_before(i64::MAX).await
    }
}
