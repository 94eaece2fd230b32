//! Organizations: the visitor's own (`/orgs`, where they also create one) and a
//! namespace's page (`/o/{name}`). Anyone sees there the repositories of the namespace
//! they may see, listed as explore lists them; members and site admins also see the
//! organization's description, default visibility and members, and its owners add,
//! remove and change members and the settings. Everything goes through the `Accounts`
//! calls behind `/api/v1/orgs`, so the page has no permission rule of its own: an
//! outsider is told a namespace exists only when it holds a repository they may see.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_auth::{Role, Visibility};
use imagehub_core::{AccountError, BrowseOrder, OrgRow, RepositoryFilter};
use serde::Deserialize;

use super::cards::Listing;
use super::format::{now, when};
use super::session::Visitor;
use super::{Chrome, PageError, host, render, render_with_status};
use crate::api::ApiState;

/// Repository cards on one page of an organization.
const PER_PAGE: u32 = 24;

/// The roles, in the order the forms offer them.
const ROLES: [Role; 3] = [Role::Viewer, Role::Developer, Role::Owner];

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    chrome: Chrome,
    csrf: String,
    problem: Option<String>,
    orgs: Vec<OrgLine>,
    /// What the creation form held, when it is shown again with a problem.
    draft: Draft,
}

/// One of the visitor's organizations, as `/orgs` lists it.
struct OrgLine {
    name: String,
    role: String,
    public: bool,
    description: String,
}

/// The creation form's fields.
#[derive(Default)]
struct Draft {
    name: String,
    public: bool,
    description: String,
}

/// `GET /orgs`: the visitor's organizations and a form to create one.
pub async fn orgs(State(state): State<ApiState>, visitor: Visitor) -> Result<Response, PageError> {
    if visitor.session_user().is_none() {
        return Ok(Redirect::to("/login?next=/orgs").into_response());
    }
    Ok(render(&orgs_page(&state, &visitor, None, Draft::default()).await?))
}

/// `POST /orgs` with `csrf`, `name`, `visibility` and `description`: creates an
/// organization owned by the visitor.
pub async fn create(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    if visitor.session_user().is_none() {
        return Err(PageError::forbidden("Log in to create an organization."));
    }
    let draft = Draft {
        name: form.field("name").trim().to_string(),
        public: form.field("visibility") == "public",
        description: form.field("description").trim().to_string(),
    };
    let visibility = if draft.public { Visibility::Public } else { Visibility::Private };
    let created =
        state.accounts.create_org(&visitor.caller, &draft.name, visibility, &draft.description);
    match created.await {
        Ok(org) => Ok(Redirect::to(&format!("/o/{}", org.name)).into_response()),
        Err(e @ (AccountError::InvalidInput(_) | AccountError::NameTaken(_))) => {
            let problem = Some(e.to_string());
            let page = orgs_page(&state, &visitor, problem, draft).await?;
            Ok(render_with_status(&page, StatusCode::BAD_REQUEST))
        }
        Err(e) => Err(e.into()),
    }
}

async fn orgs_page(
    state: &ApiState,
    visitor: &Visitor,
    problem: Option<String>,
    draft: Draft,
) -> Result<OrgsPage, PageError> {
    let orgs = state.accounts.orgs(&visitor.caller).await?;
    let orgs = orgs
        .into_iter()
        .map(|(org, role)| OrgLine {
            role: role.map_or("site admin", Role::as_str).to_string(),
            public: org.default_visibility == Visibility::Public,
            name: org.name,
            description: org.description,
        })
        .collect();
    Ok(OrgsPage {
        chrome: visitor.chrome(""),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        orgs,
        draft,
    })
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    chrome: Chrome,
    name: String,
    host: String,
    csrf: String,
    problem: Option<String>,
    /// What members see; `None` for anyone else.
    membership: Option<Membership>,
    listing: Listing,
}

/// The organization as its members see it.
struct Membership {
    /// The visitor's role; `None` for a site admin who is not a member.
    role: Option<Role>,
    /// Whether the visitor may change members and settings.
    manages: bool,
    /// Whether this is the build organization and the visitor may build.
    builds: bool,
    public: bool,
    description: String,
    members: Vec<MemberLine>,
}

struct MemberLine {
    user: String,
    role: Role,
    added: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OrgQuery {
    page: Option<u32>,
}

/// `GET /o/{name}?page=…`.
pub async fn org(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(name): Path<String>,
    query: Result<Query<OrgQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    Ok(render(&org_page(&state, &visitor, &name, page, &headers, None).await?))
}

/// `POST /o/{name}` with `csrf` and `intent`: `member` (`user`, `role`) adds a member or
/// changes their role, `remove` (`user`) removes one, `settings` (`visibility`,
/// `description`) changes the organization.
pub async fn org_post(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, PageError> {
    let form = visitor.posted_form(request.into_body()).await?;
    let caller = &visitor.caller;
    let user = form.field("user").trim().to_string();
    let done = match form.field("intent").as_str() {
        "member" => {
            let role: Role = form.field("role").parse().map_err(PageError::bad_request)?;
            state.accounts.set_member(caller, &name, &user, role).await
        }
        "remove" => state.accounts.remove_member(caller, &name, &user).await,
        "settings" => {
            let visibility: Visibility =
                form.field("visibility").parse().map_err(PageError::bad_request)?;
            let description = form.field("description");
            let description = Some(description.trim());
            state.accounts.update_org(caller, &name, Some(visibility), description).await.map(drop)
        }
        _ => return Err(PageError::bad_request("The form asked for nothing this page does.")),
    };
    let (status, problem) = match done {
        Ok(()) => return Ok(Redirect::to(&format!("/o/{name}")).into_response()),
        // Whether an organization the visitor is not in exists is not theirs to learn.
        Err(
            AccountError::NoSuchOrg(_)
            | AccountError::Unauthenticated
            | AccountError::PasswordRequired { .. }
            | AccountError::NotAnAccountCredential { .. },
        ) => {
            return Err(PageError::forbidden(format!(
                "Only owners of {name} manage its members and settings."
            )));
        }
        Err(e @ AccountError::NotOwner { .. }) => (StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ AccountError::NoSuchUser(_)) => (StatusCode::BAD_REQUEST, format!("There is {e}.")),
        Err(e @ (AccountError::NotAMember { .. } | AccountError::InvalidInput(_))) => {
            (StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(AccountError::LastOwner) => (
            StatusCode::CONFLICT,
            "An organization keeps at least one owner: make someone else owner first.".to_string(),
        ),
        Err(e) => return Err(e.into()),
    };
    let page = org_page(&state, &visitor, &name, 1, &headers, Some(problem)).await?;
    Ok(render_with_status(&page, status))
}

async fn org_page(
    state: &ApiState,
    visitor: &Visitor,
    name: &str,
    page: u32,
    headers: &HeaderMap,
    problem: Option<String>,
) -> Result<OrgPage, PageError> {
    let membership = membership(state, visitor, name).await?;
    let visible = state.accounts.catalog_filter(&visitor.caller).await?;
    let filter = RepositoryFilter::within(visible.as_ref(), name);
    let (hits, total) =
        state.registry.browse(Some(&filter), None, BrowseOrder::Pushed, page, PER_PAGE).await?;
    if membership.is_none() && total == 0 {
        return Err(no_such_namespace(name));
    }
    let link = |page: u32| format!("/o/{name}?page={page}");
    Ok(OrgPage {
        chrome: visitor.chrome(""),
        name: name.to_string(),
        host: host(state, headers),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        membership,
        listing: Listing::new(&hits, total, page, PER_PAGE, link),
    })
}

/// The organization as a member (or a site admin) sees it; `None` for anyone else,
/// and for a namespace that is not an organization.
async fn membership(
    state: &ApiState,
    visitor: &Visitor,
    name: &str,
) -> Result<Option<Membership>, PageError> {
    if visitor.session_user().is_none() {
        return Ok(None);
    }
    let caller = &visitor.caller;
    let (org, role): (OrgRow, Option<Role>) = match state.accounts.org(caller, name).await {
        Ok(found) => found,
        Err(AccountError::NoSuchOrg(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let now = now();
    let members = state.accounts.members(caller, name).await?;
    let members = members
        .into_iter()
        .map(|m| MemberLine { user: m.user, role: m.role, added: when(m.added_at, now).relative })
        .collect();
    let builds = state.registry.build_settings();
    let builds = builds.recipes_dir.is_some()
        && builds.organization == name
        && (matches!(role, Some(Role::Owner | Role::Developer)) || caller.is_admin());
    Ok(Some(Membership {
        role,
        builds,
        manages: role == Some(Role::Owner) || caller.is_admin(),
        public: org.default_visibility == Visibility::Public,
        description: org.description,
        members,
    }))
}

fn no_such_namespace(name: &str) -> PageError {
    PageError::not_found(format!("There is no organization {name}, or none you may see."))
}
