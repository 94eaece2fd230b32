//! Scheduled sync rules: `/api/v1/orgs/{org}/sync-rules` (list, create) and
//! `/api/v1/sync-rules/{id}` (read, replace, delete; `…/run` runs it now, `…/runs` shows
//! what each run did per tag). Changing a rule takes the right to push to its target;
//! reading it, membership of its organization.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use imagehub_auth::Action;
use imagehub_core::{
    Caller, Credentials, ImportError, RemoteReference, Schedule, SyncRuleRow, SyncRuleSpec,
    SyncRunRow,
};
use imagehub_oci::RepoName;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::imports::{JobPath, UpstreamAuth};
use super::params::OrgPath;
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, json_body, ok, timestamp,
};

/// A sync rule as given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSyncRule {
    /// The upstream repository, as `docker pull` takes it, without a tag: `nginx`,
    /// `ghcr.io/owner/repo`.
    #[schema(examples("nginx"))]
    upstream: String,
    /// The repository in the organization; the upstream's last path component by default.
    #[serde(default)]
    target_image: Option<String>,
    /// Only tags matching this regular expression (anywhere, unless anchored).
    #[serde(default)]
    include: Option<String>,
    /// No tag matching this regular expression.
    #[serde(default)]
    exclude: Option<String>,
    /// Only tags that are versions (`v1.2.3` or `1.2.3`) in this range (`>=1.25, <2`).
    #[serde(default)]
    semver: Option<String>,
    /// Only the newest N of what is left (by version, then by name).
    #[serde(default)]
    newest: Option<u32>,
    /// Run every this many seconds (at least 60); give this or `cron`. Hourly by default.
    #[serde(default)]
    interval_secs: Option<u64>,
    /// Run on this five-field cron schedule, in UTC (`0 3 * * *`).
    #[serde(default)]
    cron: Option<String>,
    /// Pause a run when the upstream's `RateLimit-Remaining` falls below this.
    #[serde(default)]
    rate_limit_floor: Option<u64>,
    /// Credentials for the upstream; stored sealed. Left out on a change, the stored
    /// ones stay.
    #[serde(default)]
    auth: Option<UpstreamAuth>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// A sync rule.
#[derive(Serialize, ToSchema)]
pub struct SyncRule {
    pub id: i64,
    /// `registry/repository`, normalised.
    pub upstream: String,
    pub target: String,
    pub include: Option<String>,
    pub exclude: Option<String>,
    pub semver: Option<String>,
    pub newest: Option<u32>,
    pub interval_secs: Option<u64>,
    pub cron: Option<String>,
    pub rate_limit_floor: Option<u64>,
    /// Whether upstream credentials are stored (they are never shown).
    pub has_credentials: bool,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub next_run_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub url: String,
}

impl From<&SyncRuleRow> for SyncRule {
    fn from(r: &SyncRuleRow) -> SyncRule {
        SyncRule {
            id: r.id,
            upstream: r.upstream.clone(),
            target: r.target_repository.clone(),
            include: r.include_tags.clone(),
            exclude: r.exclude_tags.clone(),
            semver: r.semver.clone(),
            newest: r.newest,
            interval_secs: r.interval_secs,
            cron: r.cron.clone(),
            rate_limit_floor: r.rate_limit_floor,
            has_credentials: r.credentials.is_some(),
            enabled: r.enabled,
            next_run_at: timestamp(r.next_run_at),
            created_by: r.created_by.clone(),
            created_at: timestamp(r.created_at),
            url: format!("/api/v1/sync-rules/{}", r.id),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncRuleList {
    pub rules: Vec<SyncRule>,
}

/// One run of a rule.
#[derive(Serialize, ToSchema)]
pub struct SyncRun {
    pub id: i64,
    /// `running`, `done`, `paused` (the upstream's rate limit fell below the floor) or `failed`.
    pub state: String,
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Per tag: `unchanged` (one HEAD, nothing pulled), `queued` (with its import
    /// `job`), or `missing`.
    #[schema(value_type = Vec<Object>)]
    pub tags: serde_json::Value,
    /// The group of import jobs it queued, if any.
    pub group: Option<String>,
}

impl From<&SyncRunRow> for SyncRun {
    fn from(r: &SyncRunRow) -> SyncRun {
        SyncRun {
            id: r.id,
            state: r.state.clone(),
            reason: r.reason.clone(),
            started_at: timestamp(r.started_at),
            finished_at: r.finished_at.map(timestamp),
            tags: r.tags.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default(),
            group: r.group.map(|g| format!("/api/v1/import-groups/{g}")),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunList {
    pub runs: Vec<SyncRun>,
}

/// The spec a body asks for, checked as far as the edge can.
fn spec(org: &str, body: NewSyncRule, user: &str) -> Result<SyncRuleSpec, ApiV1Error> {
    let upstream: RemoteReference =
        body.upstream.parse().map_err(|e| ApiV1Error::invalid_field("upstream", e))?;
    let image = body.target_image.as_deref().unwrap_or(upstream.short_name());
    let target: RepoName = format!("{org}/{image}")
        .parse()
        .map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid_field("target_image", e))?;
    let schedule = match (body.interval_secs, body.cron) {
        (Some(_), Some(_)) => {
            return Err(ApiV1Error::invalid_field("cron", "give interval_secs or cron, not both"));
        }
        (None, Some(cron)) => Schedule::Cron(cron),
        (interval, None) => Schedule::Every(Duration::from_secs(interval.unwrap_or(3600))),
    };
    let credentials = match body.auth {
        None => None,
        Some(auth) if auth.username.is_empty() => {
            return Err(ApiV1Error::invalid_field("auth.username", "is empty"));
        }
        Some(auth) => Some(Credentials::basic(auth.username, auth.password)),
    };
    Ok(SyncRuleSpec {
        upstream: body.upstream,
        target,
        include: body.include,
        exclude: body.exclude,
        semver: body.semver,
        newest: body.newest,
        schedule,
        rate_limit_floor: body.rate_limit_floor,
        credentials,
        enabled: body.enabled,
        user: user.to_string(),
    })
}

/// `POST /api/v1/orgs/{org}/sync-rules`.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/sync-rules",
    tag = "imports",
    summary = "Create a sync rule",
    description = "Keeps the selected tags of an upstream repository copied into the organization, on a schedule; \
                   the first run starts at once. Needs the right to push to the target.",
    params(OrgPath),
    request_body = NewSyncRule,
    responses(
        (status = 201, description = "The rule.", body = SyncRule,
         headers(("Location" = String, description = "The rule's URL."))),
        (status = 400, description = "A bad field; the message names it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "Imports are turned off on this hub.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn create_rule(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
    request: Request,
) -> ApiResult {
    if state.auth.is_some() {
        caller.require_user()?;
    }
    let body: NewSyncRule = json_body(request).await?;
    let spec = spec(&org, body, caller.name().unwrap_or("anonymous"))?;
    super::authorize(&state, &caller, &spec.target, Action::Push).await?;
    let rule = state.registry.create_sync_rule(spec).await?;
    let view = SyncRule::from(&rule);
    let location = view.url.clone();
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(view)).into_response())
}

/// `GET /api/v1/orgs/{org}/sync-rules`.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/sync-rules",
    tag = "imports",
    summary = "List an organization's sync rules",
    description = "For its members (and site admins).",
    params(OrgPath),
    responses(
        (status = 200, description = "The rules.", body = SyncRuleList),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_rules(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
) -> ApiResult {
    if !member_of(&state, &caller, &org).await {
        return Err(ApiV1Error::new(ErrorCode::NotFound, format!("no organization {org:?}")));
    }
    let rules = state.registry.sync_rules_in(&org).await?;
    ok(StatusCode::OK, SyncRuleList { rules: rules.iter().map(SyncRule::from).collect() })
}

async fn member_of(state: &ApiState, caller: &Caller, namespace: &str) -> bool {
    caller.is_admin()
        || caller.name() == Some(namespace)
        || state.accounts.org(caller, namespace).await.is_ok()
}

/// The rule `id` if the caller belongs to its organization; with `action`, the right to
/// do it on the target too.
async fn visible_rule(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    action: Option<Action>,
) -> Result<SyncRuleRow, ApiV1Error> {
    let not_found = || ApiV1Error::new(ErrorCode::NotFound, format!("no sync rule {id}"));
    let id: i64 = id
        .parse()
        .map_err(|_| ApiV1Error::invalid(format!("sync rule id {id:?} is not a number")))?;
    let rule = match state.registry.sync_rule(id).await {
        Ok(rule) => rule,
        Err(ImportError::NoSuchRule(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if !member_of(state, caller, &rule.namespace).await {
        return Err(not_found());
    }
    if let Some(action) = action {
        let target: RepoName = rule.target_repository.parse().map_err(super::internal)?;
        super::authorize(state, caller, &target, action).await?;
    }
    Ok(rule)
}

/// `GET /api/v1/sync-rules/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/sync-rules/{id}",
    tag = "imports",
    summary = "Read a sync rule",
    params(JobPath),
    responses(
        (status = 200, description = "The rule.", body = SyncRule),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such rule, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get_rule(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    let rule = visible_rule(&state, &caller, &id, None).await?;
    ok(StatusCode::OK, SyncRule::from(&rule))
}

/// `PUT /api/v1/sync-rules/{id}`: replaces the rule's settings.
#[utoipa::path(
    put,
    path = "/api/v1/sync-rules/{id}",
    tag = "imports",
    summary = "Change a sync rule",
    description = "Replaces its settings (stored credentials stay unless `auth` is given). Needs the right to push to \
                   the target, old and new.",
    params(JobPath),
    request_body = NewSyncRule,
    responses(
        (status = 200, description = "The rule.", body = SyncRule),
        (status = 400, description = "A bad field; the message names it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "No such rule, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn update_rule(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
    request: Request,
) -> ApiResult {
    let rule = visible_rule(&state, &caller, &id, Some(Action::Push)).await?;
    let body: NewSyncRule = json_body(request).await?;
    let spec = spec(&rule.namespace, body, caller.name().unwrap_or("anonymous"))?;
    super::authorize(&state, &caller, &spec.target, Action::Push).await?;
    let rule = state.registry.update_sync_rule(rule.id, spec).await?;
    ok(StatusCode::OK, SyncRule::from(&rule))
}

/// `DELETE /api/v1/sync-rules/{id}`: the rule, its runs and its stored credentials go.
#[utoipa::path(
    delete,
    path = "/api/v1/sync-rules/{id}",
    tag = "imports",
    summary = "Delete a sync rule",
    description = "With its runs and stored credentials; images it imported stay.",
    params(JobPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "No such rule, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn delete_rule(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    let rule = visible_rule(&state, &caller, &id, Some(Action::Push)).await?;
    state.registry.delete_sync_rule(rule.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/sync-rules/{id}/run`: runs the rule now.
#[utoipa::path(
    post,
    path = "/api/v1/sync-rules/{id}/run",
    tag = "imports",
    summary = "Run a sync rule now",
    params(JobPath),
    responses(
        (status = 202, description = "The rule, due now.", body = SyncRule),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "No such rule, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn run_rule(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    let rule = visible_rule(&state, &caller, &id, Some(Action::Push)).await?;
    state.registry.run_sync_rule_now(rule.id).await?;
    ok(StatusCode::ACCEPTED, SyncRule::from(&state.registry.sync_rule(rule.id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Wait up to this many seconds (at most 60) for a finished run newer than `after`.
    wait: Option<u64>,
    /// With `wait`: the newest run already seen.
    after: Option<i64>,
    /// Most runs answered: 1 to 100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// `GET /api/v1/sync-rules/{id}/runs`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sync-rules/{id}/runs",
    tag = "imports",
    summary = "A sync rule's runs",
    description = "Newest first, each with what it did per tag. `wait` long-polls for a finished run newer than `after`.",
    params(JobPath, RunsQuery),
    responses(
        (status = 200, description = "The runs.", body = SyncRunList),
        (status = 400, description = "Invalid query.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such rule, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_runs(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let rule = visible_rule(&state, &caller, &id, None).await?;
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(60));
    let after = query.after.unwrap_or(0);
    let runs = state.registry.wait_for_sync_run(rule.id, after, wait, limit).await?;
    ok(StatusCode::OK, SyncRunList { runs: runs.iter().map(SyncRun::from).collect() })
}
