//! Scheduled sync rules (the regsync and Quay mirroring shape, since Docker Hub and
//! registry.k8s.io list no catalogue): per rule an upstream repository, a target, tag
//! filters (include and exclude regex, a semver range, the newest N), an interval or a
//! cron expression, and a rate-limit floor. A run lists the upstream's tags, `HEAD`s
//! each selected one, and queues imports (one group) only for tags whose digest
//! differs from the target's, so an unchanged tag costs one `HEAD` and no pull; it
//! pauses when the upstream's `RateLimit-Remaining` falls below the floor.

use std::str::FromStr;
use std::time::Duration;

use imagehub_client::{Credentials, RemoteReference, Target};
use imagehub_metadata::{SyncRuleRow, SyncRunRow};
use imagehub_oci::{Reference, RepoName, Tag};
use regex::{Regex, RegexBuilder};
use serde::Serialize;

use super::{ImportError, ImportRequest, check_reachable};
use crate::Registry;

/// The shortest interval between runs.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Most tags one run looks at (after filtering).
const MAX_SELECTED: usize = 1000;

/// When a rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    /// A five-field cron expression, in UTC.
    Cron(String),
}

/// A rule as asked for; checked by [`Registry::create_sync_rule`].
#[derive(Debug, Clone)]
pub struct SyncRuleSpec {
    /// The upstream repository, as `docker pull` takes it, without a tag.
    pub upstream: String,
    pub target: RepoName,
    pub include: Option<String>,
    pub exclude: Option<String>,
    pub semver: Option<String>,
    pub newest: Option<u32>,
    pub schedule: Schedule,
    pub rate_limit_floor: Option<u64>,
    /// `None` keeps the stored credentials when a rule is changed.
    pub credentials: Option<Credentials>,
    pub enabled: bool,
    pub user: String,
}

/// What a run did with one tag.
#[derive(Debug, Clone, Serialize)]
pub struct TagOutcome {
    pub tag: String,
    /// `unchanged` (the target holds this digest), `queued` (an import job), or
    /// `missing` (listed, but its manifest is gone).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
}

/// A rule's filters, compiled.
struct Filters {
    include: Option<Regex>,
    exclude: Option<Regex>,
    semver: Option<semver::VersionReq>,
    newest: Option<u32>,
}

fn refused(field: &str, problem: impl std::fmt::Display) -> ImportError {
    ImportError::Refused(format!("{field}: {problem}"))
}

fn regex(field: &str, pattern: &str) -> Result<Regex, ImportError> {
    // Bounded: a hostile pattern cannot take the server's memory.
    RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| refused(field, e))
}

impl Filters {
    fn of(rule: &SyncRuleRow) -> Result<Filters, ImportError> {
        Ok(Filters {
            include: rule.include_tags.as_deref().map(|p| regex("include", p)).transpose()?,
            exclude: rule.exclude_tags.as_deref().map(|p| regex("exclude", p)).transpose()?,
            semver: rule
                .semver
                .as_deref()
                .map(|r| semver::VersionReq::parse(r).map_err(|e| refused("semver", e)))
                .transpose()?,
            newest: rule.newest,
        })
    }

    /// The tags to sync, newest version first when they are versions.
    fn select(&self, tags: Vec<String>) -> Vec<String> {
        let mut kept: Vec<(Option<semver::Version>, String)> = tags
            .into_iter()
            .filter(|t| self.include.as_ref().is_none_or(|r| r.is_match(t)))
            .filter(|t| self.exclude.as_ref().is_none_or(|r| !r.is_match(t)))
            .map(|t| (version(&t), t))
            .filter(|(v, _)| {
                self.semver.as_ref().is_none_or(|req| v.as_ref().is_some_and(|v| req.matches(v)))
            })
            .collect();
        kept.sort_by(|(va, a), (vb, b)| vb.cmp(va).then_with(|| b.cmp(a)));
        let limit = self.newest.map_or(MAX_SELECTED, |n| (n as usize).min(MAX_SELECTED));
        kept.into_iter().take(limit).map(|(_, t)| t).collect()
    }
}

/// A tag as a semantic version (`v1.2.3` and `1.2.3`), if it is one.
fn version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

impl Schedule {
    /// The first run time after `now` (Unix seconds).
    fn next_after(&self, now: i64) -> Result<i64, ImportError> {
        match self {
            Schedule::Every(every) => Ok(now + every.as_secs() as i64),
            Schedule::Cron(pattern) => {
                let cron = croner::Cron::from_str(pattern).map_err(|e| refused("cron", e))?;
                let from = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
                let next =
                    cron.find_next_occurrence(&from, false).map_err(|e| refused("cron", e))?;
                Ok(next.timestamp())
            }
        }
    }

    fn of(rule: &SyncRuleRow) -> Schedule {
        match (&rule.cron, rule.interval_secs) {
            (Some(cron), _) => Schedule::Cron(cron.clone()),
            (None, secs) => Schedule::Every(Duration::from_secs(secs.unwrap_or(3600))),
        }
    }
}

impl Registry {
    pub async fn create_sync_rule(&self, spec: SyncRuleSpec) -> Result<SyncRuleRow, ImportError> {
        let row = self.checked_rule(&spec, None)?;
        if self.meta.sync_rules_in(&row.namespace).await?.len() >= super::MAX_RULES {
            return Err(ImportError::TooMany(format!(
                "{} has {} sync rules, the most a namespace may have",
                row.namespace,
                super::MAX_RULES
            )));
        }
        let saved = self.meta.save_sync_rule(&row, true).await?;
        self.imports.wake.notify_one();
        Ok(saved)
    }

    /// Replaces a rule's settings; credentials are kept unless new ones are given.
    pub async fn update_sync_rule(
        &self,
        id: i64,
        spec: SyncRuleSpec,
    ) -> Result<SyncRuleRow, ImportError> {
        let current = self.sync_rule(id).await?;
        let mut row = self.checked_rule(&spec, Some(&current))?;
        row.id = id;
        row.created_by = current.created_by;
        Ok(self.meta.save_sync_rule(&row, false).await?)
    }

    pub async fn sync_rule(&self, id: i64) -> Result<SyncRuleRow, ImportError> {
        self.meta.sync_rule(id).await?.ok_or(ImportError::NoSuchRule(id))
    }

    pub async fn sync_rules_in(&self, namespace: &str) -> Result<Vec<SyncRuleRow>, ImportError> {
        Ok(self.meta.sync_rules_in(namespace).await?)
    }

    pub async fn delete_sync_rule(&self, id: i64) -> Result<(), ImportError> {
        match self.meta.delete_sync_rule(id).await? {
            true => Ok(()),
            false => Err(ImportError::NoSuchRule(id)),
        }
    }

    /// Makes the rule due now.
    pub async fn run_sync_rule_now(&self, id: i64) -> Result<(), ImportError> {
        let mut rule = self.sync_rule(id).await?;
        rule.next_run_at = 0;
        self.meta.save_sync_rule(&rule, false).await?;
        self.imports.wake.notify_one();
        Ok(())
    }

    /// The rule's runs, newest first; with a `wait`, once the newest is a finished run
    /// after `after` (or the wait ends).
    pub async fn wait_for_sync_run(
        &self,
        rule_id: i64,
        after: i64,
        wait: Duration,
        limit: u32,
    ) -> Result<Vec<SyncRunRow>, ImportError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.imports.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let runs = self.meta.sync_runs(rule_id, limit).await?;
            let finished = runs.first().is_some_and(|r| r.id > after && r.state != "running");
            if wait.is_zero() || finished || tokio::time::Instant::now() >= deadline {
                return Ok(runs);
            }
            let _ = tokio::time::timeout_at(super::look_again(deadline), changed).await;
        }
    }

    /// Checks a spec and makes the row to store.
    fn checked_rule(
        &self,
        spec: &SyncRuleSpec,
        current: Option<&SyncRuleRow>,
    ) -> Result<SyncRuleRow, ImportError> {
        let settings = self.imports.settings();
        if !settings.enabled {
            return Err(ImportError::Disabled);
        }
        let last = spec.upstream.rsplit('/').next().unwrap_or_default();
        if last.contains([':', '@']) {
            return Err(refused(
                "upstream",
                "name the repository without a tag or digest; filter tags with include",
            ));
        }
        let upstream: RemoteReference =
            spec.upstream.parse().map_err(|e| refused("upstream", e))?;
        check_reachable(&settings, &upstream).map_err(|_| {
            refused(
                "upstream",
                format!(
                    "{} is a local or private address the operator did not list",
                    upstream.registry
                ),
            )
        })?;
        match &spec.schedule {
            Schedule::Every(every) if *every < MIN_INTERVAL => {
                return Err(refused(
                    "interval_secs",
                    format!("at least {} seconds", MIN_INTERVAL.as_secs()),
                ));
            }
            _ => {}
        }
        if spec.newest.is_some_and(|n| n == 0 || n as usize > MAX_SELECTED) {
            return Err(refused("newest", format!("1 to {MAX_SELECTED}")));
        }
        let credentials = match &spec.credentials {
            Some(credentials) => self.imports.sealer.seal(credentials)?,
            None => current.and_then(|c| c.credentials.clone()),
        };
        let (interval_secs, cron) = match &spec.schedule {
            Schedule::Every(every) => (Some(every.as_secs()), None),
            Schedule::Cron(pattern) => (None, Some(pattern.clone())),
        };
        let row = SyncRuleRow {
            id: 0,
            namespace: spec.target.namespace().unwrap_or_default().to_string(),
            created_by: spec.user.clone(),
            upstream: format!("{}/{}", upstream.registry, upstream.repository),
            target_repository: spec.target.to_string(),
            include_tags: spec.include.clone(),
            exclude_tags: spec.exclude.clone(),
            semver: spec.semver.clone(),
            newest: spec.newest,
            interval_secs,
            cron,
            rate_limit_floor: spec.rate_limit_floor,
            credentials,
            enabled: spec.enabled,
            next_run_at: 0,
            created_at: 0,
        };
        Filters::of(&row)?;
        let now = unix_now();
        let next_run_at = spec.schedule.next_after(now)?;
        // A new rule runs at once; a changed one keeps its turn unless its schedule changed.
        let next_run_at = match current {
            None => now,
            Some(c) if Schedule::of(c) == spec.schedule => c.next_run_at,
            Some(_) => next_run_at,
        };
        Ok(SyncRuleRow { next_run_at, ..row })
    }

    /// Starts the runs of the rules that are due.
    pub(crate) async fn start_due_sync_runs(&self) {
        loop {
            let claimed = self
                .meta
                .claim_sync_rule(|rule| {
                    Schedule::of(rule).next_after(unix_now()).unwrap_or(unix_now() + 3600)
                })
                .await;
            match claimed {
                Ok(Some((rule, run))) => {
                    let registry = self.clone();
                    tokio::spawn(async move { registry.run_sync(rule, run).await });
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "could not claim a sync rule");
                    return;
                }
            }
        }
    }

    async fn run_sync(&self, rule: SyncRuleRow, run: SyncRunRow) {
        let (state, reason, group, tags) = match self.sync_once(&rule).await {
            Ok(done) => done,
            Err(reason) => ("failed", Some(reason), None, Vec::new()),
        };
        let tags = serde_json::to_string(&tags).unwrap_or_default();
        if let Err(e) =
            self.meta.finish_sync_run(run.id, state, reason.as_deref(), group, &tags).await
        {
            tracing::error!(rule = rule.id, error = %e, "could not record a sync run");
        }
        self.imports.changed();
    }

    /// One run: the state it ends in, why, the group it queued and what it did per tag.
    async fn sync_once(
        &self,
        rule: &SyncRuleRow,
    ) -> Result<(&'static str, Option<String>, Option<i64>, Vec<TagOutcome>), String> {
        let upstream: RemoteReference =
            rule.upstream.parse().map_err(|e| format!("upstream: {e}"))?;
        let target: RepoName =
            rule.target_repository.parse().map_err(|e| format!("target: {e}"))?;
        let filters = Filters::of(rule).map_err(|e| e.to_string())?;
        let credentials =
            self.imports.sealer.open(rule.credentials.as_deref()).map_err(|e| e.to_string())?;
        let client = self.imports.client().map_err(|e| e.to_string())?;
        let remote = Target::of(&upstream, &credentials);
        let tags = client.tags(&remote).await.map_err(|e| e.to_string())?;
        let mut outcomes = Vec::new();
        let mut requests = Vec::new();
        let mut paused = None;
        for name in filters.select(tags) {
            let Ok(tag) = name.parse::<Tag>() else { continue };
            let head = client
                .head_manifest(&remote, &Reference::Tag(tag.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if let (Some(floor), Some(remaining)) =
                (rule.rate_limit_floor, head.as_ref().and_then(|h| h.rate_limit_remaining))
                && remaining < floor
            {
                paused = Some(format!(
                    "paused: {} allows {remaining} more pulls, below the floor of {floor}; the next run goes on",
                    upstream.registry
                ));
                break;
            }
            let Some(head) = head else {
                outcomes.push(TagOutcome {
                    tag: name,
                    outcome: "missing",
                    digest: None,
                    job: None,
                });
                continue;
            };
            let digest = head.digest.as_ref().map(ToString::to_string);
            let held = self.meta.manifest_by_tag(&target, &tag).await.map_err(|e| e.to_string())?;
            if head.digest.is_some()
                && held.is_some_and(|m| Some(&m.digest) == head.digest.as_ref())
            {
                outcomes.push(TagOutcome { tag: name, outcome: "unchanged", digest, job: None });
                continue;
            }
            let source: RemoteReference = format!("{}:{name}", rule.upstream)
                .parse()
                .map_err(|e| format!("upstream: {e}"))?;
            requests.push(ImportRequest {
                source,
                target: target.clone(),
                tag: Some(tag),
                platforms: None,
                credentials: credentials.clone(),
                user: rule.created_by.clone(),
            });
            outcomes.push(TagOutcome { tag: name, outcome: "queued", digest, job: None });
        }
        let group = match requests.is_empty() {
            true => None,
            false => {
                let (group, jobs) = self
                    .create_import_group(&rule.namespace, &rule.created_by, &requests)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut jobs = jobs.into_iter();
                for outcome in outcomes.iter_mut().filter(|o| o.outcome == "queued") {
                    outcome.job = jobs.next().map(|j| j.id);
                }
                Some(group.id)
            }
        };
        let state = if paused.is_some() { "paused" } else { "done" };
        Ok((state, paused, group, outcomes))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(
        include: Option<&str>,
        exclude: Option<&str>,
        semver: Option<&str>,
        newest: Option<u32>,
    ) -> Filters {
        Filters {
            include: include.map(|p| regex("include", p).expect("regex")),
            exclude: exclude.map(|p| regex("exclude", p).expect("regex")),
            semver: semver.map(|r| semver::VersionReq::parse(r).expect("range")),
            newest,
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn tags_are_selected_by_pattern_version_and_age() {
        let all =
            tags(&["latest", "v1.0.0", "v1.2.0", "1.10.0", "v2.0.0-rc1", "v2.0.0", "nightly"]);
        assert_eq!(filters(None, None, None, None).select(all.clone()).len(), 7);
        assert_eq!(
            filters(Some("^v"), Some("rc"), None, None).select(all.clone()),
            ["v2.0.0", "v1.2.0", "v1.0.0"]
        );
        assert_eq!(
            filters(None, None, Some(">=1.2, <2"), None).select(all.clone()),
            ["1.10.0", "v1.2.0"]
        );
        assert_eq!(
            filters(None, None, Some("*"), Some(2)).select(all.clone()),
            ["v2.0.0", "1.10.0"],
            "versions, newest first"
        );
        assert_eq!(
            filters(Some("^(latest|nightly)$"), None, None, Some(1)).select(all),
            ["nightly"]
        );
    }

    #[test]
    fn schedules() {
        assert_eq!(
            Schedule::Every(Duration::from_secs(600)).next_after(1_000).expect("next"),
            1_600
        );
        // 2024-01-01T00:00:00Z is a Monday; "0 3 * * *" is 03:00 every day.
        let next = Schedule::Cron("0 3 * * *".into()).next_after(1_704_067_200).expect("next");
        assert_eq!(next, 1_704_067_200 + 3 * 3600);
        assert!(Schedule::Cron("61 * * * *".into()).next_after(0).is_err());
        assert!(regex("include", "(a").is_err());
    }
}
