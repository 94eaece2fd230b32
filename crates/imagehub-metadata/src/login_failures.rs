//! Failed password logins per key, in the database replicas share (the rules that
//! turn them into delays are imagehub-core's login limiter).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, Result};

/// The failed logins counted under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailures {
    pub key: String,
    pub failures: u32,
    /// When the last one was counted (milliseconds since the Unix epoch).
    pub last_ms: i64,
    /// Until when logins under the key wait, if they do.
    pub blocked_until_ms: Option<i64>,
}

const SELECT: &str = "SELECT key, failures, last_ms, blocked_until_ms FROM login_failures
     WHERE key IN (SELECT value FROM json_each($1))";

impl Metadata {
    /// The failures under `keys`; a key without any is left out.
    pub async fn login_failures(&self, keys: &[String]) -> Result<Vec<LoginFailures>> {
        let rows = sqlx::query(SELECT).bind(key_list(keys)).fetch_all(&self.pool).await?;
        rows.iter().map(login_failures).collect()
    }

    /// Counts a failed login under each of `keys`, in one write transaction so that
    /// replicas counting at once add up: `count` is given each key's failures so far, in
    /// the order of `keys` (none for a key without), and updates them, which are then
    /// stored. Rows last touched before `forget_before_ms` are removed first. Returns
    /// what `count` returns.
    pub async fn count_login_failure<T>(
        &self,
        keys: &[String],
        forget_before_ms: i64,
        count: impl FnOnce(&mut [LoginFailures]) -> T,
    ) -> Result<T> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_failures WHERE last_ms < $1")
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(SELECT).bind(key_list(keys)).fetch_all(&mut *tx).await?;
        let found = rows.iter().map(login_failures).collect::<Result<Vec<_>>>()?;
        let mut counted: Vec<LoginFailures> = keys
            .iter()
            .map(|key| {
                let earlier = found.iter().find(|f| &f.key == key).cloned();
                earlier.unwrap_or(LoginFailures {
                    key: key.clone(),
                    failures: 0,
                    last_ms: 0,
                    blocked_until_ms: None,
                })
            })
            .collect();
        let result = count(&mut counted);
        for row in &counted {
            sqlx::query(
                "INSERT INTO login_failures (key, failures, last_ms, blocked_until_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
                    last_ms = excluded.last_ms, blocked_until_ms = excluded.blocked_until_ms",
            )
            .bind(&row.key)
            .bind(i64::from(row.failures))
            .bind(row.last_ms)
            .bind(row.blocked_until_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Forgets the failures under `key`.
    pub async fn forget_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn key_list(keys: &[String]) -> String {
    serde_json::to_string(keys).expect("strings serialise")
}

fn login_failures(row: &AnyRow) -> Result<LoginFailures> {
    Ok(LoginFailures {
        key: row.try_get(0)?,
        failures: u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(u32::MAX),
        last_ms: row.try_get(2)?,
        blocked_until_ms: row.try_get(3)?,
    })
}
