//! `/api/v1/orgs`: organizations, their members, and the visibility of their repositories.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use imagehub_oci::RepoName;
use serde::Deserialize;
use utoipa::ToSchema;

use super::params::{MemberPath, OrgPath, RepoPath};
use super::views::{
    Member, MemberList, MemberRole, Org, OrgList, RepositorySettings, Role, Visibility,
};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, TooManyRequests, Unauthorized,
    json_body, ok,
};
use crate::auth::Auth;

/// A new organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// One lower-case component of the repository name grammar, not taken by a user or organization.
    name: String,
    /// The visibility of repositories created in it; `private` by default.
    #[serde(default)]
    default_visibility: Option<Visibility>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /api/v1/orgs`: the caller becomes the owner.
#[utoipa::path(
    post,
    path = "/api/v1/orgs",
    tag = "orgs",
    summary = "Create an organization",
    description = "The caller becomes its owner. Needs Basic credentials with the password.",
    request_body = NewOrg,
    responses(
        (status = 201, description = "The organization.", body = Org),
        (status = 400, description = "Invalid body or name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Credentials other than the password.", body = ErrorBody),
        (status = 409, description = "The name is taken (by a user or an organization).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn create_org(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let body: NewOrg = json_body(request).await?;
    let visibility = body.default_visibility.unwrap_or(Visibility::Private).into();
    let org = auth
        .accounts
        .create_org(&caller, &body.name, visibility, body.description.as_deref().unwrap_or(""))
        .await?;
    ok(StatusCode::CREATED, Org::new(&org, Some(imagehub_auth::Role::Owner)))
}

/// `GET /api/v1/orgs`: the caller's organizations (all, for a site admin).
#[utoipa::path(
    get,
    path = "/api/v1/orgs",
    tag = "orgs",
    summary = "List the caller's organizations",
    description = "The organizations the caller belongs to, with the caller's role; all of them for a site admin.",
    responses(
        (status = 200, description = "The organizations.", body = OrgList),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_orgs(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let orgs = auth.accounts.orgs(&caller).await?;
    let orgs = orgs.iter().map(|(org, role)| Org::new(org, *role)).collect();
    ok(StatusCode::OK, OrgList { orgs })
}

/// `GET /api/v1/orgs/{org}`.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}",
    tag = "orgs",
    summary = "Get an organization",
    description = "Members and site admins see it; for anyone else it does not exist.",
    params(OrgPath),
    responses(
        (status = 200, description = "The organization, with the caller's role.", body = Org),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get_org(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
) -> ApiResult {
    let (row, role) = auth.accounts.org(&caller, &org).await?;
    ok(StatusCode::OK, Org::new(&row, role))
}

/// Changes to an organization; fields left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgChange {
    /// The visibility of repositories created from now on.
    #[serde(default)]
    default_visibility: Option<Visibility>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH /api/v1/orgs/{org}`: owners change the default visibility or description.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}",
    tag = "orgs",
    summary = "Change an organization",
    description = "Owners (and site admins) change the default visibility or the description. Needs Basic credentials \
                   with the password.",
    params(OrgPath),
    request_body = OrgChange,
    responses(
        (status = 200, description = "The organization as it now is (`role` is `null`).", body = Org),
        (status = 400, description = "Invalid body, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller is not an owner (nor a site admin), or used a token instead of the \
                                      password.", body = ErrorBody),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn update_org(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
    request: Request,
) -> ApiResult {
    let body: OrgChange = json_body(request).await?;
    let visibility = body.default_visibility.map(Into::into);
    auth.accounts.update_org(&caller, &org, visibility, body.description.as_deref()).await?;
    let (row, role) = auth.accounts.org(&caller, &org).await?;
    ok(StatusCode::OK, Org::new(&row, role))
}

/// `DELETE /api/v1/orgs/{org}`: only an organization without repositories.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}",
    tag = "orgs",
    summary = "Delete an organization",
    description = "Only an organization without repositories. Owners and site admins; needs Basic credentials with the \
                   password.",
    params(OrgPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller is not an owner (nor a site admin), or used a token instead of the \
                                      password.", body = ErrorBody),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 409, description = "The organization still has repositories.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn delete_org(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
) -> ApiResult {
    auth.accounts.delete_org(&caller, &org).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/members`.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/members",
    tag = "orgs",
    summary = "List an organization's members",
    description = "Members and site admins see them.",
    params(OrgPath),
    responses(
        (status = 200, description = "The members.", body = MemberList),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such organization, or the caller is not a member.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_members(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(OrgPath { org }): Path<OrgPath>,
) -> ApiResult {
    let members = auth.accounts.members(&caller, &org).await?;
    let members = members.iter().map(Member::from).collect();
    ok(StatusCode::OK, MemberList { members })
}

/// A member's role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    role: Role,
}

/// `PUT /api/v1/orgs/{org}/members/{user}` with `{"role": …}`: add or change a member.
#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/members/{user}",
    tag = "orgs",
    summary = "Add a member or change their role",
    description = "Owners and site admins; needs Basic credentials with the password. An organization keeps at least \
                   one owner.",
    params(MemberPath),
    request_body = Membership,
    responses(
        (status = 200, description = "The member's role as now set.", body = MemberRole),
        (status = 400, description = "Invalid body or role, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller is not an owner (nor a site admin), or used a token instead of the \
                                      password.", body = ErrorBody),
        (status = 404, description = "No such organization (or the caller is not a member), or no such user.", body = ErrorBody),
        (status = 409, description = "The organization would lose its last owner.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn set_member(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(MemberPath { org, user }): Path<MemberPath>,
    request: Request,
) -> ApiResult {
    let body: Membership = json_body(request).await?;
    auth.accounts.set_member(&caller, &org, &user, body.role.into()).await?;
    ok(StatusCode::OK, MemberRole { user, role: body.role })
}

/// `DELETE /api/v1/orgs/{org}/members/{user}`.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/members/{user}",
    tag = "orgs",
    summary = "Remove a member",
    description = "Owners and site admins; needs Basic credentials with the password. An organization keeps at least \
                   one owner.",
    params(MemberPath),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller is not an owner (nor a site admin), or used a token instead of the \
                                      password.", body = ErrorBody),
        (status = 404, description = "No such organization (or the caller is not a member), no such user, or the user \
                                      is not a member.", body = ErrorBody),
        (status = 409, description = "The organization would lose its last owner.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn remove_member(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(MemberPath { org, user }): Path<MemberPath>,
) -> ApiResult {
    auth.accounts.remove_member(&caller, &org, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A repository's settings; at least one. A `null` description clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoChange {
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    description: Option<Option<String>>,
}

/// A field that may be absent (`None`) or `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/orgs/{org}/repos/{repo}` with `{"visibility": …}`; `{repo}` is
/// percent-encoded when it has slashes (`team%2Fapp`). `{org}` may be a user's own
/// namespace too.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/repos/{repo}",
    tag = "repositories",
    summary = "Set a repository's visibility or description",
    description = "Owners of the organization, the user whose namespace it is, and site admins; needs Basic \
                   credentials with the password. The repository need not exist yet.",
    params(RepoPath),
    request_body = RepoChange,
    responses(
        (status = 200, description = "The settings as now set.", body = RepositorySettings),
        (status = 400, description = "Invalid body, visibility or repository name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller does not own the namespace, or used a token instead of the password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn update_repo(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(RepoPath { org, repo }): Path<RepoPath>,
    request: Request,
) -> ApiResult {
    let body: RepoChange = json_body(request).await?;
    if body.visibility.is_none() && body.description.is_none() {
        return Err(ApiV1Error::invalid("give visibility or description"));
    }
    let visibility = body.visibility.map(imagehub_auth::Visibility::from);
    let name: RepoName = format!("{org}/{repo}")
        .parse()
        .map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid(e.to_string()))?;
    if let Some(visibility) = visibility {
        state.accounts.set_visibility(&caller, &name, visibility).await?;
    }
    if let Some(description) = &body.description {
        state.accounts.set_repository_description(&caller, &name, description.as_deref()).await?;
    }
    let visibility = state.accounts.visibility_of(&name).await?;
    let description = state.accounts.repository_description(&name).await?;
    ok(
        StatusCode::OK,
        RepositorySettings { name: name.to_string(), visibility: visibility.into(), description },
    )
}
