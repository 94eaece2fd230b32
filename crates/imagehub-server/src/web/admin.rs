//! Pages for those who run the hub: the users (`/admin/users`: list, create) for site
//! admins, and the audit log (`/audit`) for site admins and organization owners (who see
//! their organizations' events). The same `Accounts` calls as `GET`/`POST
//! /api/v1/users` and `GET /api/v1/audit` decide who may see what.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_core::{AccountError, AuditAction, AuditEvent, UserRow};
use serde::Deserialize;

use super::format::{When, now, when};
use super::session::Visitor;
use super::{Chrome, PageError, render, render_with_status};
use crate::api::ApiState;

/// Users or events on one page.
const PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    csrf: String,
    problem: Option<String>,
    users: Vec<UserLine>,
    /// The link to the next page, when there may be one.
    next: Option<String>,
    /// What the creation form held, when it is shown again with a problem.
    draft_name: String,
    draft_email: String,
}

struct UserLine {
    name: String,
    email: String,
    admin: bool,
    source: &'static str,
    created: When,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UsersQuery {
    after: Option<String>,
}

/// `GET /admin/users?after=NAME`.
pub async fn users(
    State(state): State<ApiState>,
    visitor: Visitor,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    if visitor.session_user().is_none() {
        return Ok(Redirect::to("/login?next=/admin/users").into_response());
    }
    let page = users_page(&state, &visitor, query.after.as_deref(), None, ("", "")).await?;
    Ok(render(&page))
}

/// `POST /admin/users` with `csrf`, `name`, `email` and `password`: creates a local user.
pub async fn create_user(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    let (name, email) = (form.field("name").trim().to_string(), form.field("email"));
    let email = Some(email.trim()).filter(|e| !e.is_empty());
    let password = form.field("password");
    let created = state.accounts.create_user(&visitor.caller, &name, email, &password);
    let problem = match created.await {
        Ok(_) => return Ok(Redirect::to("/admin/users").into_response()),
        Err(AccountError::SignupClosed) => return Err(admins_only()),
        Err(e @ (AccountError::InvalidInput(_) | AccountError::NameTaken(_))) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    let draft = (name.as_str(), email.unwrap_or(""));
    let page = users_page(&state, &visitor, None, Some(problem), draft).await?;
    Ok(render_with_status(&page, StatusCode::BAD_REQUEST))
}

async fn users_page(
    state: &ApiState,
    visitor: &Visitor,
    after: Option<&str>,
    problem: Option<String>,
    (draft_name, draft_email): (&str, &str),
) -> Result<UsersPage, PageError> {
    let rows = match state.accounts.users(&visitor.caller, after, PER_PAGE).await {
        Ok(rows) => rows,
        Err(AccountError::AdminOnly { .. } | AccountError::PasswordRequired { .. }) => {
            return Err(admins_only());
        }
        Err(e) => return Err(e.into()),
    };
    let next = (rows.len() == PER_PAGE as usize).then(|| rows.last()).flatten().map(|last| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("after", &last.name)
            .finish();
        format!("/admin/users?{query}")
    });
    let now = now();
    Ok(UsersPage {
        chrome: visitor.chrome(""),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        users: rows.into_iter().map(|user| UserLine::new(user, now)).collect(),
        next,
        draft_name: draft_name.to_string(),
        draft_email: draft_email.to_string(),
    })
}

impl UserLine {
    fn new(user: UserRow, now: i64) -> UserLine {
        UserLine {
            name: user.name,
            email: user.email.unwrap_or_default(),
            admin: user.is_admin,
            source: user.source.as_str(),
            created: when(user.created_at, now),
        }
    }
}

fn admins_only() -> PageError {
    PageError::forbidden("Only site admins manage users.")
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    /// The action the log is narrowed to, or empty.
    action: String,
    /// Every action, and whether it is the one picked.
    actions: Vec<(&'static str, bool)>,
    events: Vec<EventLine>,
    next: Option<String>,
}

struct EventLine {
    at: When,
    actor: String,
    action: &'static str,
    namespace: String,
    target: String,
    client: String,
    detail: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuditQuery {
    action: String,
    before: Option<i64>,
}

/// `GET /audit?action=…&before=ID`: newest first.
pub async fn audit(
    State(state): State<ApiState>,
    visitor: Visitor,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    if visitor.session_user().is_none() {
        return Ok(Redirect::to("/login?next=/audit").into_response());
    }
    let action = match query.action.as_str() {
        "" => None,
        name => Some(AuditAction::parse(name).ok_or_else(|| {
            PageError::bad_request(format!("There is no audit action {name:?}."))
        })?),
    };
    let events = state.accounts.audit_events(&visitor.caller, action, query.before, PER_PAGE);
    let events = match events.await {
        Ok(events) => events,
        Err(AccountError::AuditClosed | AccountError::PasswordRequired { .. }) => {
            return Err(PageError::forbidden(
                "The audit log is for site admins and organization owners.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let next = (events.len() == PER_PAGE as usize).then(|| events.last()).flatten().map(|last| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(action) = action {
            query.append_pair("action", action.as_str());
        }
        query.append_pair("before", &last.id.to_string());
        format!("/audit?{}", query.finish())
    });
    let now = now();
    let page = AuditPage {
        chrome: visitor.chrome(""),
        action: action.map(AuditAction::as_str).unwrap_or_default().to_string(),
        actions: AuditAction::ALL.iter().map(|&a| (a.as_str(), Some(a) == action)).collect(),
        events: events.into_iter().map(|event| EventLine::new(event, now)).collect(),
        next,
    };
    Ok(render(&page))
}

impl EventLine {
    fn new(event: AuditEvent, now: i64) -> EventLine {
        EventLine {
            at: when(event.at, now),
            actor: event.actor.unwrap_or_default(),
            action: event.action.as_str(),
            namespace: event.namespace.unwrap_or_default(),
            target: event.target.unwrap_or_default(),
            client: event.client.unwrap_or_default(),
            detail: event.detail.map(|d| d.to_string()).unwrap_or_default(),
        }
    }
}
