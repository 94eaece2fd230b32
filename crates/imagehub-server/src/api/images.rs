//! `/api/v1/orgs/{org}/repos/{repo}/images[/{ref}]`: a repository's images with their
//! base info and merged detail info; `/api/v1/admin/index` runs the indexing queue now.
//! Only callers who may pull a repository see its images; for anyone else it does not
//! exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use imagehub_auth::Action;
use imagehub_core::{Caller, ImageView};
use imagehub_oci::RepoName;
use serde_json::{Value, json};

use super::{ApiCaller, ApiResult, ApiState, ApiV1Error, ok_json, timestamp};

/// `GET …/images`: most recently pushed first.
pub async fn list_images(State(state): State<ApiState>, ApiCaller(caller): ApiCaller, Path((org, repo)): Path<(String, String)>) -> ApiResult {
    let name = readable_repository(&state, &caller, &org, &repo).await?;
    let images = state.registry.images(&name).await.map_err(internal)?;
    if images.is_empty() {
        return Err(not_found(&name));
    }
    let images: Vec<Value> = images.iter().map(|i| image_json(&name, i, false)).collect();
    ok_json(StatusCode::OK, json!({"repository": name.as_str(), "images": images}))
}

/// `GET …/images/{ref}`: `{ref}` is a tag or a digest.
pub async fn get_image(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path((org, repo, reference)): Path<(String, String, String)>,
) -> ApiResult {
    let name = readable_repository(&state, &caller, &org, &repo).await?;
    let image = state.registry.image(&name, &reference).await.map_err(internal)?;
    let image = image.ok_or_else(|| ApiV1Error::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{name} has no image {reference:?}")))?;
    ok_json(StatusCode::OK, image_json(&name, &image, true))
}

/// `POST /api/v1/admin/index`: runs the indexing jobs that are due and answers when they
/// are done (site admins; for operators and tests that must not wait on a timer).
pub async fn run_index(State(state): State<ApiState>, ApiCaller(caller): ApiCaller) -> ApiResult {
    if !caller.user().is_some_and(|u| u.is_admin && u.token.is_none()) {
        return Err(ApiV1Error::new(StatusCode::FORBIDDEN, "DENIED", "only site admins run the indexing queue"));
    }
    let ran = state.registry.run_index_jobs().await.map_err(internal)?;
    let pending = state.registry.pending_index_jobs().await.map_err(internal)?;
    ok_json(StatusCode::OK, json!({"ran": ran, "pending": pending}))
}

/// The repository `{org}/{repo}` if the caller may pull it; 404 otherwise.
async fn readable_repository(state: &ApiState, caller: &Caller, org: &str, repo: &str) -> Result<RepoName, ApiV1Error> {
    let name: RepoName = format!("{org}/{repo}").parse().map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid(e.to_string()))?;
    let actions = state.auth.accounts.repository_actions(caller, &name).await?;
    if !actions.contains(Action::Pull) {
        return Err(not_found(&name));
    }
    Ok(name)
}

fn not_found(name: &RepoName) -> ApiV1Error {
    ApiV1Error::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no repository {name}"))
}

fn internal(e: imagehub_core::CoreError) -> ApiV1Error {
    tracing::error!(error = %e, "image API request failed");
    ApiV1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error; see the server log")
}

/// Base info and detail info; `full` adds the docs and where each came from.
fn image_json(name: &RepoName, image: &ImageView, full: bool) -> Value {
    let row = &image.row;
    let reference = row.tag.clone().unwrap_or_else(|| row.digest.clone());
    let separator = if row.tag.is_some() { ':' } else { '@' };
    let info = row.info.as_ref();
    let platforms: Value = info.and_then(|i| serde_json::from_str(&i.platforms_json).ok()).unwrap_or_else(|| json!([]));
    let mut details = serde_json::to_value(&image.details).unwrap_or_else(|_| json!({}));
    if !full && let Some(map) = details.as_object_mut() {
        map.remove("docs");
    }
    details["id"] = info.and_then(|i| i.config_digest.clone()).into();
    details["arch"] = platforms.as_array().map(|p| p.iter().filter_map(|x| x["architecture"].as_str()).collect::<Vec<_>>()).into();
    let mut value = json!({
        "name": format!("{name}{separator}{reference}"),
        "tag": row.tag,
        "digest": row.digest,
        "media_type": row.media_type,
        "platforms": platforms,
        "size": info.and_then(|i| i.size),
        "created": info.and_then(|i| i.created.clone()),
        "pushed_at": timestamp(row.pushed_at),
        "pushed_by": row.pushed_by,
        "indexed": info.is_some(),
        "index_error": info.and_then(|i| i.error.clone()),
        "details": details,
    });
    if full {
        value["detail_sources"] = image.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>().into();
    }
    value
}
