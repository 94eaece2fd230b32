//! The OCI Distribution API on `/v2/`: one dispatcher that recognises the endpoint from
//! the path (names contain slashes, so axum's router cannot) and the handlers per area.

mod blobs;
mod listings;
mod manifests;
pub mod route;
mod uploads;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use imagehub_auth::{Action, Actions, Scope};
use imagehub_core::{Access, AuditAction, CoreError, Registry};
use imagehub_oci::{OciErrorCode, RepoName};

use crate::auth::{Auth, AuthState, Identity, account_error};
use crate::error::{ApiError, EdgeError};
use route::V2Route;

/// The `/v2` routers' state: the registry, and accounts unless `auth.enabled = false`.
#[derive(Clone)]
pub struct V2State {
    pub registry: Registry,
    pub auth: AuthState,
}

/// What every `/v2` handler receives: the registry, the parsed repository name, who is
/// asking, and the request's query, headers and body.
pub struct V2Request {
    pub registry: Registry,
    pub name: RepoName,
    pub requester: Requester,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Body,
}

/// Who is asking, for checks beyond the route's own repository (the source of a mount).
pub struct Requester {
    auth: AuthState,
    identity: Identity,
}

impl Requester {
    /// The user making the request, when accounts are on and the caller is one.
    pub fn actor(&self) -> Option<&str> {
        self.identity.actor()
    }

    /// Whether the caller may pull from `repository`.
    pub async fn may_pull(&self, repository: &RepoName) -> bool {
        match &self.auth {
            None => true,
            Some(auth) => auth
                .repository_actions(&self.identity, repository)
                .await
                .is_ok_and(|a| a.contains(Action::Pull)),
        }
    }
}

impl V2Request {
    fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The declared `Content-Length`, if any.
    fn content_length(&self) -> Result<Option<u64>, ApiError> {
        match self.header(header::CONTENT_LENGTH) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::new(OciErrorCode::SizeInvalid)
                    .message(format!("Content-Length {v:?} is not a number"))
            }),
        }
    }
}

type HandlerResult = Result<Response, ApiError>;

/// The `/v2` router.
pub fn router(registry: Registry, auth: AuthState) -> Router {
    Router::new()
        .route("/v2", get(api_version_check))
        .route("/v2/", get(api_version_check))
        .route("/v2/_catalog", get(listings::list_catalog))
        .route("/v2/{*path}", any(dispatch))
        .layer(middleware::from_fn(api_version_header))
        .with_state(V2State { registry, auth })
}

/// `GET /v2/`: tells clients this is a registry speaking API version 2. With accounts
/// on, callers without credentials get the challenge that sends them to `/token`.
async fn api_version_check(State(state): State<V2State>, request: Request) -> Response {
    if let Some(auth) = &state.auth {
        let (parts, _) = request.into_parts();
        match auth.identify(&parts).await {
            Ok(Identity::Anonymous) => {
                return auth.challenge(&parts.headers, None, false).into_response();
            }
            Ok(_) => {}
            Err(e) => return auth.refusal(&parts.headers, e).into_response(),
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// Every `/v2` response carries `Docker-Distribution-API-Version`, as distribution sends it.
async fn api_version_header(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    response
}

async fn dispatch(
    State(state): State<V2State>,
    Path(path): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let Some(route) = V2Route::parse(&path) else {
        return not_found();
    };
    let name = match route_name(&route).parse::<RepoName>() {
        Ok(name) => name,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return ApiError::from(EdgeError::MalformedQuery(e.to_string())).into_response(),
    };
    let identity = match authorize(&state, &parts, &route, &method, &name).await {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let audit =
        (method == Method::DELETE).then(|| (name.clone(), identity.actor().map(str::to_owned)));
    // An anonymous caller is told to log in about a missing repository exactly as about
    // one it may not see, so probing cannot tell them apart.
    let missing_answer = match &state.auth {
        Some(auth) if identity.is_anonymous() => {
            let insufficient = matches!(identity, Identity::Token(_));
            Some(login_challenge(
                auth,
                &parts.headers,
                &name,
                needed_action(&route, &method),
                insufficient,
            ))
        }
        _ => None,
    };
    let requester = Requester { auth: state.auth.clone(), identity };
    let request = V2Request {
        registry: state.registry,
        name,
        requester,
        query,
        headers: parts.headers,
        body,
    };
    let result = match (route, method) {
        (V2Route::Tags { .. }, Method::GET) => listings::list_tags(request).await,
        (V2Route::Referrers { digest, .. }, Method::GET) => {
            listings::list_referrers(request, digest).await
        }
        (V2Route::Manifest { reference, .. }, Method::GET) => {
            manifests::get_manifest(request, reference, true).await
        }
        (V2Route::Manifest { reference, .. }, Method::HEAD) => {
            manifests::get_manifest(request, reference, false).await
        }
        (V2Route::Manifest { reference, .. }, Method::PUT) => {
            manifests::put_manifest(request, reference).await
        }
        (V2Route::Manifest { reference, .. }, Method::DELETE) => {
            manifests::delete_manifest(request, reference).await
        }
        (V2Route::Blob { digest, .. }, Method::GET) => blobs::get_blob(request, digest, true).await,
        (V2Route::Blob { digest, .. }, Method::HEAD) => {
            blobs::get_blob(request, digest, false).await
        }
        (V2Route::Blob { digest, .. }, Method::DELETE) => blobs::delete_blob(request, digest).await,
        (V2Route::UploadStart { .. }, Method::POST) => uploads::start_blob_upload(request).await,
        (V2Route::Upload { id, .. }, Method::GET) => uploads::get_blob_upload(request, id).await,
        (V2Route::Upload { id, .. }, Method::PATCH) => {
            uploads::patch_blob_upload(request, id).await
        }
        (V2Route::Upload { id, .. }, Method::PUT) => uploads::put_blob_upload(request, id).await,
        (V2Route::Upload { id, .. }, Method::DELETE) => {
            uploads::cancel_blob_upload(request, id).await
        }
        (_, method) => Err(EdgeError::MethodNotSupported(method).into()),
    };
    let result = match (result, missing_answer) {
        (Err(e), Some(challenge)) if e.code() == OciErrorCode::NameUnknown => Err(challenge),
        (result, _) => result,
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    if let (Some(auth), Some((name, actor))) = (&state.auth, audit)
        && response.status().is_success()
    {
        let target = format!("/v2/{path}");
        auth.accounts
            .audit(
                actor.as_deref(),
                AuditAction::RegistryDelete,
                name.namespace(),
                Some(&target),
                None,
                None,
            )
            .await;
    }
    response
}

/// The action a request needs on its repository.
fn needed_action(route: &V2Route<'_>, method: &Method) -> Action {
    match (route, method) {
        (V2Route::Upload { .. } | V2Route::UploadStart { .. }, _) => Action::Push,
        (_, &Method::GET | &Method::HEAD) => Action::Pull,
        (_, &Method::DELETE) => Action::Delete,
        _ => Action::Push,
    }
}

/// Checks the caller may do what the request needs. Refused: anonymous callers get the
/// challenge that sends them to log in; a user who may not even pull the repository
/// gets, for a pull, exactly what a missing repository answers (404 `NAME_UNKNOWN`),
/// so its existence does not leak; other refusals are 403 `DENIED` for credentials
/// checked here and 401 `insufficient_scope` for a registry token, whose client then
/// asks for a new one.
async fn authorize(
    state: &V2State,
    parts: &axum::http::request::Parts,
    route: &V2Route<'_>,
    method: &Method,
    name: &RepoName,
) -> Result<Identity, ApiError> {
    let Some(auth) = &state.auth else { return Ok(Identity::Anonymous) };
    let identity = auth.identify(parts).await.map_err(|e| auth.refusal(&parts.headers, e))?;
    let action = needed_action(route, method);
    let access = auth.authorize(&identity, name, action).await.map_err(|e| account_error(&e))?;
    match access {
        Access::Allowed => Ok(identity),
        _ if identity.is_anonymous() => {
            let token = matches!(identity, Identity::Token(_));
            Err(login_challenge(auth, &parts.headers, name, action, token))
        }
        Access::Hidden if action == Action::Pull => {
            Err(CoreError::NameUnknown(name.clone()).into())
        }
        Access::Hidden | Access::Denied => match identity {
            Identity::Token(_) => Err(login_challenge(auth, &parts.headers, name, action, true)),
            _ => Err(ApiError::new(OciErrorCode::Denied)
                .message(format!("{} access to {name} is denied", action.as_str()))
                .detail(serde_json::json!({"name": name.as_str(), "action": action.as_str()}))),
        },
    }
}

/// The 401 that sends a client to the token endpoint for `name`. It asks for pull and
/// push even when the request only reads: the token endpoint grants only what the
/// caller may do, so this never widens anyone's rights, and clients that keep the first
/// token they got for a repository (oras-py) can then go on to push with it instead of
/// failing on a pull-only token.
fn login_challenge(
    auth: &Auth,
    headers: &HeaderMap,
    name: &RepoName,
    action: Action,
    insufficient: bool,
) -> ApiError {
    let scope = Scope::Repository { name: name.clone(), actions: Actions::PULL_PUSH.with(action) };
    auth.challenge(headers, Some(scope), insufficient)
}

fn route_name<'a>(route: &V2Route<'a>) -> &'a str {
    match *route {
        V2Route::Tags { name }
        | V2Route::Manifest { name, .. }
        | V2Route::Referrers { name, .. }
        | V2Route::UploadStart { name }
        | V2Route::Upload { name, .. }
        | V2Route::Blob { name, .. } => name,
    }
}

fn not_found() -> Response {
    ApiError::from(EdgeError::NoSuchEndpoint).into_response()
}

/// A response with no body and the given headers (`Location`, `Range`, digests …).
fn empty(status: StatusCode, headers: Vec<(header::HeaderName, String)>) -> HandlerResult {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .map_err(|e| ApiError::internal(&e))
}

/// `Docker-Content-Digest`.
fn digest_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}
