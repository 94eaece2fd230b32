//! Who is looking at a page, from the session cookie; logging in and out. The cookie is
//! HttpOnly, SameSite=Lax, Secure when the hub is reached over HTTPS, and holds only a
//! random secret (the database keeps its hash). Every state-changing form carries the
//! session's CSRF token, checked by [`Visitor::check_csrf`]: a POST without it changes
//! nothing and gets 403.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_core::{AccountError, Caller, SESSION_MAX_AGE};
use serde::Deserialize;

use super::{Chrome, PageError, render_with_status};
use crate::api::ApiState;

/// The session cookie's name.
const COOKIE: &str = "imagehub_session";

/// Largest login form read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A small urlencoded form (login, logout, account), read whole with a size limit:
/// these handlers need the request's parts too, so they read the body themselves.
pub struct SmallForm(Bytes);

impl SmallForm {
    pub async fn read(body: axum::body::Body) -> Result<SmallForm, PageError> {
        axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map(SmallForm)
            .map_err(|_| PageError::bad_request("The form was too large."))
    }

    /// A form with no fields.
    pub fn empty() -> SmallForm {
        SmallForm(Bytes::new())
    }

    /// Every value of field `name` (checkboxes sharing a name), in order.
    pub fn fields(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(&self.0)
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The value of field `name`, empty when absent.
    pub fn field(&self, name: &str) -> String {
        form_urlencoded::parse(&self.0)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }
}

/// The visitor of a page: their caller (anonymous without a session; anyone, with
/// accounts off) and, with a session, its CSRF token.
pub struct Visitor {
    pub caller: Caller,
    pub csrf: Option<String>,
}

impl Visitor {
    /// The header of every page, as this visitor sees it.
    pub fn chrome(&self, search_box: &str) -> Chrome {
        Chrome {
            search_box: search_box.to_string(),
            version: super::VERSION,
            user: self.session_user().map(str::to_string),
            admin: self.session_user().is_some() && self.caller.is_admin(),
            csrf: self.csrf.clone().unwrap_or_default(),
        }
    }

    /// The user's name when they are logged in with a session (only possible with
    /// accounts on).
    pub fn session_user(&self) -> Option<&str> {
        self.csrf.as_ref()?;
        self.caller.name()
    }

    /// Reads a form this session posted: fails with 403, having changed nothing, unless
    /// its `csrf` field holds the session's CSRF token.
    pub async fn posted_form(&self, body: axum::body::Body) -> Result<SmallForm, PageError> {
        let form = SmallForm::read(body).await?;
        self.check_csrf(Some(&form.field("csrf")))?;
        Ok(form)
    }

    /// Fails with 403 unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: Option<&str>) -> Result<(), PageError> {
        match (&self.csrf, token) {
            (Some(expected), Some(given))
                if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(PageError::forbidden(
                "This form has expired or did not come from this hub. Reload the page and try again.",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<ApiState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        if state.auth.is_none() {
            return Ok(Visitor { caller: Caller::open_registry(), csrf: None });
        }
        let Some(secret) = cookie(&parts.headers, COOKIE) else {
            return Ok(Visitor { caller: Caller::Anonymous, csrf: None });
        };
        match state.accounts.web_session(secret).await? {
            Some((caller, csrf)) => Ok(Visitor { caller, csrf: Some(csrf) }),
            None => Ok(Visitor { caller: Caller::Anonymous, csrf: None }),
        }
    }
}

/// The value of cookie `name`, if the request sent it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    username: String,
    problem: Option<String>,
    accounts: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: String,
}

/// `GET /login?next=…`.
pub async fn login_form(
    State(state): State<ApiState>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> Response {
    let page = LoginPage {
        chrome: visitor.chrome(""),
        next: local_path(&query.next).to_string(),
        username: String::new(),
        problem: None,
        accounts: state.auth.is_some(),
    };
    render_with_status(&page, StatusCode::OK)
}

/// `POST /login` with `username`, `password` and `next`.
pub async fn login(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let Some(auth) = state.auth.clone() else { return Ok(Redirect::to("/").into_response()) };
    let (parts, body) = request.into_parts();
    let form = SmallForm::read(body).await?;
    let field = |name: &str| form.field(name);
    let (username, password, next) = (field("username"), field("password"), field("next"));
    let client = auth.client_address(&parts);
    match state.accounts.open_web_session(&username, &password, &client).await {
        Ok(session) => {
            let secure = auth.public_url(&parts.headers).starts_with("https://");
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
                session.secret,
                SESSION_MAX_AGE.as_secs(),
                if secure { "; Secure" } else { "" }
            );
            let mut response = Redirect::to(local_path(&next)).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).map_err(PageError::internal)?,
            );
            Ok(response)
        }
        Err(e) => {
            let (status, problem) = match &e {
                AccountError::BadCredentials | AccountError::Unauthenticated => {
                    (StatusCode::UNAUTHORIZED, "The user name or password is wrong.".to_string())
                }
                AccountError::TooManyAttempts { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, e.to_string())
                }
                AccountError::PasswordRequired { .. } => (
                    StatusCode::UNAUTHORIZED,
                    "Log in with your password; access tokens are for clients and scripts."
                        .to_string(),
                ),
                _ => return Err(e.into()),
            };
            let page = LoginPage {
                chrome: visitor.chrome(""),
                next: local_path(&next).to_string(),
                username,
                problem: Some(problem),
                accounts: true,
            };
            Ok(render_with_status(&page, status))
        }
    }
}

/// `POST /logout` with the session's `csrf`: ends the session on the server.
pub async fn logout(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    visitor.posted_form(body).await?;
    if let Some(secret) = cookie(&parts.headers, COOKIE) {
        state.accounts.close_web_session(secret).await?;
    }
    let mut response = Redirect::to("/").into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&expired).map_err(PageError::internal)?);
    Ok(response)
}

/// `next` if it is a path on this hub, else `/`: a login must not redirect elsewhere.
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_redirect_only_within_the_hub() {
        for (next, to) in [
            ("/r/acme/app", "/r/acme/app"),
            ("", "/"),
            ("https://evil.example", "/"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("/a\nb", "/"),
        ] {
            assert_eq!(local_path(next), to, "{next:?}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; imagehub_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let visitor = Visitor { caller: Caller::Anonymous, csrf: Some("token".into()) };
        assert!(visitor.check_csrf(Some("token")).is_ok());
        assert!(visitor.check_csrf(Some("tokeN")).is_err());
        assert!(visitor.check_csrf(None).is_err());
        assert!(Visitor { caller: Caller::Anonymous, csrf: None }.check_csrf(Some("")).is_err());
    }
}
