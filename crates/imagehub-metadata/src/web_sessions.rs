//! Web UI sessions: created at login, read on every page, touched as they are used,
//! ended at logout or expiry. The rules (lifetimes, who may log in) live in core.

use sqlx::Row;

use crate::accounts::{USER_COLUMNS, user_row};
use crate::{Metadata, Result, UserRow, now};

/// A stored session.
#[derive(Debug, Clone)]
pub struct WebSessionRow {
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// How stale `last_seen_at` may be before a read records a new one, so that reading a
/// page does not write each time.
const TOUCH_SECS: i64 = 60;

impl Metadata {
    pub async fn create_web_session(
        &self,
        secret_hash: &str,
        user_id: i64,
        csrf: &str,
        client: &str,
    ) -> Result<()> {
        let now = now();
        sqlx::query(
            "INSERT INTO web_sessions (secret_hash, user_id, csrf, created_at, last_seen_at, client) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(secret_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(now)
        .bind(client)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session with this secret hash and its user; marks it used (at most once a minute).
    pub async fn web_session(&self, secret_hash: &str) -> Result<Option<(WebSessionRow, UserRow)>> {
        let columns =
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns}, s.csrf, s.created_at, s.last_seen_at
             FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_row(&row)?;
        let session =
            WebSessionRow { csrf: row.get(8), created_at: row.get(9), last_seen_at: row.get(10) };
        if session.last_seen_at < now() - TOUCH_SECS {
            sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE secret_hash = $2")
                .bind(now())
                .bind(secret_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((session, user)))
    }

    /// Ends a session; ending one that is gone is not an error.
    pub async fn delete_web_session(&self, secret_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE secret_hash = $1")
            .bind(secret_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user (after a password change).
    pub async fn delete_web_sessions_of(&self, user_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets sessions idle since `idle_before` or created before `created_before`.
    pub async fn prune_web_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM web_sessions WHERE last_seen_at < $1 OR created_at < $2")
                .bind(idle_before)
                .bind(created_before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
