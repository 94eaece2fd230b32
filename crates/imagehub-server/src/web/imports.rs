//! Importing from the web UI: `/o/{org}/import` checks a source first (its platforms and
//! size, read from the upstream's manifests without pulling a blob), then queues the
//! import; `/o/{org}/imports` lists the organization's jobs with their progress (the
//! script refreshes it while jobs run; without it, the page reloads itself) and its
//! sync rules with their last runs. The same `Registry` calls as `/api/v1` do the work,
//! and the same policy decides: importing, cancelling and changing rules take the right
//! to push to the target.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_auth::Action;
use imagehub_core::{
    Access, Credentials, ImportError, ImportJobRow, ImportRequest, ImportState, ImportsOf,
    RemoteImage, RemoteReference, Schedule, SyncRuleRow, SyncRuleSpec,
};
use imagehub_oci::{RepoName, Tag};

use super::format::{bytes, now, when};
use super::session::{SmallForm, Visitor};
use super::{Chrome, PageError, render, render_with_status};
use crate::api::ApiState;

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    chrome: Chrome,
    org: String,
    csrf: String,
    problem: Option<String>,
    source: String,
    target_image: String,
    target_tag: String,
    username: String,
    /// What the check found.
    checked: Option<Checked>,
}

struct Checked {
    digest: String,
    size: String,
    platforms: Vec<(String, String)>,
}

/// `GET /o/{org}/import`.
pub async fn form(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    if visitor.session_user().is_none() {
        return Ok(Redirect::to(&format!("/login?next=/o/{org}/import")).into_response());
    }
    member(&state, &visitor, &org).await?;
    Ok(render(&import_page(&visitor, &org, None, &SmallForm::empty(), None)))
}

/// `POST /o/{org}/import` with `intent` `check` (read the source) or `import` (queue it).
pub async fn post(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(org): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    member(&state, &visitor, &org).await?;
    let refuse = |status: StatusCode, problem: String| {
        render_with_status(&import_page(&visitor, &org, Some(problem), &form, None), status)
    };
    let source: RemoteReference = match form.field("source").trim().parse() {
        Ok(source) => source,
        Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, format!("Source: {e}"))),
    };
    let credentials = match form.field("username").trim() {
        "" => Credentials::Anonymous,
        user => Credentials::basic(user, form.field("password")),
    };
    match form.field("intent").as_str() {
        "check" => match state.registry.inspect_remote(&source, &credentials).await {
            Ok(image) => {
                Ok(render(&import_page(&visitor, &org, None, &form, Some(checked(image)))))
            }
            Err(e) => Ok(refuse(StatusCode::BAD_REQUEST, problem_of(e)?)),
        },
        "import" => {
            let image = form.field("target_image");
            let image = Some(image.trim())
                .filter(|i| !i.is_empty())
                .unwrap_or(source.short_name())
                .to_string();
            let target: RepoName = match format!("{org}/{image}").parse() {
                Ok(target) => target,
                Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, format!("Target image: {e}"))),
            };
            let tag: Option<Tag> = match form.field("target_tag").trim() {
                "" => source.tag.clone(),
                tag => match tag.parse() {
                    Ok(tag) => Some(tag),
                    Err(e) => {
                        return Ok(refuse(StatusCode::BAD_REQUEST, format!("Target tag: {e}")));
                    }
                },
            };
            if state.accounts.authorize(&visitor.caller, &target, Action::Push).await?
                != Access::Allowed
            {
                return Ok(refuse(StatusCode::FORBIDDEN, format!("You may not push to {target}.")));
            }
            let offered = form.fields("offered");
            let chosen = form.fields("platform");
            let platforms = (!chosen.is_empty() && chosen.len() < offered.len()).then_some(chosen);
            let user = visitor.session_user().unwrap_or("anonymous").to_string();
            let request = ImportRequest { source, target, tag, platforms, credentials, user };
            match state.registry.create_import(request).await {
                Ok(_) => Ok(Redirect::to(&format!("/o/{org}/imports")).into_response()),
                Err(e) => Ok(refuse(StatusCode::BAD_REQUEST, problem_of(e)?)),
            }
        }
        _ => Err(PageError::bad_request("The form asked for nothing this page does.")),
    }
}

/// An import error as the page shows it; a failure of the hub itself is the error page.
fn problem_of(e: ImportError) -> Result<String, PageError> {
    match e {
        ImportError::Core(e) => Err(e.into()),
        other => Ok(other.to_string()),
    }
}

fn checked(image: RemoteImage) -> Checked {
    Checked {
        size: bytes(image.size),
        platforms: image.platforms.into_iter().map(|(p, size)| (p, bytes(size))).collect(),
        digest: image.digest,
    }
}

fn import_page(
    visitor: &Visitor,
    org: &str,
    problem: Option<String>,
    form: &SmallForm,
    checked: Option<Checked>,
) -> ImportPage {
    ImportPage {
        chrome: visitor.chrome(""),
        org: org.to_string(),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        source: form.field("source"),
        target_image: form.field("target_image"),
        target_tag: form.field("target_tag"),
        username: form.field("username"),
        checked,
    }
}

/// Fails with 404 unless the visitor belongs to `org` (or it is their own namespace, or
/// they are a site admin).
async fn member(state: &ApiState, visitor: &Visitor, org: &str) -> Result<(), PageError> {
    let caller = &visitor.caller;
    let allowed = caller.is_admin()
        || caller.name() == Some(org)
        || state.accounts.org(caller, org).await.is_ok();
    match allowed && visitor.session_user().is_some() {
        true => Ok(()),
        false => Err(PageError::not_found(format!(
            "There is no organization {org}, or none you belong to."
        ))),
    }
}

#[derive(Template)]
#[template(path = "imports.html")]
struct ImportsPage {
    chrome: Chrome,
    org: String,
    csrf: String,
    problem: Option<String>,
    jobs: Vec<JobLine>,
    /// Whether a job is still going (the page refreshes itself).
    live: bool,
    rules: Vec<RuleLine>,
}

struct JobLine {
    id: i64,
    source: String,
    target: String,
    state: &'static str,
    reason: String,
    done: u64,
    total: u64,
    progress: String,
    created: String,
    cancellable: bool,
}

struct RuleLine {
    id: i64,
    upstream: String,
    target: String,
    filters: String,
    schedule: String,
    next: String,
    last_run: String,
}

/// `GET /o/{org}/imports`.
pub async fn list(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    if visitor.session_user().is_none() {
        return Ok(Redirect::to(&format!("/login?next=/o/{org}/imports")).into_response());
    }
    member(&state, &visitor, &org).await?;
    Ok(render(&imports_page(&state, &visitor, &org, None).await?))
}

/// `POST /o/{org}/imports` with `intent`: `cancel` (`job`), `rule` (a new sync rule),
/// `run` or `delete` (`rule`).
pub async fn list_post(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(org): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    member(&state, &visitor, &org).await?;
    let id = |name: &str| {
        form.field(name).parse::<i64>().map_err(|_| PageError::bad_request("No such item."))
    };
    let user = visitor.session_user().unwrap_or("anonymous").to_string();
    let done = match form.field("intent").as_str() {
        "cancel" => {
            let job = state
                .registry
                .import_job(id("job")?)
                .await
                .map_err(|_| PageError::not_found("No such job."))?;
            may_push(&state, &visitor, &job.target_repository, &org).await?;
            state.registry.cancel_import(job.id, &user).await.map(drop)
        }
        "run" | "delete" => {
            let rule = state
                .registry
                .sync_rule(id("rule")?)
                .await
                .map_err(|_| PageError::not_found("No such rule."))?;
            may_push(&state, &visitor, &rule.target_repository, &org).await?;
            match form.field("intent").as_str() {
                "run" => state.registry.run_sync_rule_now(rule.id).await,
                _ => state.registry.delete_sync_rule(rule.id).await,
            }
        }
        "rule" => match rule_spec(&org, &form, &user) {
            Ok(spec) => {
                may_push(&state, &visitor, spec.target.as_str(), &org).await?;
                state.registry.create_sync_rule(spec).await.map(drop)
            }
            Err(problem) => Err(ImportError::Refused(problem)),
        },
        _ => return Err(PageError::bad_request("The form asked for nothing this page does.")),
    };
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/o/{org}/imports")).into_response()),
        Err(e) => {
            let page = imports_page(&state, &visitor, &org, Some(problem_of(e)?)).await?;
            Ok(render_with_status(&page, StatusCode::BAD_REQUEST))
        }
    }
}

/// Fails with 403 unless the visitor may push to `target`, which must be in `org`.
async fn may_push(
    state: &ApiState,
    visitor: &Visitor,
    target: &str,
    org: &str,
) -> Result<(), PageError> {
    let target: RepoName =
        target.parse().map_err(|_| PageError::bad_request("No such repository."))?;
    if target.namespace() != Some(org) {
        return Err(PageError::not_found("No such item in this organization."));
    }
    match state.accounts.authorize(&visitor.caller, &target, Action::Push).await? {
        Access::Allowed => Ok(()),
        _ => Err(PageError::forbidden(format!("That needs the right to push to {target}."))),
    }
}

fn rule_spec(org: &str, form: &SmallForm, user: &str) -> Result<SyncRuleSpec, String> {
    let upstream = form.field("upstream").trim().to_string();
    let source: RemoteReference = upstream.parse().map_err(|e| format!("upstream: {e}"))?;
    let image = form.field("target_image");
    let image =
        Some(image.trim()).filter(|i| !i.is_empty()).unwrap_or(source.short_name()).to_string();
    let target = format!("{org}/{image}").parse().map_err(|e| format!("target image: {e}"))?;
    let optional = |name: &str| Some(form.field(name).trim().to_string()).filter(|v| !v.is_empty());
    let newest = optional("newest")
        .map(|n| n.parse::<u32>().map_err(|_| "newest: a number".to_string()))
        .transpose()?;
    let schedule = match optional("cron") {
        Some(cron) => Schedule::Cron(cron),
        None => {
            let minutes = optional("every_minutes").unwrap_or_else(|| "60".into());
            let minutes: u64 =
                minutes.parse().map_err(|_| "every: a number of minutes".to_string())?;
            Schedule::Every(std::time::Duration::from_secs(minutes.saturating_mul(60)))
        }
    };
    Ok(SyncRuleSpec {
        upstream,
        target,
        include: optional("include"),
        exclude: optional("exclude"),
        semver: optional("semver"),
        newest,
        schedule,
        rate_limit_floor: None,
        credentials: None,
        enabled: true,
        user: user.to_string(),
    })
}

async fn imports_page(
    state: &ApiState,
    visitor: &Visitor,
    org: &str,
    problem: Option<String>,
) -> Result<ImportsPage, PageError> {
    let now = now();
    let jobs =
        state.registry.import_jobs(ImportsOf::Namespace(org), None, 50).await.map_err(internal)?;
    let live = jobs.iter().any(|j| !j.state.is_final());
    let rules = state.registry.sync_rules_in(org).await.map_err(internal)?;
    let mut rule_lines = Vec::with_capacity(rules.len());
    for rule in &rules {
        let last = state
            .registry
            .wait_for_sync_run(rule.id, 0, std::time::Duration::ZERO, 1)
            .await
            .map_err(internal)?;
        rule_lines.push(RuleLine::new(rule, last.first(), now));
    }
    Ok(ImportsPage {
        chrome: visitor.chrome(""),
        org: org.to_string(),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        jobs: jobs.iter().map(|j| JobLine::new(j, now)).collect(),
        live,
        rules: rule_lines,
    })
}

fn internal(e: ImportError) -> PageError {
    PageError::internal(e)
}

impl JobLine {
    fn new(job: &ImportJobRow, now: i64) -> JobLine {
        let progress: serde_json::Value =
            job.progress.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
        let (done, total) = (
            progress["bytes_done"].as_u64().unwrap_or(0),
            progress["bytes_total"].as_u64().unwrap_or(0),
        );
        let text = match (job.state, progress["unchanged"].as_bool()) {
            (ImportState::Succeeded, Some(true)) => "unchanged: nothing pulled".to_string(),
            _ if total > 0 => format!("{} of {}", bytes(done), bytes(total)),
            _ => String::new(),
        };
        JobLine {
            id: job.id,
            source: job.source.clone(),
            target: match &job.target_tag {
                Some(tag) => format!("{}:{tag}", job.target_repository),
                None => job.target_repository.clone(),
            },
            state: job.state.as_str(),
            reason: job.reason.clone().unwrap_or_default(),
            done,
            total: total.max(1),
            progress: text,
            created: when(job.created_at, now).relative,
            cancellable: !job.state.is_final(),
        }
    }
}

impl RuleLine {
    fn new(rule: &SyncRuleRow, last: Option<&imagehub_core::SyncRunRow>, now: i64) -> RuleLine {
        let mut filters = Vec::new();
        for (name, value) in [
            ("include", &rule.include_tags),
            ("exclude", &rule.exclude_tags),
            ("semver", &rule.semver),
        ] {
            if let Some(value) = value {
                filters.push(format!("{name} {value}"));
            }
        }
        if let Some(n) = rule.newest {
            filters.push(format!("newest {n}"));
        }
        let last_run = match last {
            None => "not yet".to_string(),
            Some(run) => {
                let tags: Vec<serde_json::Value> = run
                    .tags
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                let count = |outcome: &str| tags.iter().filter(|t| t["outcome"] == outcome).count();
                format!(
                    "{} {}: {} queued, {} unchanged{}",
                    run.state,
                    when(run.started_at, now).relative,
                    count("queued"),
                    count("unchanged"),
                    run.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                )
            }
        };
        RuleLine {
            id: rule.id,
            upstream: rule.upstream.clone(),
            target: rule.target_repository.clone(),
            filters: if filters.is_empty() { "all tags".into() } else { filters.join(", ") },
            schedule: match (&rule.cron, rule.interval_secs) {
                (Some(cron), _) => format!("cron {cron} (UTC)"),
                (None, Some(secs)) => format!("every {} min", secs / 60),
                (None, None) => String::new(),
            },
            next: when(rule.next_run_at, now).exact,
            last_run,
        }
    }
}
