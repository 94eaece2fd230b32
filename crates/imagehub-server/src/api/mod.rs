//! The JSON management API under `/api/v1`: users, access tokens, organizations and
//! members, repositories and their visibility, images and their details, search,
//! DataPacks, the seed's manifests (apply/export), the audit log and the OpenAPI
//! document of it all. It takes the same credentials as
//! the registry (Basic, a registry bearer JWT, or an access token as bearer) and answers
//! errors in one shape, `{"errors":[{"code","message","detail"}]}`.
//!
//! With accounts off (`auth.enabled = false`) the registry is open, and so is the hub
//! part of the API (repositories, images, search, DataPacks, apply and export): every
//! caller may do what anyone may do through `/v2`. The account routes (users, tokens,
//! organizations, members, audit) then answer 404 saying that accounts are off.

mod apply;
mod builds;
mod datapacks;
mod error;
mod images;
mod imports;
mod openapi;
mod orgs;
pub mod params;
mod search;
mod sync;
mod users;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use imagehub_auth::Action;
use imagehub_core::{Access, Accounts, Caller, Registry};
use imagehub_oci::RepoName;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
pub use apply::{API_VERSION, MAX_APPLY_BYTES, apply_manifests};
pub use builds::may_build;
pub use error::{ApiV1Error, ErrorBody, ErrorCode, TooManyRequests, Unauthorized, internal};

pub type ApiResult = Result<Response, ApiV1Error>;

/// What `/api/v1` handlers work with; the account routes, mounted only with accounts
/// on, take `State<Arc<Auth>>`.
#[derive(Clone)]
pub struct ApiState {
    /// `None` with accounts off.
    pub auth: Option<Arc<Auth>>,
    /// The permission policy and repository settings; with accounts off, every caller
    /// is [`Caller::open_registry`], whom it lets do anything.
    pub accounts: Accounts,
    pub registry: Registry,
}

impl FromRef<ApiState> for Arc<Auth> {
    fn from_ref(state: &ApiState) -> Arc<Auth> {
        state.auth.clone().expect("account routes are mounted only when accounts are on")
    }
}

/// The caller of an API request, from its credentials.
pub struct ApiCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller
where
    ApiState: FromRef<S>,
{
    type Rejection = ApiV1Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(auth) = ApiState::from_ref(state).auth else {
            return Ok(ApiCaller(Caller::open_registry()));
        };
        let identity = auth.identify(parts).await?;
        Ok(ApiCaller(auth.caller(&identity).await?))
    }
}

/// Checks `caller` may do `action` to `repository`, answering as `/v2` does: a read of
/// a repository the caller may not see is the 404 of a missing one (same code, same
/// message), and every refused write is the same 403, whether the repository exists.
pub async fn authorize(
    state: &ApiState,
    caller: &Caller,
    repository: &RepoName,
    action: Action,
) -> Result<(), ApiV1Error> {
    match state.accounts.authorize(caller, repository, action).await? {
        Access::Allowed => Ok(()),
        Access::Hidden if action == Action::Pull => Err(repository_not_found(repository)),
        Access::Hidden | Access::Denied => {
            let denied = ApiV1Error::new(
                ErrorCode::Denied,
                format!("{} access to {repository} is denied", action.as_str()),
            );
            Err(denied
                .with_detail("repository", repository.as_str())
                .with_detail("action", action.as_str()))
        }
    }
}

/// The answer for a repository that does not exist, or that the caller may not see.
pub fn repository_not_found(repository: &RepoName) -> ApiV1Error {
    ApiV1Error::new(ErrorCode::NotFound, format!("no repository {repository}"))
        .with_detail("repository", repository.as_str())
}

/// Parses a JSON request body into `T`, with a 400 naming the problem.
pub async fn json_body<T: DeserializeOwned>(request: Request) -> Result<T, ApiV1Error> {
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|_| ApiV1Error::invalid("the body is missing or larger than 1 MiB"))?;
    // The path names the field at fault (`type: unknown variant …`), not just a column.
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        match e.path().to_string().as_str() {
            "." => ApiV1Error::invalid(format!("invalid JSON body: {}", e.inner())),
            path => ApiV1Error::invalid(format!("invalid JSON body: {path}: {}", e.inner()))
                .with_detail("field", path),
        }
    })
}

/// An answer: `value` as JSON with `status`.
pub fn ok<T: serde::Serialize>(status: StatusCode, value: T) -> ApiResult {
    Ok((status, axum::Json(value)).into_response())
}

/// The `/api/v1` router. `auth` is `None` with accounts off; `accounts` is then a
/// policy that lets everyone do anything, as the open registry does.
pub fn router(auth: Option<Arc<Auth>>, accounts: Accounts, registry: Registry) -> Router {
    let hub = Router::new()
        .route("/api/v1/orgs/{org}/repos", get(images::list_repositories))
        .route(
            "/api/v1/orgs/{org}/repos/{repo}",
            get(images::get_repository).patch(orgs::update_repo).delete(images::delete_repository),
        )
        .route("/api/v1/orgs/{org}/repos/{repo}/images", get(images::list_images))
        .route(
            "/api/v1/orgs/{org}/repos/{repo}/images/{reference}",
            get(images::get_image).patch(images::edit_image).delete(images::delete_image),
        )
        .route("/api/v1/orgs/{org}/repos/{repo}/images/{reference}/readme", put(images::put_readme))
        .route("/api/v1/admin/index", axum::routing::post(images::run_index))
        .route("/api/v1/search", get(search::search))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/apply", axum::routing::post(apply::apply))
        .route("/api/v1/export", get(apply::export))
        .route("/api/v1/datapacks", axum::routing::post(datapacks::create_datapack))
        .route("/api/v1/datapacks/{name}", get(datapacks::get_datapack))
        .route("/api/v1/orgs/{org}/images/import", axum::routing::post(imports::import_into_org))
        .route(
            "/api/v1/projects/{project}/images/import",
            axum::routing::post(imports::import_into_project),
        )
        .route("/api/v1/orgs/{org}/imports", get(imports::list_org_jobs))
        .route("/api/v1/imports", get(imports::list_my_jobs))
        .route("/api/v1/builds", get(builds::list).post(builds::create))
        .route("/api/v1/builds/commands", axum::routing::post(builds::command))
        .route("/api/v1/builds/{id}", get(builds::get).delete(builds::cancel))
        .route("/api/v1/imports/{id}", get(imports::get_job).delete(imports::cancel_job))
        .route("/api/v1/imports/{id}/events", get(imports::job_events))
        .route("/api/v1/import-groups/{id}", get(imports::get_group).delete(imports::cancel_group))
        .route("/api/v1/orgs/{org}/sync-rules", get(sync::list_rules).post(sync::create_rule))
        .route(
            "/api/v1/sync-rules/{id}",
            get(sync::get_rule).put(sync::update_rule).delete(sync::delete_rule),
        )
        .route("/api/v1/sync-rules/{id}/run", axum::routing::post(sync::run_rule))
        .route("/api/v1/sync-rules/{id}/runs", get(sync::list_runs));
    if auth.is_none() {
        let off = ACCOUNT_PATHS
            .iter()
            .fold(hub, |router, path| router.route(path, axum::routing::any(accounts_off)));
        return off.with_state(ApiState { auth, accounts, registry });
    }
    let account_routes = Router::new()
        .route("/api/v1/users", get(users::list_users).post(users::create_user))
        .route("/api/v1/user", get(users::get_user).patch(users::update_user))
        .route("/api/v1/user/tokens", get(users::list_tokens).post(users::create_token))
        .route("/api/v1/user/tokens/{id}", delete(users::revoke_token))
        .route("/api/v1/orgs", get(orgs::list_orgs).post(orgs::create_org))
        .route(
            "/api/v1/orgs/{org}",
            get(orgs::get_org).patch(orgs::update_org).delete(orgs::delete_org),
        )
        .route("/api/v1/orgs/{org}/members", get(orgs::list_members))
        .route(
            "/api/v1/orgs/{org}/members/{user}",
            put(orgs::set_member).delete(orgs::remove_member),
        )
        .route("/api/v1/audit", get(users::audit));
    hub.merge(account_routes).with_state(ApiState { auth, accounts, registry })
}

/// The paths of the account routes, which answer [`accounts_off`] with accounts off.
const ACCOUNT_PATHS: [&str; 9] = [
    "/api/v1/users",
    "/api/v1/user",
    "/api/v1/user/tokens",
    "/api/v1/user/tokens/{id}",
    "/api/v1/orgs",
    "/api/v1/orgs/{org}",
    "/api/v1/orgs/{org}/members",
    "/api/v1/orgs/{org}/members/{user}",
    "/api/v1/audit",
];

/// An account route with accounts off.
async fn accounts_off(uri: axum::http::Uri) -> ApiV1Error {
    ApiV1Error::new(
        ErrorCode::NotFound,
        format!(
            "{}: accounts (users, tokens, organizations, audit) are off on this server (auth.enabled = false)",
            uri.path()
        ),
    )
}

/// Unix seconds as RFC 3339, for API answers.
pub fn timestamp(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Tells "absent" from "null" in request fields that can be cleared: `None` when the
/// field is absent, `Some(None)` when it is `null`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
