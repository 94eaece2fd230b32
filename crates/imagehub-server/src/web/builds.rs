//! Builds in the web UI: `/builds` lists the hub's build jobs and starts one (an app and
//! version of the recipes repository), `/builds/{id}` shows one with its log and what
//! it pushed; both refresh themselves while a build runs. The rights are the API's
//! (`api::may_build`): site admins and the build organization's developers.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_core::{BuildJobError, BuildJobRequest, BuildJobRow};

use super::format::{now, when};
use super::session::Visitor;
use super::{Chrome, PageError, render, render_with_status};
use crate::api::{ApiState, ApiV1Error, may_build};

#[derive(Template)]
#[template(path = "builds.html")]
struct BuildsPage {
    chrome: Chrome,
    csrf: String,
    organization: String,
    problem: Option<String>,
    app: String,
    version: String,
    jobs: Vec<BuildLine>,
    /// Whether a build is still going (the page refreshes itself).
    live: bool,
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    chrome: Chrome,
    csrf: String,
    job: BuildLine,
    platforms: Vec<(String, String)>,
    log: String,
}

struct BuildLine {
    id: i64,
    app: String,
    version: String,
    platforms: String,
    repository: String,
    tag: String,
    state: &'static str,
    reason: String,
    digest: String,
    created_by: String,
    created: String,
    cancellable: bool,
    live: bool,
}

impl BuildLine {
    fn new(job: &BuildJobRow, now: i64) -> BuildLine {
        let platforms: Vec<String> = serde_json::from_str(&job.platforms).unwrap_or_default();
        BuildLine {
            id: job.id,
            app: job.app.clone(),
            version: job.version.clone(),
            platforms: platforms.join(", "),
            repository: job.repository.clone(),
            tag: job.tag.clone(),
            state: job.state.as_str(),
            reason: job.reason.clone().unwrap_or_default(),
            digest: job.digest.clone().unwrap_or_default(),
            created_by: job.created_by.clone(),
            created: when(job.created_at, now).relative,
            cancellable: !job.state.is_final(),
            live: !job.state.is_final(),
        }
    }
}

/// The API's refusal as a page.
fn page_error(e: ApiV1Error) -> PageError {
    match e.status() {
        StatusCode::NOT_FOUND => PageError::not_found(e.message()),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => PageError::forbidden(e.message()),
        StatusCode::BAD_REQUEST => PageError::bad_request(e.message()),
        _ => PageError::internal(e.message()),
    }
}

fn internal(e: BuildJobError) -> PageError {
    PageError::internal(e)
}

/// Sends a visitor without a session to the login page, and checks the others' rights.
async fn builder(state: &ApiState, visitor: &Visitor, here: &str) -> Result<(), Response> {
    if visitor.session_user().is_none() {
        return Err(Redirect::to(&format!("/login?next={here}")).into_response());
    }
    may_build(state, &visitor.caller, "builds").await.map_err(|e| page_error(e).into_response())
}

/// `GET /builds`.
pub async fn list(State(state): State<ApiState>, visitor: Visitor) -> Result<Response, PageError> {
    if let Err(answer) = builder(&state, &visitor, "/builds").await {
        return Ok(answer);
    }
    Ok(render(&builds_page(&state, &visitor, None, "", "").await?))
}

async fn builds_page(
    state: &ApiState,
    visitor: &Visitor,
    problem: Option<String>,
    app: &str,
    version: &str,
) -> Result<BuildsPage, PageError> {
    let now = now();
    let jobs = state.registry.build_jobs(None, 50).await.map_err(internal)?;
    let jobs: Vec<BuildLine> = jobs.iter().map(|j| BuildLine::new(j, now)).collect();
    Ok(BuildsPage {
        chrome: visitor.chrome(""),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        organization: state.registry.build_settings().organization,
        problem,
        app: app.to_string(),
        version: version.to_string(),
        live: jobs.iter().any(|j| j.live),
        jobs,
    })
}

/// `POST /builds` with `intent` `start` (`app`, `version`, `platforms`) or `cancel` (`job`).
pub async fn post(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    if let Err(answer) = builder(&state, &visitor, "/builds").await {
        return Ok(answer);
    }
    let user = visitor.session_user().unwrap_or("anonymous").to_string();
    if form.field("intent") == "cancel" {
        let id = form
            .field("job")
            .parse::<i64>()
            .map_err(|_| PageError::bad_request("No such build."))?;
        let job = state.registry.cancel_build(id).await.map_err(|e| match e {
            BuildJobError::NoSuchJob(_) => PageError::not_found("No such build."),
            other => internal(other),
        })?;
        return Ok(Redirect::to(&format!("/builds/{}", job.id)).into_response());
    }
    let (app, version) =
        (form.field("app").trim().to_string(), form.field("version").trim().to_string());
    let platforms: Vec<String> = form
        .field("platforms")
        .split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let request = BuildJobRequest {
        app: app.clone(),
        version: version.clone(),
        platforms: Some(platforms).filter(|p| !p.is_empty()),
        user,
        origin: "web",
    };
    match state.registry.create_build(request).await {
        Ok(job) => Ok(Redirect::to(&format!("/builds/{}", job.id)).into_response()),
        Err(BuildJobError::Core(e)) => Err(PageError::internal(e)),
        Err(e) => {
            let status = ApiV1Error::from(e);
            let problem = status.message().to_string();
            let code = match status.status() {
                StatusCode::TOO_MANY_REQUESTS => StatusCode::TOO_MANY_REQUESTS,
                StatusCode::NOT_FOUND => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            let page = builds_page(&state, &visitor, Some(problem), &app, &version).await?;
            Ok(render_with_status(&page, code))
        }
    }
}

/// `GET /builds/{id}`.
pub async fn build(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if let Err(answer) = builder(&state, &visitor, &format!("/builds/{id}")).await {
        return Ok(answer);
    }
    let not_found = || PageError::not_found(format!("There is no build {id}."));
    let number = id.parse::<i64>().map_err(|_| not_found())?;
    let job = match state.registry.build_job(number).await {
        Ok(job) => job,
        Err(BuildJobError::NoSuchJob(_)) => return Err(not_found()),
        Err(e) => return Err(internal(e)),
    };
    let platforms: Vec<(String, String)> = job
        .platform_digests
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    Ok(render(&BuildPage {
        chrome: visitor.chrome(""),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        job: BuildLine::new(&job, now()),
        platforms,
        log: job.log.clone(),
    }))
}
