//! Importing images from other registries (seed 004): `POST
//! /api/v1/orgs/{org}/images/import` (and the seed's `/api/v1/projects/{project}/…`)
//! queues a job and answers 202 with it and its URL; `GET /api/v1/imports/{id}` follows
//! it, `DELETE` cancels it; jobs are listed per organization and for the caller.
//!
//! Importing into a repository takes the right to push to it, checked by the same
//! policy as `/v2`; following a job, the right to pull from its target (or having
//! started it).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use futures_util::StreamExt;
use imagehub_auth::Action;
use imagehub_core::{
    Access, Caller, Credentials, ImportError, ImportGroupRow, ImportJobRow, ImportRequest,
    ImportsOf, RemoteReference,
};
use imagehub_oci::{RepoName, Tag};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::OrgPath;
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, json_body, ok, timestamp,
};

/// An image to import, or (with `sources`) a batch of them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    /// What to import, as `docker pull` takes it: `nginx:latest` (Docker Hub),
    /// `ghcr.io/owner/repo:v1.0.0`, `registry.k8s.io/pause@sha256:…`. Give this or `sources`.
    #[schema(examples("nginx:latest"))]
    #[serde(default)]
    source_url: Option<String>,
    /// The repository in the organization; the source's last path component by default.
    #[serde(default)]
    target_image: Option<String>,
    /// The tag to give it; the source's tag by default.
    #[serde(default)]
    target_tag: Option<String>,
    /// Credentials for the upstream registry (for every image of a batch that gives
    /// none of its own); stored sealed, used for that upstream only, and forgotten when
    /// the job ends.
    #[serde(default)]
    auth: Option<UpstreamAuth>,
    /// `os/arch[/variant]` to keep of a multi-platform image (a new index of those
    /// only); all by default.
    #[serde(default)]
    platforms: Option<Vec<String>>,
    /// A batch (up to 100): one group of jobs, each with its own state; the group
    /// succeeds partially when some fail.
    #[serde(default)]
    sources: Option<Vec<BatchItem>>,
}

/// One image of a batch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    source_url: String,
    #[serde(default)]
    target_image: Option<String>,
    #[serde(default)]
    target_tag: Option<String>,
    #[serde(default)]
    auth: Option<UpstreamAuth>,
    #[serde(default)]
    platforms: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    pub(super) username: String,
    #[schema(format = Password)]
    pub(super) password: String,
}

/// An import job.
#[derive(Serialize, ToSchema)]
pub struct ImportJob {
    pub id: i64,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`. A job waiting to try
    /// again (rate limited, upstream down) is `queued`, with `reason` and `retry_at`.
    pub state: String,
    /// The source, normalised (`docker.io/library/nginx:latest`).
    pub source: String,
    /// `org/repo:tag` (or `org/repo` when kept by digest only).
    pub target: String,
    pub platforms: Option<Vec<String>>,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Why it failed, or why it waits.
    pub reason: Option<String>,
    /// When a waiting job runs again.
    #[schema(format = DateTime)]
    pub retry_at: Option<String>,
    pub attempts: u32,
    /// The imported image's digest.
    pub digest: Option<String>,
    /// Bytes and blobs done of the total, overall and per platform; `unchanged` when
    /// the target already held the image (nothing was pulled).
    #[schema(value_type = Object)]
    pub progress: Option<serde_json::Value>,
    /// This job's URL.
    pub url: String,
}

impl From<&ImportJobRow> for ImportJob {
    fn from(job: &ImportJobRow) -> ImportJob {
        let target = match &job.target_tag {
            Some(tag) => format!("{}:{tag}", job.target_repository),
            None => job.target_repository.clone(),
        };
        let waiting = job.state == imagehub_core::ImportState::Queued && job.reason.is_some();
        ImportJob {
            id: job.id,
            state: job.state.as_str().to_string(),
            source: job.source.clone(),
            target,
            platforms: job.platforms.as_deref().and_then(|p| serde_json::from_str(p).ok()),
            created_by: job.created_by.clone(),
            created_at: timestamp(job.created_at),
            started_at: job.started_at.map(timestamp),
            finished_at: job.finished_at.map(timestamp),
            reason: job.reason.clone(),
            retry_at: waiting.then(|| timestamp(job.run_after)),
            attempts: job.attempts,
            digest: job.digest.clone(),
            progress: job.progress.as_deref().and_then(|p| serde_json::from_str(p).ok()),
            url: job_url(job.id),
        }
    }
}

/// A page of import jobs, newest first.
#[derive(Serialize, ToSchema)]
pub struct ImportJobList {
    pub jobs: Vec<ImportJob>,
}

fn job_url(id: i64) -> String {
    format!("/api/v1/imports/{id}")
}

/// Path parameter of the seed's project route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    /// The project: an organization (or the caller's own namespace).
    pub project: String,
}

/// Path parameter of a job's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    pub id: String,
}

/// `POST /api/v1/orgs/{org}/images/import`.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/images/import",
    tag = "imports",
    summary = "Import an image from another registry",
    description = "Queues a job copying `source_url` into the organization, byte for byte (digests preserved), and \
                   answers at once with the job; `Location` names its URL. Needs the right to push to the target.",
    params(OrgPath),
    request_body = NewImport,
    responses(
        (status = 202, description = "The job, queued (or, for `sources`, the group of jobs).", body = ImportJob,
         headers(("Location" = String, description = "The job's (or the group's) URL."))),
        (status = 400, description = "A bad `source_url`, target or platform; the message names the field.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "Imports are turned off on this hub.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn import_into_org(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
    request: Request,
) -> ApiResult {
    create(&state, &caller, &org, request).await
}

/// `POST /api/v1/projects/{project}/images/import`: the seed's name for the same.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/images/import",
    tag = "imports",
    summary = "Import an image (the seed's route)",
    description = "The same as `POST /api/v1/orgs/{org}/images/import`: a project is an organization.",
    params(ProjectPath),
    request_body = NewImport,
    responses(
        (status = 202, description = "The job, queued (or, for `sources`, the group of jobs).", body = ImportJob,
         headers(("Location" = String, description = "The job's (or the group's) URL."))),
        (status = 400, description = "A bad `source_url`, target or platform; the message names the field.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to the target.", body = ErrorBody),
        (status = 404, description = "Imports are turned off on this hub.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn import_into_project(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(ProjectPath { project }): Path<ProjectPath>,
    request: Request,
) -> ApiResult {
    create(&state, &caller, &project, request).await
}

async fn create(state: &ApiState, caller: &Caller, org: &str, request: Request) -> ApiResult {
    if state.auth.is_some() {
        caller.require_user()?;
    }
    let body: NewImport = json_body(request).await?;
    let user = caller.name().unwrap_or("anonymous").to_string();
    let NewImport { source_url, target_image, target_tag, auth, platforms, sources } = body;
    match (source_url, sources) {
        (Some(source_url), None) => {
            let item = BatchItem { source_url, target_image, target_tag, auth, platforms };
            let request = import_request(org, item, None, &user, "")?;
            super::authorize(state, caller, &request.target, Action::Push).await?;
            let job = state.registry.create_import(request).await?;
            let view = ImportJob::from(&job);
            let location = view.url.clone();
            Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(view))
                .into_response())
        }
        (None, Some(items)) => {
            if target_image.is_some() || target_tag.is_some() || platforms.is_some() {
                let problem = "target_image, target_tag and platforms go in each of `sources`";
                return Err(ApiV1Error::invalid_field("sources", problem));
            }
            if items.is_empty() || items.len() > imagehub_core::MAX_BATCH {
                let problem = format!("1 to {} images", imagehub_core::MAX_BATCH);
                return Err(ApiV1Error::invalid_field("sources", problem));
            }
            let mut requests = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let request =
                    import_request(org, item, auth.as_ref(), &user, &format!("sources[{i}]."))?;
                super::authorize(state, caller, &request.target, Action::Push).await?;
                requests.push(request);
            }
            let (group, jobs) = state.registry.create_import_group(org, &user, &requests).await?;
            let view = ImportGroup::new(&group, &jobs);
            let location = view.url.clone();
            Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(view))
                .into_response())
        }
        _ => {
            Err(ApiV1Error::invalid_field("source_url", "give source_url, or sources for a batch"))
        }
    }
}

/// One image to import, checked; errors name the field after `prefix` (`sources[2].`).
fn import_request(
    org: &str,
    item: BatchItem,
    default_auth: Option<&UpstreamAuth>,
    user: &str,
    prefix: &str,
) -> Result<ImportRequest, ApiV1Error> {
    let field = |name: &str| format!("{prefix}{name}");
    let source: RemoteReference =
        item.source_url.parse().map_err(|e| ApiV1Error::invalid_field(&field("source_url"), e))?;
    let image = item.target_image.as_deref().unwrap_or(source.short_name());
    let target: RepoName =
        format!("{org}/{image}").parse().map_err(|e: imagehub_oci::NameError| {
            ApiV1Error::invalid_field(&field("target_image"), e)
        })?;
    let tag: Option<Tag> = match item.target_tag {
        Some(tag) => {
            Some(tag.parse().map_err(|e| ApiV1Error::invalid_field(&field("target_tag"), e))?)
        }
        None => source.tag.clone(),
    };
    let credentials = match item.auth.as_ref().or(default_auth) {
        None => Credentials::Anonymous,
        Some(auth) if auth.username.is_empty() => {
            return Err(ApiV1Error::invalid_field(&field("auth.username"), "is empty"));
        }
        Some(auth) => Credentials::basic(auth.username.clone(), auth.password.clone()),
    };
    Ok(ImportRequest {
        source,
        target,
        tag,
        platforms: item.platforms,
        credentials,
        user: user.to_string(),
    })
}

/// A batch of import jobs.
#[derive(Serialize, ToSchema)]
pub struct ImportGroup {
    pub id: i64,
    /// `running` while a job has not ended; then `succeeded` (all did), `partial` (some
    /// did), `failed` or `cancelled`.
    pub state: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub jobs: Vec<ImportJob>,
    /// This group's URL.
    pub url: String,
}

impl ImportGroup {
    fn new(group: &ImportGroupRow, jobs: &[ImportJobRow]) -> ImportGroup {
        use imagehub_core::ImportState as S;
        let count = |state: S| jobs.iter().filter(|j| j.state == state).count();
        let state = if jobs.iter().any(|j| !j.state.is_final()) {
            "running"
        } else if count(S::Succeeded) == jobs.len() {
            "succeeded"
        } else if count(S::Succeeded) > 0 {
            "partial"
        } else if count(S::Cancelled) == jobs.len() {
            "cancelled"
        } else {
            "failed"
        };
        ImportGroup {
            id: group.id,
            state: state.to_string(),
            created_by: group.created_by.clone(),
            created_at: timestamp(group.created_at),
            jobs: jobs.iter().map(ImportJob::from).collect(),
            url: format!("/api/v1/import-groups/{}", group.id),
        }
    }
}

/// `GET /api/v1/import-groups/{id}?wait=SECONDS`.
#[utoipa::path(
    get,
    path = "/api/v1/import-groups/{id}",
    tag = "imports",
    summary = "Follow a batch import",
    description = "The group's state and every job in it. For whoever started it and the members of its organization.",
    params(JobPath, WaitQuery),
    responses(
        (status = 200, description = "The group.", body = ImportGroup),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such group, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get_group(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let (group, mut jobs) = visible_group(&state, &caller, &id).await?;
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_secs(query.wait.unwrap_or(0).min(60));
    for job in jobs.iter_mut().filter(|j| !j.state.is_final()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        *job = state.registry.wait_for_import(job.id, left).await?;
    }
    ok(StatusCode::OK, ImportGroup::new(&group, &jobs))
}

/// `DELETE /api/v1/import-groups/{id}`: cancels every job that has not ended.
#[utoipa::path(
    delete,
    path = "/api/v1/import-groups/{id}",
    tag = "imports",
    summary = "Cancel a batch import",
    description = "Every job of the group that has not ended is cancelled. For whoever started it and the members of \
                   its organization who may push to the targets.",
    params(JobPath),
    responses(
        (status = 200, description = "The group.", body = ImportGroup),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not push to one of the targets.", body = ErrorBody),
        (status = 404, description = "No such group, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel_group(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    let (group, jobs) = visible_group(&state, &caller, &id).await?;
    if caller.name() != Some(group.created_by.as_str()) {
        for job in &jobs {
            let target: RepoName = job.target_repository.parse().map_err(super::internal)?;
            super::authorize(&state, &caller, &target, Action::Push).await?;
        }
    }
    state.registry.cancel_import_group(group.id, caller.name().unwrap_or("anonymous")).await?;
    let (group, jobs) = state.registry.import_group(group.id).await?;
    ok(StatusCode::OK, ImportGroup::new(&group, &jobs))
}

/// The group `id`, if the caller started it, belongs to its organization or is a site admin.
async fn visible_group(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<(ImportGroupRow, Vec<ImportJobRow>), ApiV1Error> {
    let not_found = || ApiV1Error::new(ErrorCode::NotFound, format!("no import group {id}"));
    let id: i64 = id
        .parse()
        .map_err(|_| ApiV1Error::invalid(format!("import group id {id:?} is not a number")))?;
    let (group, jobs) = match state.registry.import_group(id).await {
        Ok(found) => found,
        Err(ImportError::NoSuchGroup(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let allowed = caller.is_admin()
        || caller.name() == Some(group.created_by.as_str())
        || caller.name() == Some(group.namespace.as_str())
        || state.accounts.org(caller, &group.namespace).await.is_ok();
    if !allowed {
        return Err(not_found());
    }
    Ok((group, jobs))
}

/// How long `GET` waits for the job to end.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to wait for the job to end before answering (a long poll), up to 60; 0 by default.
    #[param(maximum = 60)]
    wait: Option<u64>,
}

/// `GET /api/v1/imports/{id}?wait=SECONDS`.
#[utoipa::path(
    get,
    path = "/api/v1/imports/{id}",
    tag = "imports",
    summary = "Follow an import job",
    description = "Its state, progress, digest and, for a failure or a wait, the reason. For whoever started it and \
                   whoever may pull its target.",
    params(JobPath, WaitQuery),
    responses(
        (status = 200, description = "The job.", body = ImportJob),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such job, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn get_job(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let job = visible_job(&state, &caller, &id, Action::Pull).await?;
    let wait = std::time::Duration::from_secs(query.wait.unwrap_or(0).min(60));
    let job = match wait.is_zero() || job.state.is_final() {
        true => job,
        false => state.registry.wait_for_import(job.id, wait).await?,
    };
    ok(StatusCode::OK, ImportJob::from(&job))
}

/// `DELETE /api/v1/imports/{id}`: cancels the job.
#[utoipa::path(
    delete,
    path = "/api/v1/imports/{id}",
    tag = "imports",
    summary = "Cancel an import job",
    description = "A queued job ends at once, a running one at its next step; what it stored stays for a later \
                   import to reuse. For whoever started it and whoever may push to its target.",
    params(JobPath),
    responses(
        (status = 200, description = "The job, cancelled.", body = ImportJob),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may see the job but not cancel it.", body = ErrorBody),
        (status = 404, description = "No such job, or not one the caller may see.", body = ErrorBody),
        (status = 409, description = "The job has ended already.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel_job(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    let job = visible_job(&state, &caller, &id, Action::Push).await?;
    let by = caller.name().unwrap_or("anonymous");
    if !state.registry.cancel_import(job.id, by).await? {
        let state_name = job.state.as_str();
        return Err(ApiV1Error::new(
            ErrorCode::Conflict,
            format!("import {} has ended ({state_name})", job.id),
        ));
    }
    ok(StatusCode::OK, ImportJob::from(&state.registry.import_job(job.id).await?))
}

/// The job `id`, if the caller started it or may do `action` on its target: a caller
/// who may not even pull it is told it does not exist.
async fn visible_job(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<ImportJobRow, ApiV1Error> {
    let not_found = || ApiV1Error::new(ErrorCode::NotFound, format!("no import job {id}"));
    let id: i64 = id
        .parse()
        .map_err(|_| ApiV1Error::invalid(format!("import job id {id:?} is not a number")))?;
    let job = match state.registry.import_job(id).await {
        Ok(job) => job,
        Err(ImportError::NoSuchJob(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if caller.name() == Some(job.created_by.as_str()) {
        return Ok(job);
    }
    let target: RepoName = job.target_repository.parse().map_err(super::internal)?;
    match state.accounts.authorize(caller, &target, action).await? {
        Access::Allowed => Ok(job),
        Access::Denied if action != Action::Pull => Err(ApiV1Error::new(
            ErrorCode::Denied,
            format!("cancelling import {id} needs the right to push to {target}"),
        )),
        Access::Hidden | Access::Denied => Err(not_found()),
    }
}

/// `GET /api/v1/imports/{id}/events`: the job as server-sent events, one `job` event
/// (its JSON) each time it changes, until it ends; a comment every 15 s keeps proxies
/// from closing a quiet stream.
#[utoipa::path(
    get,
    path = "/api/v1/imports/{id}/events",
    tag = "imports",
    summary = "Follow an import job live",
    description = "Server-sent events: a `job` event with the job's JSON now and whenever it changes, until it ends. \
                   For whoever started it and whoever may pull its target.",
    params(JobPath),
    responses(
        (status = 200, description = "An event stream of `job` events.", content_type = "text/event-stream", body = String),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such job, or not one the caller may see.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn job_events(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let job = visible_job(&state, &caller, &id, Action::Pull).await?;
    let registry = state.registry.clone();
    // (the job to send next, the one last sent)
    let events =
        futures_util::stream::unfold((Some(job), None::<ImportJobRow>), move |(next, sent)| {
            let registry = registry.clone();
            async move {
                let job = match (next, &sent) {
                    (Some(job), _) => job,
                    (None, Some(last)) if last.state.is_final() => return None,
                    (None, Some(last)) => {
                        registry.next_import_change(last, KEEP_ALIVE).await.ok()?
                    }
                    (None, None) => return None,
                };
                if sent.as_ref().is_some_and(|last| same(last, &job)) {
                    return Some((None, (None, Some(job)))); // a quiet interval: nothing to send
                }
                let event = Event::default().event("job").json_data(ImportJob::from(&job)).ok();
                Some((event, (None, Some(job))))
            }
        })
        .filter_map(|event| std::future::ready(event.map(Ok::<_, std::convert::Infallible>)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

/// How often a quiet event stream gets a comment.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn same(a: &ImportJobRow, b: &ImportJobRow) -> bool {
    a.state == b.state && a.progress == b.progress && a.reason == b.reason
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs with a smaller id (the next page after the last job seen).
    before: Option<i64>,
    /// Most jobs answered: 1 to 200, 50 by default.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/orgs/{org}/imports`: the organization's jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/imports",
    tag = "imports",
    summary = "List an organization's import jobs",
    description = "Newest first, for its members (and site admins, and the user whose namespace it is).",
    params(OrgPath, JobQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = ImportJobList),
        (status = 400, description = "Invalid query, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_org_jobs(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let member = caller.is_admin()
        || caller.name() == Some(org.as_str())
        || state.accounts.org(&caller, &org).await.is_ok();
    if !member {
        return Err(ApiV1Error::new(ErrorCode::NotFound, format!("no organization {org:?}")));
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let jobs = state.registry.import_jobs(ImportsOf::Namespace(&org), query.before, limit).await?;
    ok(StatusCode::OK, ImportJobList { jobs: jobs.iter().map(ImportJob::from).collect() })
}

/// `GET /api/v1/imports`: the caller's jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/imports",
    tag = "imports",
    summary = "List the caller's import jobs",
    description = "Newest first: the jobs the caller started, in whatever namespace.",
    params(JobQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = ImportJobList),
        (status = 400, description = "Invalid query, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_my_jobs(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    if state.auth.is_some() {
        caller.require_user()?;
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let user = caller.name().unwrap_or("anonymous");
    let jobs = state.registry.import_jobs(ImportsOf::User(user), query.before, limit).await?;
    ok(StatusCode::OK, ImportJobList { jobs: jobs.iter().map(ImportJob::from).collect() })
}
