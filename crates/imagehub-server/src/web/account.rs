//! The visitor's account (`/account`): changing the password. The current password is
//! asked again (a session left open on a shared screen must not be enough) and checked by
//! the login logic, throttle included; the change goes through `Accounts::update_user`,
//! as `PATCH /api/v1/user` does, and ends every session and registry token of the user.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_core::{AccountError, Credential};

use super::session::{SmallForm, Visitor};
use super::{Chrome, PageError, render, render_with_status};
use crate::api::ApiState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    csrf: String,
    problem: Option<String>,
}

/// `GET /account`.
pub async fn account(State(state): State<ApiState>, visitor: Visitor) -> Response {
    match signed_in(&state, &visitor) {
        Some(name) => render(&page(&visitor, name, None)),
        None => Redirect::to("/login?next=/account").into_response(),
    }
}

/// `POST /account` with `csrf`, `current`, `new` and `repeat`.
pub async fn change_password(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let form = SmallForm::read(body).await?;
    let field = |name: &str| form.field(name);
    visitor.check_csrf(Some(&field("csrf")))?;
    let (Some(auth), Some(name)) = (state.auth.as_ref(), signed_in(&state, &visitor)) else {
        return Err(PageError::forbidden("Log in to change your password."));
    };
    let refuse = |status: StatusCode, problem: &str| {
        render_with_status(&page(&visitor, name, Some(problem.to_string())), status)
    };
    let (current, new) = (field("current"), field("new"));
    if new.is_empty() || new != field("repeat") {
        return Ok(refuse(StatusCode::BAD_REQUEST, "The new password and its repetition differ."));
    }
    let client = auth.client_address(&parts);
    match state.accounts.login(name, &current, &client, false).await {
        Ok(caller) if caller.require_user()?.credential == Credential::Password => {}
        Ok(_) | Err(AccountError::BadCredentials | AccountError::Unauthenticated) => {
            return Ok(refuse(StatusCode::BAD_REQUEST, "The current password is wrong."));
        }
        Err(e @ AccountError::TooManyAttempts { .. }) => {
            return Ok(refuse(StatusCode::TOO_MANY_REQUESTS, &e.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    state.accounts.update_user(&visitor.caller, Some(&new), None).await?;
    // The change ended every session of the user, this one too.
    Ok(Redirect::to("/login?next=/account").into_response())
}

/// The visitor's user name, when they are logged in with a session.
fn signed_in<'v>(state: &ApiState, visitor: &'v Visitor) -> Option<&'v str> {
    state.auth.as_ref()?;
    visitor.csrf.as_ref()?;
    visitor.caller.name()
}

fn page(visitor: &Visitor, name: &str, problem: Option<String>) -> AccountPage {
    AccountPage {
        chrome: visitor.chrome(""),
        name: name.to_string(),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
    }
}
