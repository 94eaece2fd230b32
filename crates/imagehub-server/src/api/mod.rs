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
mod datapacks;
mod images;
mod openapi;
mod orgs;
mod search;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use imagehub_auth::Action;
use imagehub_core::{Access, AccountError, Accounts, Caller, Registry};
use imagehub_oci::RepoName;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::{Auth, CredentialError};

/// An `/api/v1` error. `detail` says for programs what `message` says for people:
/// the field at fault, the repository, the document of an apply, when to retry.
#[derive(Debug)]
pub struct ApiV1Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: serde_json::Map<String, serde_json::Value>,
    retry_after: Option<u64>,
}

impl ApiV1Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiV1Error {
        ApiV1Error {
            status,
            code,
            message: message.into(),
            detail: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiV1Error {
        ApiV1Error::new(StatusCode::BAD_REQUEST, "INVALID", message)
    }

    /// A 400 about one field of the request (`spec.name`, `keywords`); the message
    /// starts with the field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> ApiV1Error {
        ApiV1Error::invalid(format!("{field}: {problem}")).with_detail("field", field)
    }

    /// Adds `key` to the error's `detail` object.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiV1Error {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    /// The same error, its message prefixed with where it happened.
    pub fn context(mut self, place: &str) -> ApiV1Error {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl From<AccountError> for ApiV1Error {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            AccountError::BadCredentials | AccountError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            }
            AccountError::TooManyAttempts { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                let error =
                    ApiV1Error::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", message)
                        .with_detail("retry_after_secs", secs);
                return ApiV1Error { retry_after: Some(secs), ..error };
            }
            AccountError::Forbidden(_) => (StatusCode::FORBIDDEN, "DENIED"),
            AccountError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            AccountError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            AccountError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID"),
            AccountError::Webhook(_) => (StatusCode::BAD_GATEWAY, "UPSTREAM"),
            AccountError::Setup(_) | AccountError::Metadata(_) => return internal(e),
        };
        ApiV1Error::new(status, code, message)
    }
}

impl IntoResponse for ApiV1Error {
    fn into_response(self) -> Response {
        let detail = if self.detail.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::Object(self.detail)
        };
        let body =
            json!({"errors": [{"code": self.code, "message": self.message, "detail": detail}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(r#"Basic realm="imagehub""#),
            );
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult = Result<Response, ApiV1Error>;

/// A failure of the server itself: logged with its cause, answered without it.
pub fn internal(e: impl std::fmt::Display) -> ApiV1Error {
    tracing::error!(error = %e, "management API request failed");
    ApiV1Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "internal error; see the server log",
    )
}

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

impl From<CredentialError> for ApiV1Error {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Malformed => ApiV1Error::invalid("malformed Authorization header"),
            CredentialError::BadToken(why) => {
                ApiV1Error::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why)
            }
            CredentialError::Account(e) => e.into(),
        }
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
                StatusCode::FORBIDDEN,
                "DENIED",
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
    ApiV1Error::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no repository {repository}"))
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

pub fn ok_json(status: StatusCode, value: serde_json::Value) -> ApiResult {
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
        .route("/api/v1/datapacks/{name}", get(datapacks::get_datapack));
    if auth.is_none() {
        let off = ACCOUNT_PATHS
            .iter()
            .fold(hub, |router, path| router.route(path, axum::routing::any(accounts_off)));
        return off.with_state(ApiState { auth, accounts, registry });
    }
    let account_routes = Router::new()
        .route("/api/v1/users", axum::routing::post(users::create_user))
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
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
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
