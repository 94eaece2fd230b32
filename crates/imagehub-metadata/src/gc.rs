//! The queries behind garbage collection and upload expiry. The collection's decisions
//! are made in one transaction, so a push never sees half of them.

use imagehub_oci::Digest;
use sqlx::Row;

use crate::registry::parse_digest;
use crate::{Metadata, Result};

/// A blob that no repository links any more, with its size.
#[derive(Debug, Clone)]
pub struct UnlinkedBlob {
    pub digest: Digest,
    pub size: u64,
}

/// A condition shared by finding and deleting: an untagged manifest, older than the
/// cutoff, that no index in its repository lists and whose subject (if any) is gone.
const GARBAGE_MANIFEST: &str = "m.pushed_at <= $1
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id
                    AND r.child_digest = m.digest AND r.child_is_manifest)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                    WHERE s.repository_id = m.repository_id AND s.digest = m.subject))";

/// A blob link older than the cutoff that no manifest in its repository references.
const GARBAGE_LINK: &str = "rb.linked_at <= $1
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = rb.repository_id
                    AND r.child_digest = rb.digest AND NOT r.child_is_manifest)";

/// What one pass of garbage collection over the database removed (or would remove).
#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    pub manifests: u64,
    pub manifest_bytes: u64,
    pub blob_links: u64,
    /// Blobs no repository links any more; their rows are gone, their files are the
    /// caller's to delete.
    pub blobs: Vec<UnlinkedBlob>,
}

impl Metadata {
    /// Removes, in one transaction, untagged manifests nothing keeps (repeatedly, so an
    /// index takes its children along), then blob links no manifest references, then the
    /// rows of blobs no repository links. With `apply == false` the transaction is rolled
    /// back, which makes a dry run report exactly what a real run would remove.
    pub async fn collect_garbage(&self, cutoff: i64, apply: bool) -> Result<GcPlan> {
        let mut tx = self.begin_write().await?;
        let mut plan = GcPlan::default();
        // Images nest only a few levels deep; the bound stops a pathological chain.
        for _ in 0..16 {
            let deleted = sqlx::query(&format!(
                "DELETE FROM manifests AS m WHERE {GARBAGE_MANIFEST} RETURNING length(content)"
            ))
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            if deleted.is_empty() {
                break;
            }
            let (count, bytes) = (
                deleted.len() as u64,
                deleted.iter().map(|r| r.get::<i64, _>(0) as u64).sum::<u64>(),
            );
            plan.manifests += count;
            plan.manifest_bytes += bytes;
        }
        plan.blob_links =
            sqlx::query(&format!("DELETE FROM repository_blobs AS rb WHERE {GARBAGE_LINK}"))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let rows = sqlx::query(
            "DELETE FROM blobs AS b WHERE b.created_at <= $1
             AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
             RETURNING digest, size",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            plan.blobs.push(UnlinkedBlob {
                digest: parse_digest(row.get(0))?,
                size: row.get::<i64, _>(1) as u64,
            });
        }
        if apply {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(plan)
    }

    /// Whether the blob is recorded at all.
    pub async fn blob_known(&self, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Upload sessions started before the cutoff.
    pub async fn uploads_started_before(&self, cutoff: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE started_at <= $1")
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
