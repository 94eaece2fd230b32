//! The token endpoint of the Docker registry token spec: `GET /token` (Basic or
//! anonymous) and `POST /token` (OAuth2 `password` and `refresh_token` grants), and the
//! signing key's JWKS at `/.well-known/jwks.json`.
//!
//! A token grants the intersection of what was asked and what the caller may do; asking
//! for more is never an error, the token just carries less.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imagehub_auth::{AccessEntry, Claims, Grantee, Scope, TokenUse, parse_scopes};
use imagehub_core::Caller;
use imagehub_oci::OciErrorCode;
use serde_json::json;

use super::{Auth, Credentials, account_error, unix_now};
use crate::error::{ApiError, EdgeError};

/// `GET /token?service=…&scope=…[&offline_token=true]`.
pub async fn get_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let query = query_pairs(parts.uri.query().unwrap_or(""));
    let result = async {
        let credentials = Credentials::from_headers(&parts.headers)
            .map_err(|e| auth.refusal(&parts.headers, e))?;
        let caller = match credentials {
            Credentials::None => Caller::Anonymous,
            Credentials::Basic { user, password } => {
                let client = auth.client_address(&parts);
                auth.accounts
                    .login(&user, &password, &client, true)
                    .await
                    .map_err(|e| auth.login_error(&parts.headers, e))?
            }
            Credentials::Bearer(_) => {
                return Err(ApiError::new(OciErrorCode::Unauthorized)
                    .message("the token endpoint takes Basic credentials or none")
                    .header(
                        axum::http::header::WWW_AUTHENTICATE,
                        format!(r#"Basic realm="{}""#, auth.config.service),
                    ));
            }
        };
        check_service(&auth, &query)?;
        let offline = query_value(&query, "offline_token") == Some("true");
        issue(&auth, &caller, scopes(&query)?, offline).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /token` with a form body: `grant_type=password` (`username`, `password`) or
/// `grant_type=refresh_token` (`refresh_token`), plus `scope` and `access_type=offline`.
pub async fn post_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let body: Bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| bad_request("the form body is missing or larger than 64 KiB"))?;
        let form = query_pairs(
            std::str::from_utf8(&body).map_err(|_| bad_request("the form body is not UTF-8"))?,
        );
        let caller = match query_value(&form, "grant_type") {
            Some("password") => {
                let user = query_value(&form, "username")
                    .ok_or_else(|| bad_request("username is missing"))?;
                let password = query_value(&form, "password")
                    .ok_or_else(|| bad_request("password is missing"))?;
                let client = auth.client_address(&parts);
                auth.accounts
                    .login(user, password, &client, true)
                    .await
                    .map_err(|e| auth.login_error(&parts.headers, e))?
            }
            Some("refresh_token") => {
                let token = query_value(&form, "refresh_token")
                    .ok_or_else(|| bad_request("refresh_token is missing"))?;
                let claims = auth
                    .key
                    .verify(token, &auth.config.issuer, &auth.config.service, TokenUse::Refresh)
                    .map_err(|e| {
                        auth.challenge(&parts.headers, None, false).message(e.to_string())
                    })?;
                auth.accounts
                    .caller_from_refresh_token(&claims)
                    .await
                    .map_err(|e| auth.login_error(&parts.headers, e))?
            }
            other => {
                return Err(bad_request(&format!(
                    "unsupported grant_type {:?} (password, refresh_token)",
                    other.unwrap_or("")
                )));
            }
        };
        check_service(&auth, &form)?;
        let offline = query_value(&form, "access_type") == Some("offline");
        issue(&auth, &caller, scopes(&form)?, offline).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(auth): State<Arc<Auth>>) -> Response {
    Json(auth.key.jwks()).into_response()
}

async fn issue(
    auth: &Auth,
    caller: &Caller,
    scopes: Vec<Scope>,
    offline: bool,
) -> Result<Response, ApiError> {
    let mut access = Vec::new();
    for scope in scopes {
        match scope {
            Scope::Repository { name, actions } => {
                let allowed = auth
                    .accounts
                    .repository_actions(caller, &name)
                    .await
                    .map_err(|e| account_error(&e))?;
                access.push(AccessEntry::repository(name.as_str(), actions.intersect(allowed)));
            }
            Scope::Catalog if caller.user().is_some() || auth.config.anonymous_pull => {
                access.push(AccessEntry::catalog())
            }
            Scope::Catalog => {}
        }
    }
    let now = unix_now();
    let user = caller.user();
    let via = user.and_then(|u| u.credential.access_token());
    let grantee = Grantee {
        issuer: &auth.config.issuer,
        audience: &auth.config.service,
        subject: user.map_or("", |u| u.name.as_str()),
        via: via.map(|t| (t.id, t.expires_at.map(|e| e.max(0) as u64))),
    };
    let claims = Claims::access(&grantee, access, now, auth.config.token_ttl_secs);
    let token = auth.key.sign(&claims).map_err(|e| ApiError::internal(&e))?;
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.exp.saturating_sub(now),
        "issued_at": crate::api::timestamp(now as i64),
    });
    if offline && user.is_some() {
        let refresh = claims.refresh(&grantee, auth.config.refresh_token_ttl_secs);
        body["refresh_token"] = auth.key.sign(&refresh).map_err(|e| ApiError::internal(&e))?.into();
    }
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// Most scopes one token request may ask for. Clients ask for one to three (a push
/// with a cross-repository mount); each costs a policy lookup, so a request cannot ask
/// for thousands.
const MAX_SCOPES: usize = 32;

fn scopes(pairs: &[(String, String)]) -> Result<Vec<Scope>, ApiError> {
    let asked: Vec<&str> =
        pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()).collect();
    if asked.len() > MAX_SCOPES {
        let why = format!("{} scopes asked for; a token grants at most {MAX_SCOPES}", asked.len());
        return Err(EdgeError::MalformedTokenRequest(why).into());
    }
    parse_scopes(asked).map_err(|e| EdgeError::MalformedTokenRequest(e.to_string()).into())
}

/// A token names its audience; asking for another service's is a mistake worth telling.
fn check_service(auth: &Auth, pairs: &[(String, String)]) -> Result<(), ApiError> {
    match query_value(pairs, "service") {
        Some(service) if service != auth.config.service => Err(bad_request(&format!(
            "this token endpoint serves {:?}, not {service:?}",
            auth.config.service
        ))),
        _ => Ok(()),
    }
}

fn bad_request(message: &str) -> ApiError {
    EdgeError::MalformedTokenRequest(message.to_string()).into()
}

/// Decoded `application/x-www-form-urlencoded` pairs (query strings and POST bodies),
/// keeping repeated keys: Docker sends one `scope` per repository.
fn query_pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
