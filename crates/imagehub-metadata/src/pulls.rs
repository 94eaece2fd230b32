//! Pull counts per image and per repository, added in batches by the registry.

use sqlx::Row;

use crate::{Metadata, Result};

impl Metadata {
    /// Adds counted pulls: `(repository, digest, pulls)`.
    pub async fn add_pulls(&self, pulls: &[(String, String, u64)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (repository, digest, count) in pulls {
            sqlx::query(
                "INSERT INTO pull_counts (repository, digest, count) VALUES ($1, $2, $3)
                 ON CONFLICT (repository, digest) DO UPDATE SET count = pull_counts.count + excluded.count",
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
        let row = sqlx::query("SELECT CAST(COALESCE(sum(count), 0) AS BIGINT) FROM pull_counts WHERE repository = $1 AND ($2 IS NULL OR digest = $2)")
            .bind(repository)
            .bind(digest)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Pulls of each of `repositories` (those never pulled are left out).
    pub async fn pull_counts(&self, repositories: &[String]) -> Result<Vec<(String, u64)>> {
        let names = serde_json::Value::from(repositories.to_vec()).to_string();
        let rows = sqlx::query("SELECT repository, CAST(sum(count) AS BIGINT) FROM pull_counts WHERE repository IN (SELECT value FROM json_each($1)) GROUP BY repository")
            .bind(names)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<i64, _>(1) as u64)).collect())
    }

    /// Pulls of each image of `repository` that was pulled: `(digest, pulls)`.
    pub async fn image_pull_counts(&self, repository: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT digest, count FROM pull_counts WHERE repository = $1")
            .bind(repository)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<i64, _>(1) as u64)).collect())
    }
}
