//! `/api/v1/builds`: cluster images built on the server from the operator's recipes
//! repository (seed 003), and `/api/v1/builds/commands`, which takes the chat command
//! `/imagebuild_apps APP VERSION` as plain text or inside a GitHub `issue_comment`
//! webhook. Site admins and the build organization's developers and owners may build
//! and see builds; a webhook is trusted by its signature.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use imagehub_auth::Action;
use imagehub_core::{
    BuildCommand, BuildJobError, BuildJobRequest, BuildJobRow, Caller, parse_build_command,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, json_body, ok, timestamp,
};

/// `POST /api/v1/builds`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBuild {
    /// The app: `applications/APP/` of the recipes repository.
    #[schema(examples("nginx"))]
    app: String,
    /// Its version: `applications/APP/VERSION/`, or `latest/` when that has no folder;
    /// also the tag pushed.
    #[schema(examples("1.23.1"))]
    version: String,
    /// `os/arch` to build; the configured platforms by default.
    #[serde(default)]
    platforms: Option<Vec<String>>,
}

/// A build job.
#[derive(Serialize, ToSchema)]
pub struct BuildJob {
    pub id: i64,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub app: String,
    pub version: String,
    pub platforms: Vec<String>,
    /// Where it is pushed: `org/app:version`.
    pub target: String,
    pub created_by: String,
    /// `api`, `command`, `webhook` or `web`.
    pub origin: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The pushed image (the index over the platforms).
    pub digest: Option<String>,
    /// Each platform's image.
    pub platform_digests: BTreeMap<String, String>,
    /// What the build printed (in the answer for one job only).
    pub log: Option<String>,
    pub url: String,
}

impl BuildJob {
    pub fn new(job: &BuildJobRow, with_log: bool) -> BuildJob {
        let digests: Vec<(String, String)> = job
            .platform_digests
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        BuildJob {
            id: job.id,
            state: job.state.as_str().to_string(),
            app: job.app.clone(),
            version: job.version.clone(),
            platforms: serde_json::from_str(&job.platforms).unwrap_or_default(),
            target: format!("{}:{}", job.repository, job.tag),
            created_by: job.created_by.clone(),
            origin: job.origin.clone(),
            created_at: timestamp(job.created_at),
            started_at: job.started_at.map(timestamp),
            finished_at: job.finished_at.map(timestamp),
            reason: job.reason.clone(),
            digest: job.digest.clone(),
            platform_digests: digests.into_iter().collect(),
            log: with_log.then(|| job.log.clone()),
            url: format!("/api/v1/builds/{}", job.id),
        }
    }
}

/// A page of build jobs.
#[derive(Serialize, ToSchema)]
pub struct BuildJobs {
    pub jobs: Vec<BuildJob>,
    /// The next page: `?before=` this id.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct BuildPath {
    /// The job's id.
    id: String,
}

#[derive(Deserialize, IntoParams)]
pub struct BuildWait {
    /// Seconds to wait for the job to end before answering (at most 60).
    wait: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
pub struct BuildsQuery {
    /// Jobs older than this id.
    before: Option<i64>,
    /// At most this many (1–100, 50 by default).
    limit: Option<u32>,
}

impl From<BuildJobError> for ApiV1Error {
    fn from(e: BuildJobError) -> Self {
        match e {
            BuildJobError::Disabled => ApiV1Error::new(ErrorCode::NotFound, e.to_string()),
            BuildJobError::Invalid { field, .. } => {
                ApiV1Error::invalid(e.to_string()).with_detail("field", field)
            }
            BuildJobError::NoRecipe(message) => ApiV1Error::new(ErrorCode::NotFound, message),
            BuildJobError::NoSuchJob(id) => {
                ApiV1Error::new(ErrorCode::NotFound, format!("no build job {id}"))
            }
            BuildJobError::TooMany(_) => ApiV1Error::new(ErrorCode::TooManyRequests, e.to_string()),
            BuildJobError::Core(e) => super::internal(e),
        }
    }
}

/// Whether `caller` may build: a site admin, or a developer or owner of the build
/// organization. Roles are per namespace, so the right to push to the app's repository
/// is that right.
pub async fn may_build(state: &ApiState, caller: &Caller, app: &str) -> Result<(), ApiV1Error> {
    if state.auth.is_some() {
        caller.require_user()?;
    }
    if state.registry.build_settings().recipes_dir.is_none() {
        return Err(BuildJobError::Disabled.into());
    }
    let target = state.registry.build_target(app)?;
    super::authorize(state, caller, &target, Action::Push).await.map_err(|_| {
        let organization = state.registry.build_settings().organization;
        ApiV1Error::new(
            ErrorCode::Denied,
            format!(
                "building needs a site admin, or a developer of the organization {organization}"
            ),
        )
    })
}

/// `POST /api/v1/builds`: starts a build.
#[utoipa::path(
    post,
    path = "/api/v1/builds",
    tag = "builds",
    summary = "Build a cluster image",
    description = "Queues a build of `applications/APP/VERSION/` (or `latest/`) of the configured recipes \
                   repository, pushed as `ORG/APP:VERSION` into the build organization. For site admins and \
                   the organization's developers.",
    request_body = NewBuild,
    responses(
        (status = 202, description = "The job, queued.", body = BuildJob,
         headers(("Location" = String, description = "The job's URL."))),
        (status = 400, description = "A bad app, version or platform; `detail.field` names it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not build.", body = ErrorBody),
        (status = 404, description = "Builds are off, or the repository has no such app.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let NewBuild { app, version, platforms } = json_body(request).await?;
    may_build(&state, &caller, &app).await?;
    let user = caller.name().unwrap_or("anonymous").to_string();
    let request = BuildJobRequest { app, version, platforms, user, origin: "api" };
    started(state.registry.create_build(request).await?)
}

fn started(job: BuildJobRow) -> ApiResult {
    let view = BuildJob::new(&job, false);
    let location = view.url.clone();
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(view)).into_response())
}

/// `GET /api/v1/builds`.
#[utoipa::path(
    get,
    path = "/api/v1/builds",
    tag = "builds",
    summary = "List builds",
    description = "Newest first, without their logs. For site admins and the build organization's developers.",
    params(BuildsQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = BuildJobs),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not build.", body = ErrorBody),
        (status = 404, description = "Builds are off.", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Query(query): Query<BuildsQuery>,
) -> ApiResult {
    may_build(&state, &caller, "builds").await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    let jobs = state.registry.build_jobs(query.before, limit).await?;
    let next_before = (jobs.len() == limit as usize).then(|| jobs.last().map(|j| j.id)).flatten();
    let jobs = jobs.iter().map(|j| BuildJob::new(j, false)).collect();
    ok(StatusCode::OK, BuildJobs { jobs, next_before })
}

async fn job(state: &ApiState, caller: &Caller, id: &str) -> Result<BuildJobRow, ApiV1Error> {
    let id: i64 =
        id.parse().map_err(|_| ApiV1Error::invalid(format!("build id {id:?} is not a number")))?;
    let job = state.registry.build_job(id).await?;
    may_build(state, caller, &job.app).await?;
    Ok(job)
}

/// `GET /api/v1/builds/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    summary = "Follow a build",
    description = "Its state, log (at most 1 MiB), the pushed digests and, for a failure, the reason.",
    params(BuildPath, BuildWait),
    responses(
        (status = 200, description = "The job.", body = BuildJob),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not build.", body = ErrorBody),
        (status = 404, description = "No such job.", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(BuildPath { id }): Path<BuildPath>,
    Query(query): Query<BuildWait>,
) -> ApiResult {
    let found = job(&state, &caller, &id).await?;
    let wait = std::time::Duration::from_secs(query.wait.unwrap_or(0).min(60));
    let found = match wait.is_zero() || found.state.is_final() {
        true => found,
        false => state.registry.wait_for_build(found.id, wait).await?,
    };
    ok(StatusCode::OK, BuildJob::new(&found, true))
}

/// `DELETE /api/v1/builds/{id}`: cancels it.
#[utoipa::path(
    delete,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    summary = "Cancel a build",
    description = "A queued build ends at once, a running one within a second; nothing is pushed.",
    params(BuildPath),
    responses(
        (status = 200, description = "The job.", body = BuildJob),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not build.", body = ErrorBody),
        (status = 404, description = "No such job.", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(BuildPath { id }): Path<BuildPath>,
) -> ApiResult {
    let found = job(&state, &caller, &id).await?;
    ok(StatusCode::OK, BuildJob::new(&state.registry.cancel_build(found.id).await?, false))
}

/// The parts of a GitHub `issue_comment` event read here.
#[derive(Deserialize)]
struct IssueComment {
    action: String,
    comment: Comment,
}

#[derive(Deserialize)]
struct Comment {
    body: String,
    user: GithubUser,
}

#[derive(Deserialize)]
struct GithubUser {
    login: String,
}

/// `POST /api/v1/builds/commands`.
#[utoipa::path(
    post,
    path = "/api/v1/builds/commands",
    tag = "builds",
    summary = "Run a chat command",
    description = "The cluster-image workflow's command `/imagebuild_apps APP VERSION` (seed 003), read as it \
                   reads it (arguments keep only letters, digits, `.`, `_` and `-`): as a plain-text body from \
                   a caller who may build, or as a GitHub `issue_comment` webhook (`X-GitHub-Event`), whose \
                   `X-Hub-Signature-256` must be the HMAC-SHA256 of the body under `[build] webhook_secret`. \
                   The workflow's other commands answer 400 as not supported.",
    request_body(content = String, content_type = "text/plain", example = "/imagebuild_apps nginx 1.23.1"),
    responses(
        (status = 202, description = "The job, queued.", body = BuildJob),
        (status = 200, description = "A webhook event that holds no command to run (a ping, an edited comment)."),
        (status = 400, description = "Not a command, a command not supported, or its arguments missing.", body = ErrorBody),
        (status = 401, description = "No credentials, or a webhook without a valid signature.", body = ErrorBody),
        (status = 403, description = "The caller may not build.", body = ErrorBody),
        (status = 404, description = "Builds are off, webhooks are not configured, or no such app.", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn command(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult {
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|_| ApiV1Error::invalid("the body is missing or larger than 1 MiB"))?;
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok());
    let (text, user, origin) = match event {
        Some(event) => {
            check_signature(&state, &headers, &body)?;
            if event != "issue_comment" {
                return ok(
                    StatusCode::OK,
                    serde_json::json!({"ignored": format!("{event} event")}),
                );
            }
            let payload: IssueComment = serde_json::from_slice(&body)
                .map_err(|e| ApiV1Error::invalid(format!("issue_comment payload: {e}")))?;
            if payload.action != "created" {
                let ignored = format!("a comment {}, not created", payload.action);
                return ok(StatusCode::OK, serde_json::json!({"ignored": ignored}));
            }
            let login: String = payload.comment.user.login.chars().take(64).collect();
            (payload.comment.body, format!("github:{login}"), "webhook")
        }
        None => {
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| ApiV1Error::invalid("the command is not UTF-8 text"))?;
            (text, caller.name().unwrap_or("anonymous").to_string(), "command")
        }
    };
    let BuildCommand::BuildApp { app, version } =
        parse_build_command(&text).map_err(|e| ApiV1Error::invalid(e.to_string()))?;
    if origin == "command" {
        may_build(&state, &caller, &app).await?;
    }
    let request = BuildJobRequest { app, version, platforms: None, user, origin };
    started(state.registry.create_build(request).await?)
}

/// Checks a webhook's `X-Hub-Signature-256` against the configured secret, in constant
/// time.
fn check_signature(state: &ApiState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiV1Error> {
    let secret = state.registry.build_settings().webhook_secret;
    if secret.is_empty() {
        let message = "webhooks are not configured on this hub ([build] webhook_secret)";
        return Err(ApiV1Error::new(ErrorCode::NotFound, message));
    }
    let refused = || {
        ApiV1Error::new(
            ErrorCode::Unauthorized,
            "X-Hub-Signature-256 is missing or is not this body's signature under the webhook secret",
        )
    };
    let given = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok())
        .filter(|mac| mac.len() == 32)
        .ok_or_else(refused)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| refused())?;
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| refused())
}
