//! `/api/v1/users`, `/api/v1/user`, `/api/v1/user/tokens` and `/api/v1/audit`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use imagehub_auth::Actions;
use imagehub_core::AuditAction;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::double_option;
use super::views::{
    AccessToken, AccessTokenList, AuditEvent, AuditLog, CreatedAccessToken, Scope, User, UserList,
};
use super::{
    ApiCaller, ApiResult, ApiV1Error, ErrorBody, TooManyRequests, Unauthorized, json_body, ok,
};
use crate::auth::Auth;

/// A new local account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// One lower-case component of the repository name grammar: it heads the user's repositories (`alice/app`).
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[schema(format = Password)]
    password: String,
}

/// `POST /api/v1/users`: admins create accounts (anyone, with `auth.signup = "open"`).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    summary = "Create a user",
    description = "Site admins create local accounts; anyone may when sign-up is open (`auth.signup = \"open\"`).",
    request_body = NewUser,
    responses(
        (status = 201, description = "The account.", body = User),
        (status = 400, description = "Invalid body or name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Only site admins create accounts (sign-up is not open).", body = ErrorBody),
        (status = 409, description = "The name is taken (by a user or an organization).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn create_user(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let body: NewUser = json_body(request).await?;
    let user = auth
        .accounts
        .create_user(&caller, &body.name, body.email.as_deref(), &body.password)
        .await?;
    ok(StatusCode::CREATED, User::from(&user))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only users whose name sorts after this one (the next page after the last user seen).
    after: Option<String>,
    /// Most users answered: 1 to 1000, 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/v1/users?after=NAME&limit=N`: site admins list the accounts, by name.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    summary = "List the users",
    description = "Site admins list the accounts by name, a page at a time. Needs Basic credentials with the password.",
    params(UserQuery),
    responses(
        (status = 200, description = "A page of users.", body = UserList),
        (status = 400, description = "Invalid query, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not a site admin, or credentials other than the password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn list_users(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<UserQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let users = auth.accounts.users(&caller, query.after.as_deref(), limit).await?;
    ok(StatusCode::OK, UserList { users: users.iter().map(User::from).collect() })
}

/// `GET /api/v1/user`: who the credentials belong to.
#[utoipa::path(
    get,
    path = "/api/v1/user",
    tag = "users",
    summary = "The caller's account",
    description = "Who the credentials belong to.",
    responses(
        (status = 200, description = "The caller's account.", body = User),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get_user(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let user = auth.accounts.user(&caller).await?;
    ok(StatusCode::OK, User::from(&user))
}

/// Changes to the caller's account; fields left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// The new password; needs Basic credentials with the current password.
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
    /// `null` clears the email; absent leaves it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, required = false)]
    email: Option<Option<String>>,
}

/// `PATCH /api/v1/user`: change the password or email.
#[utoipa::path(
    patch,
    path = "/api/v1/user",
    tag = "users",
    summary = "Change the caller's password or email",
    description = "Changing the password needs Basic credentials with the current password, not a token; it ends the \
                   registry tokens issued before.",
    request_body = UserChange,
    responses(
        (status = 200, description = "The account as it now is.", body = User),
        (status = 400, description = "Invalid body, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "A password change with a token instead of the password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn update_user(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let body: UserChange = json_body(request).await?;
    let email = body.email.as_ref().map(|e| e.as_deref());
    let user = auth.accounts.update_user(&caller, body.password.as_deref(), email).await?;
    ok(StatusCode::OK, User::from(&user))
}

/// A new access token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1 to 100 characters.
    name: String,
    /// Any of `pull`, `push`, `delete`.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    /// Namespaces the token is limited to; absent for all.
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    /// Unix seconds after which the token stops working.
    #[serde(default)]
    expires_at: Option<i64>,
}

/// `POST /api/v1/user/tokens`: the secret is in this answer and nowhere else, ever.
#[utoipa::path(
    post,
    path = "/api/v1/user/tokens",
    tag = "tokens",
    summary = "Create an access token",
    description = "Needs Basic credentials with the password. The secret is in this answer and nowhere else, ever.",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token with its secret.", body = CreatedAccessToken),
        (status = 400, description = "Invalid body (name, scopes, namespaces, `expires_at` in the past), or a malformed \
                                      Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Credentials other than the password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn create_token(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let body: NewToken = json_body(request).await?;
    let actions = Actions::parse_strict(&body.scopes.join(",")).map_err(ApiV1Error::invalid)?;
    let created = auth
        .accounts
        .create_token(&caller, &body.name, actions, body.namespaces, body.expires_at)
        .await?;
    ok(
        StatusCode::CREATED,
        CreatedAccessToken::new(AccessToken::from(&created.info), created.secret),
    )
}

/// `GET /api/v1/user/tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/user/tokens",
    tag = "tokens",
    summary = "List the caller's access tokens",
    description = "The caller's access tokens, without their secrets.",
    responses(
        (status = 200, description = "The tokens.", body = AccessTokenList),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_tokens(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let tokens = auth.accounts.tokens(&caller).await?;
    ok(StatusCode::OK, AccessTokenList { tokens: tokens.iter().map(AccessToken::from).collect() })
}

/// `DELETE /api/v1/user/tokens/{id}`: revoked at once, JWTs issued through it included.
#[utoipa::path(
    delete,
    path = "/api/v1/user/tokens/{id}",
    tag = "tokens",
    summary = "Revoke an access token",
    description = "Revoked at once, registry JWTs issued through it included. Needs Basic credentials with the password.",
    params(("id" = i64, Path, description = "The token's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, description = "The id is not a number, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Credentials other than the password.", body = ErrorBody),
        (status = 404, description = "The caller has no token with this id.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: i64 =
        id.parse().map_err(|_| ApiV1Error::invalid(format!("token id {id:?} is not a number")))?;
    auth.accounts.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events with a smaller id (the next page after the last event seen).
    before: Option<i64>,
    /// Only events of this action (its dotted name, such as `member.set`).
    action: Option<String>,
    /// Most events answered: 1 to 1000, 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /api/v1/audit?before=ID&limit=N`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    summary = "Read the audit log",
    description = "Newest first: every event for site admins, those of the organizations they own for others. Needs \
                   Basic credentials with the password.",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditLog),
        (status = 400, description = "Invalid query, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Neither a site admin nor an organization owner, or credentials other than the \
                                      password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn audit(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let (before, limit) = (query.before, query.limit.unwrap_or(100).clamp(1, 1000));
    let action = match query.action.as_deref() {
        None => None,
        Some(name) => Some(AuditAction::parse(name).ok_or_else(|| {
            ApiV1Error::invalid(format!("action {name:?}: no such audit action"))
        })?),
    };
    let events = auth.accounts.audit_events(&caller, action, before, limit).await?;
    ok(StatusCode::OK, AuditLog { events: events.into_iter().map(AuditEvent::from).collect() })
}
