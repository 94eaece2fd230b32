//! `/api/v1/users`, `/api/v1/user`, `/api/v1/user/tokens` and `/api/v1/audit`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use imagehub_auth::Actions;
use imagehub_core::accounts::AccessTokenInfo;
use imagehub_metadata::UserRow;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiResult, ApiV1Error, json_body, ok_json, timestamp};
use crate::auth::Auth;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    #[serde(default)]
    email: Option<String>,
    password: String,
}

/// `POST /api/v1/users`: admins create accounts (anyone, with `auth.signup = "open"`).
pub async fn create_user(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, request: Request) -> ApiResult {
    let body: NewUser = json_body(request).await?;
    let user = auth.accounts.create_user(&caller, &body.name, body.email.as_deref(), &body.password).await?;
    ok_json(StatusCode::CREATED, user_json(&user))
}

/// `GET /api/v1/user`: who the credentials belong to.
pub async fn get_user(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let user = auth.accounts.user(&caller).await?;
    ok_json(StatusCode::OK, user_json(&user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    password: Option<String>,
    /// `null` clears the email; absent leaves it.
    #[serde(default, with = "double_option")]
    email: Option<Option<String>>,
}

/// `PATCH /api/v1/user`: change the password or email.
pub async fn update_user(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, request: Request) -> ApiResult {
    let body: UserChange = json_body(request).await?;
    let email = body.email.as_ref().map(|e| e.as_deref());
    let user = auth.accounts.update_user(&caller, body.password.as_deref(), email).await?;
    ok_json(StatusCode::OK, user_json(&user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    /// Any of `pull`, `push`, `delete`.
    scopes: Vec<String>,
    /// Namespaces the token is limited to; absent for all.
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    /// Unix seconds after which the token stops working.
    #[serde(default)]
    expires_at: Option<i64>,
}

/// `POST /api/v1/user/tokens`: the secret is in this answer and nowhere else, ever.
pub async fn create_token(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, request: Request) -> ApiResult {
    let body: NewToken = json_body(request).await?;
    let actions = Actions::parse_strict(&body.scopes.join(",")).map_err(ApiV1Error::invalid)?;
    let created = auth.accounts.create_token(&caller, &body.name, actions, body.namespaces, body.expires_at).await?;
    let mut value = token_json(&created.info);
    value["secret"] = created.secret.into();
    ok_json(StatusCode::CREATED, value)
}

/// `GET /api/v1/user/tokens`.
pub async fn list_tokens(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller) -> ApiResult {
    let tokens = auth.accounts.tokens(&caller).await?;
    ok_json(StatusCode::OK, json!({"tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}))
}

/// `DELETE /api/v1/user/tokens/{id}`: revoked at once, JWTs issued through it included.
pub async fn revoke_token(State(auth): State<Arc<Auth>>, ApiCaller(caller): ApiCaller, Path(id): Path<String>) -> ApiResult {
    let id: i64 = id.parse().map_err(|_| ApiV1Error::invalid(format!("token id {id:?} is not a number")))?;
    auth.accounts.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/audit?before=ID&limit=N`: newest first.
pub async fn audit(
    State(auth): State<Arc<Auth>>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let (before, limit) = (query.before, query.limit.unwrap_or(100).clamp(1, 1000));
    let events = auth.accounts.audit_events(&caller, before, limit).await?;
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({"id": e.id, "at": timestamp(e.at), "actor": e.actor, "action": e.action, "namespace": e.namespace,
                   "target": e.target, "client": e.client, "detail": e.detail})
        })
        .collect();
    ok_json(StatusCode::OK, json!({"events": events}))
}

fn user_json(user: &UserRow) -> Value {
    json!({"name": user.name, "email": user.email, "admin": user.is_admin, "source": user.source, "created_at": timestamp(user.created_at)})
}

fn token_json(token: &AccessTokenInfo) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "scopes": Actions::parse_lenient(&token.actions).names(),
        "namespaces": token.namespaces,
        "expires_at": token.expires_at.map(timestamp),
        "created_at": timestamp(token.created_at),
        "last_used_at": token.last_used_at.map(timestamp),
    })
}

/// Tells "absent" from "null" for fields that can be cleared.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
