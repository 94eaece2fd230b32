//! The visitor's account (`/account`): changing the password, and access tokens.
//!
//! The current password is asked again (a session left open on a shared screen must not
//! be enough) and checked by the login logic, throttle included; the change goes through
//! `Accounts::update_user`, as `PATCH /api/v1/user` does, and ends every session and
//! registry token of the user. Tokens are created and revoked through the same
//! `Accounts` calls as `/api/v1/user/tokens`; a new token's secret is shown on the page
//! that answers the creation, once, and never again.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_auth::Actions;
use imagehub_core::{AccountError, Credential};

use super::format::{now, when};

use super::session::Visitor;
use super::{Chrome, PageError, render, render_with_status};
use crate::api::ApiState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    csrf: String,
    problem: Option<String>,
    tokens: Vec<TokenRow>,
    /// The secret of the token just created.
    new_secret: Option<String>,
}

/// An access token as the page lists it.
struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    namespaces: String,
    expires: String,
    last_used: String,
}

/// `GET /account`.
pub async fn account(
    State(state): State<ApiState>,
    visitor: Visitor,
) -> Result<Response, PageError> {
    match visitor.session_user() {
        Some(name) => Ok(render(&page(&state, &visitor, name, None, None).await?)),
        None => Ok(Redirect::to("/login?next=/account").into_response()),
    }
}

/// `POST /account` with `csrf` and `intent`: `password` (`current`, `new`, `repeat`),
/// `token` (`token_name`, `scope`…, `namespaces`, `expires_days`) or `revoke` (`id`).
pub async fn post(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let form = visitor.posted_form(body).await?;
    let field = |name: &str| form.field(name);
    let (Some(auth), Some(name)) = (state.auth.as_ref(), visitor.session_user()) else {
        return Err(PageError::forbidden("Log in to change your password."));
    };
    let refuse = async |status: StatusCode, problem: &str| -> Result<Response, PageError> {
        let page = page(&state, &visitor, name, Some(problem.to_string()), None).await?;
        Ok(render_with_status(&page, status))
    };
    match field("intent").as_str() {
        "password" => {}
        "token" => {
            let actions = Actions::parse_strict(&form.fields("scope").join(","));
            let actions = match actions {
                Ok(actions) if actions != Actions::NONE => actions,
                _ => return refuse(StatusCode::BAD_REQUEST, "Choose what the token may do.").await,
            };
            let namespaces: Vec<String> = field("namespaces")
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            let namespaces = (!namespaces.is_empty()).then_some(namespaces);
            let expires_at = match field("expires_days").trim() {
                "" => None,
                days => match days.parse::<u16>() {
                    Ok(days) if days > 0 => Some(now() + i64::from(days) * 86_400),
                    _ => {
                        let problem = "Expiry is a number of days, 1 to 65535, or empty.";
                        return refuse(StatusCode::BAD_REQUEST, problem).await;
                    }
                },
            };
            let token_name = field("token_name");
            let caller = &visitor.caller;
            let created =
                state.accounts.create_token(caller, &token_name, actions, namespaces, expires_at);
            return match created.await {
                Ok(created) => {
                    let page = page(&state, &visitor, name, None, Some(created.secret)).await?;
                    Ok(render(&page))
                }
                Err(e @ (AccountError::InvalidInput(_) | AccountError::NameTaken(_))) => {
                    refuse(StatusCode::BAD_REQUEST, &e.to_string()).await
                }
                Err(e) => Err(e.into()),
            };
        }
        "revoke" => {
            let id = field("id").parse::<i64>().map_err(|_| PageError::bad_request("No token."))?;
            return match state.accounts.revoke_token(&visitor.caller, id).await {
                Ok(()) => Ok(Redirect::to("/account").into_response()),
                Err(AccountError::NoSuchToken(_)) => {
                    Err(PageError::not_found("You have no such token."))
                }
                Err(e) => Err(e.into()),
            };
        }
        _ => return Err(PageError::bad_request("The form asked for nothing this page does.")),
    }
    let (current, new) = (field("current"), field("new"));
    if new.is_empty() || new != field("repeat") {
        return refuse(StatusCode::BAD_REQUEST, "The new password and its repetition differ.")
            .await;
    }
    let client = auth.client_address(&parts);
    match state.accounts.login(name, &current, &client, false).await {
        Ok(caller) if caller.require_user()?.credential == Credential::Password => {}
        Ok(_) | Err(AccountError::BadCredentials | AccountError::Unauthenticated) => {
            return refuse(StatusCode::BAD_REQUEST, "The current password is wrong.").await;
        }
        Err(e @ AccountError::TooManyAttempts { .. }) => {
            return refuse(StatusCode::TOO_MANY_REQUESTS, &e.to_string()).await;
        }
        Err(e) => return Err(e.into()),
    }
    state.accounts.update_user(&visitor.caller, Some(&new), None).await?;
    // The change ended every session of the user, this one too.
    Ok(Redirect::to("/login?next=/account").into_response())
}

async fn page(
    state: &ApiState,
    visitor: &Visitor,
    name: &str,
    problem: Option<String>,
    new_secret: Option<String>,
) -> Result<AccountPage, PageError> {
    let now = now();
    let tokens = state.accounts.tokens(&visitor.caller).await?;
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            scopes: t.actions.to_string(),
            namespaces: t.namespaces.map_or("all".to_string(), |n| n.join(", ")),
            expires: t.expires_at.map_or("never".to_string(), |at| when(at, now).exact),
            last_used: t.last_used_at.map_or("never".to_string(), |at| when(at, now).relative),
        })
        .collect();
    Ok(AccountPage {
        chrome: visitor.chrome(""),
        name: name.to_string(),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        tokens,
        new_secret,
    })
}
