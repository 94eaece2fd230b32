//! Sync rules and their runs (migration 0016).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, Result, now};

/// A rule as stored; its filters and schedule are checked by core before they get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRuleRow {
    pub id: i64,
    pub namespace: String,
    pub created_by: String,
    /// `registry/repository`, normalised, without a tag.
    pub upstream: String,
    pub target_repository: String,
    pub include_tags: Option<String>,
    pub exclude_tags: Option<String>,
    pub semver: Option<String>,
    pub newest: Option<u32>,
    pub interval_secs: Option<u64>,
    pub cron: Option<String>,
    pub rate_limit_floor: Option<u64>,
    pub credentials: Option<Vec<u8>>,
    pub enabled: bool,
    pub next_run_at: i64,
    pub created_at: i64,
}

/// A run of a rule.
#[derive(Debug, Clone)]
pub struct SyncRunRow {
    pub id: i64,
    pub rule_id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `done`, `paused` (the upstream's rate limit fell below the floor) or `failed`.
    pub state: String,
    pub reason: Option<String>,
    /// The import jobs it queued.
    pub group: Option<i64>,
    /// JSON: per tag, what the run did.
    pub tags: Option<String>,
}

const RULE_COLUMNS: &str = "id, namespace, created_by, upstream, target_repository, include_tags, exclude_tags, \
     semver, newest, interval_secs, cron, rate_limit_floor, credentials, enabled, next_run_at, created_at";
const RUN_COLUMNS: &str = "id, rule_id, started_at, finished_at, state, reason, group_id, tags";

fn rule(r: &AnyRow) -> SyncRuleRow {
    SyncRuleRow {
        id: r.get(0),
        namespace: r.get(1),
        created_by: r.get(2),
        upstream: r.get(3),
        target_repository: r.get(4),
        include_tags: r.get(5),
        exclude_tags: r.get(6),
        semver: r.get(7),
        newest: r.get::<Option<i64>, _>(8).map(|n| n as u32),
        interval_secs: r.get::<Option<i64>, _>(9).map(|n| n as u64),
        cron: r.get(10),
        rate_limit_floor: r.get::<Option<i64>, _>(11).map(|n| n as u64),
        credentials: r.get(12),
        enabled: crate::flag(r, 13),
        next_run_at: r.get(14),
        created_at: r.get(15),
    }
}

fn run(r: &AnyRow) -> SyncRunRow {
    SyncRunRow {
        id: r.get(0),
        rule_id: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        state: r.get(4),
        reason: r.get(5),
        group: r.get(6),
        tags: r.get(7),
    }
}

impl Metadata {
    /// Stores a new rule (`id` and `created_at` are assigned) or replaces one (by `id`).
    pub async fn save_sync_rule(&self, rule_row: &SyncRuleRow, new: bool) -> Result<SyncRuleRow> {
        let sql = match new {
            true => format!(
                "INSERT INTO sync_rules (namespace, created_by, upstream, target_repository, include_tags, exclude_tags,
                     semver, newest, interval_secs, cron, rate_limit_floor, credentials, enabled, next_run_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING {RULE_COLUMNS}"
            ),
            false => format!(
                "UPDATE sync_rules SET namespace = $1, created_by = $2, upstream = $3, target_repository = $4,
                     include_tags = $5, exclude_tags = $6, semver = $7, newest = $8, interval_secs = $9, cron = $10,
                     rate_limit_floor = $11, credentials = $12, enabled = $13, next_run_at = $14
                 WHERE id = $15 RETURNING {RULE_COLUMNS}"
            ),
        };
        let last = if new { now() } else { rule_row.id };
        let found = sqlx::query(&sql)
            .bind(&rule_row.namespace)
            .bind(&rule_row.created_by)
            .bind(&rule_row.upstream)
            .bind(&rule_row.target_repository)
            .bind(&rule_row.include_tags)
            .bind(&rule_row.exclude_tags)
            .bind(&rule_row.semver)
            .bind(rule_row.newest.map(i64::from))
            .bind(rule_row.interval_secs.map(|n| n as i64))
            .bind(&rule_row.cron)
            .bind(rule_row.rate_limit_floor.map(|n| n as i64))
            .bind(&rule_row.credentials)
            .bind(rule_row.enabled)
            .bind(rule_row.next_run_at)
            .bind(last) // created_at for a new rule, the id of one replaced
            .fetch_one(&self.pool)
            .await?;
        Ok(rule(&found))
    }

    pub async fn sync_rule(&self, id: i64) -> Result<Option<SyncRuleRow>> {
        let found = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM sync_rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.as_ref().map(rule))
    }

    pub async fn sync_rules_in(&self, namespace: &str) -> Result<Vec<SyncRuleRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM sync_rules WHERE namespace = $1 ORDER BY id"
        ))
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(rule).collect())
    }

    pub async fn delete_sync_rule(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sync_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims the rule due first, moving its next run to `next_run_at(rule)`, and opens a run.
    pub async fn claim_sync_rule(
        &self,
        next_run_at: impl FnOnce(&SyncRuleRow) -> i64,
    ) -> Result<Option<(SyncRuleRow, SyncRunRow)>> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let found = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM sync_rules WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT 1"
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found.as_ref().map(rule) else { return Ok(None) };
        sqlx::query("UPDATE sync_rules SET next_run_at = $1 WHERE id = $2")
            .bind(next_run_at(&found))
            .bind(found.id)
            .execute(&mut *tx)
            .await?;
        let opened = sqlx::query(&format!(
            "INSERT INTO sync_runs (rule_id, started_at, state) VALUES ($1, $2, 'running') RETURNING {RUN_COLUMNS}"
        ))
        .bind(found.id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((found, run(&opened))))
    }

    /// Ends a run with its state, reason, per-tag outcomes and the group it queued.
    pub async fn finish_sync_run(
        &self,
        id: i64,
        state: &str,
        reason: Option<&str>,
        group: Option<i64>,
        tags: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE sync_runs SET state = $1, reason = $2, group_id = $3, tags = $4, finished_at = $5 WHERE id = $6")
            .bind(state)
            .bind(reason)
            .bind(group)
            .bind(tags)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs left running when the server stopped end as failed.
    pub async fn fail_running_sync_runs(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sync_runs SET state = 'failed', reason = 'the server stopped during the run', finished_at = $1
             WHERE state = 'running'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A rule's runs, newest first.
    pub async fn sync_runs(&self, rule_id: i64, limit: u32) -> Result<Vec<SyncRunRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE rule_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(rule_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(run).collect())
    }

    pub async fn sync_run(&self, id: i64) -> Result<Option<SyncRunRow>> {
        let found = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.as_ref().map(run))
    }
}
