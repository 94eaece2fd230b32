//! `/api/v1/orgs`: organizations, their members, and the visibility of their repositories.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use imagehub_auth::{Role, Visibility};
use imagehub_metadata::OrgRow;
use imagehub_oci::RepoName;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiResult, ApiV1Error, json_body, ok_json, timestamp};
use crate::auth::Auth;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
    #[serde(default)]
    default_visibility: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /api/v1/orgs`: the caller becomes the owner.
pub async fn create_org(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, request: Request) -> ApiResult {
    let body: NewOrg = json_body(request).await?;
    let visibility = parse_visibility(body.default_visibility.as_deref().unwrap_or("private"))?;
    let org = auth.accounts.create_org(&caller, &body.name, visibility, body.description.as_deref().unwrap_or("")).await?;
    ok_json(StatusCode::CREATED, org_json(&org, Some(Role::Owner.as_str())))
}

/// `GET /api/v1/orgs`: the caller's organizations (all, for a site admin).
pub async fn list_orgs(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let orgs = auth.accounts.orgs(&caller).await?;
    ok_json(StatusCode::OK, json!({"orgs": orgs.iter().map(|(o, r)| org_json(o, r.as_deref())).collect::<Vec<_>>()}))
}

/// `GET /api/v1/orgs/{org}`.
pub async fn get_org(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path(org): Path<String>) -> ApiResult {
    let (row, role) = auth.accounts.org(&caller, &org).await?;
    ok_json(StatusCode::OK, org_json(&row, role.map(Role::as_str)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgChange {
    #[serde(default)]
    default_visibility: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH /api/v1/orgs/{org}`: owners change the default visibility or description.
pub async fn update_org(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path(org): Path<String>, request: Request) -> ApiResult {
    let body: OrgChange = json_body(request).await?;
    let visibility = body.default_visibility.as_deref().map(parse_visibility).transpose()?;
    let row = auth.accounts.update_org(&caller, &org, visibility, body.description.as_deref()).await?;
    ok_json(StatusCode::OK, org_json(&row, None))
}

/// `DELETE /api/v1/orgs/{org}`: only an organization without repositories.
pub async fn delete_org(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path(org): Path<String>) -> ApiResult {
    auth.accounts.delete_org(&caller, &org).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/members`.
pub async fn list_members(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path(org): Path<String>) -> ApiResult {
    let members = auth.accounts.members(&caller, &org).await?;
    let members: Vec<Value> =
        members.iter().map(|m| json!({"user": m.user, "role": m.role, "added_at": timestamp(m.added_at)})).collect();
    ok_json(StatusCode::OK, json!({"members": members}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    role: String,
}

/// `PUT /api/v1/orgs/{org}/members/{user}` with `{"role": …}`: add or change a member.
pub async fn set_member(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path((org, user)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    let body: Membership = json_body(request).await?;
    let role: Role = body.role.parse().map_err(ApiV1Error::invalid)?;
    auth.accounts.set_member(&caller, &org, &user, role).await?;
    ok_json(StatusCode::OK, json!({"user": user, "role": role.as_str()}))
}

/// `DELETE /api/v1/orgs/{org}/members/{user}`.
pub async fn remove_member(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path((org, user)): Path<(String, String)>) -> ApiResult {
    auth.accounts.remove_member(&caller, &org, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoChange {
    visibility: String,
}

/// `PATCH /api/v1/orgs/{org}/repos/{repo}` with `{"visibility": …}`; `{repo}` is
/// percent-encoded when it has slashes (`team%2Fapp`). `{org}` may be a user's own
/// namespace too.
pub async fn update_repo(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path((org, repo)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    let body: RepoChange = json_body(request).await?;
    let visibility = parse_visibility(&body.visibility)?;
    let name: RepoName = format!("{org}/{repo}").parse().map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid(e.to_string()))?;
    auth.accounts.set_visibility(&caller, &name, visibility).await?;
    ok_json(StatusCode::OK, json!({"name": name.as_str(), "visibility": visibility.as_str()}))
}

fn parse_visibility(s: &str) -> Result<Visibility, ApiV1Error> {
    s.parse().map_err(ApiV1Error::invalid)
}

fn org_json(org: &OrgRow, role: Option<&str>) -> Value {
    json!({
        "name": org.name,
        "default_visibility": org.default_visibility,
        "description": org.description,
        "created_at": timestamp(org.created_at),
        "role": role,
    })
}
