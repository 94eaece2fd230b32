//! DataPack specs: cached results, kept by last use and bounded in number and age.

use sqlx::Row;

use crate::{Metadata, Result, now};

/// How stale a DataPack's last use may be before a read records a new one.
const DATAPACK_TOUCH_SECS: i64 = 24 * 3600;

impl Metadata {
    /// Stores a DataPack spec under its name (idempotent: the name is its hash), marks
    /// it used now, and drops the least recently used beyond `keep`.
    pub async fn put_datapack(&self, name: &str, spec_json: &str, keep: u32) -> Result<()> {
        let now = now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO datapacks (name, spec, created_at, used_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET used_at = $3",
        )
        .bind(name)
        .bind(spec_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The one just stored stays; of the others, the most recently used.
        sqlx::query(
            "DELETE FROM datapacks WHERE name IN
             (SELECT name FROM datapacks WHERE name != $1 ORDER BY used_at DESC, name LIMIT 9223372036854775807 OFFSET $2)",
        )
        .bind(name)
        .bind(i64::from(keep.saturating_sub(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stored DataPack spec. Reading it marks it used, at most once a day, so reads
    /// stay reads.
    pub async fn datapack(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT spec, used_at FROM datapacks WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let now = now();
        if row.get::<i64, _>(1) < now - DATAPACK_TOUCH_SECS {
            sqlx::query("UPDATE datapacks SET used_at = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(row.get(0)))
    }

    /// Forgets DataPacks unused for `max_age_secs`; returns how many.
    pub async fn prune_datapacks(&self, max_age_secs: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM datapacks WHERE used_at < $1")
            .bind(now() - max_age_secs)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn datapacks_are_kept_by_last_use_and_bounded_in_number_and_age() {
        let (_dir, meta) = crate::test_support::open().await;
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
}
