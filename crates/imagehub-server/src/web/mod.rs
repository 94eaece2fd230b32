//! The web UI: pages rendered on the server from askama templates compiled into the
//! binary (`templates/`), with our own stylesheet and icon embedded too (`assets/`), so
//! the browser fetches nothing from anywhere but the hub. Every page reads fully without
//! JavaScript. Pages call the same core functions as `/api/v1` and build on its views;
//! they never query the database themselves nor check permissions a second way.
//!
//! Every answer carries the security headers of [`security_headers`]: a
//! Content-Security-Policy without inline scripts or styles, no framing, no sniffing.

mod account;
mod add;
mod admin;
mod builds;
mod cards;
mod edit;
mod explore;
mod format;
mod image;
mod imports;
mod markdown;
mod orgs;
mod repository;
mod session;
mod settings;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::api::ApiState;

/// The web UI's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(explore::explore))
        .route("/r/{*name}", get(repository::repository).post(repository::repository_post))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", axum::routing::post(session::logout))
        .route("/account", get(account::account).post(account::post))
        .route(
            "/new",
            get(add::form)
                .post(add::add)
                .layer(DefaultBodyLimit::max(crate::api::MAX_APPLY_BYTES + MULTIPART_OVERHEAD)),
        )
        .route("/orgs", get(orgs::orgs).post(orgs::create))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/audit", get(admin::audit))
        .route("/builds", get(builds::list).post(builds::post))
        .route("/builds/{id}", get(builds::build))
        .route("/o/{name}", get(orgs::org).post(orgs::org_post))
        .route("/o/{name}/import", get(imports::form).post(imports::post))
        .route("/o/{name}/imports", get(imports::list).post(imports::list_post))
        .route("/static/{file}", get(asset))
        .route("/favicon.ico", get(|| async { asset(Path("favicon.svg".to_string())).await }))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Room for a multipart form's boundaries and headers above the content it carries.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// What the header and footer of every page show.
pub struct Chrome {
    /// What the search box holds.
    pub search_box: String,
    pub version: &'static str,
    /// The logged-in user's name.
    pub user: Option<String>,
    /// Whether they are a site admin (the header links the admin pages).
    pub admin: bool,
    /// The session's CSRF token, for the forms of the page (the logout button).
    pub csrf: String,
}

impl Chrome {
    /// The chrome of a visitor without a session.
    fn anonymous() -> Chrome {
        Chrome {
            search_box: String::new(),
            version: VERSION,
            user: None,
            admin: false,
            csrf: String::new(),
        }
    }
}

/// The version shown in every page's footer.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A page that could not be shown, as a page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    heading: &'a str,
    message: &'a str,
}

/// An error answered as a page; the cause of a server failure goes to the log only.
pub struct PageError {
    status: StatusCode,
    heading: &'static str,
    message: String,
}

impl PageError {
    fn not_found(message: impl Into<String>) -> PageError {
        PageError { status: StatusCode::NOT_FOUND, heading: "Not found", message: message.into() }
    }

    fn forbidden(message: impl Into<String>) -> PageError {
        PageError { status: StatusCode::FORBIDDEN, heading: "Not allowed", message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            heading: "That address is not right",
            message: message.into(),
        }
    }

    fn too_large(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            heading: "That is too much",
            message: message.into(),
        }
    }

    fn internal(cause: impl std::fmt::Display) -> PageError {
        tracing::error!(error = %cause, "a page could not be rendered");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            heading: "Something went wrong",
            message: "The hub could not show this page. The server log says why.".into(),
        }
    }
}

impl From<imagehub_core::CoreError> for PageError {
    fn from(e: imagehub_core::CoreError) -> Self {
        PageError::internal(e)
    }
}

impl From<imagehub_core::AccountError> for PageError {
    fn from(e: imagehub_core::AccountError) -> Self {
        PageError::internal(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::anonymous(),
            heading: self.heading,
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// Renders a page, or the error page when the template fails.
fn render(page: &impl Template) -> Response {
    render_with_status(page, StatusCode::OK)
}

fn render_with_status(page: &impl Template, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => PageError::internal(e).into_response(),
    }
}

/// The stylesheet and icons, compiled into the binary.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static str, &'static str) = match file.as_str() {
        "style.css" => (include_str!("../../assets/style.css"), "text/css; charset=utf-8"),
        "favicon.svg" => (include_str!("../../assets/favicon.svg"), "image/svg+xml"),
        "app.js" => (include_str!("../../assets/app.js"), "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // They change only with the binary; a version in the URL would let them be cached
    // for good, an hour is a fair compromise without one.
    let headers =
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")];
    (headers, body).into_response()
}

/// The policy every web answer carries: scripts and styles only from the hub itself (so
/// nothing a README or a description smuggles in can run), images also from https
/// hosts (README badges), no framing, forms posted only to the hub.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The host clients push to, as the commands on the page should name it.
pub(super) fn host(state: &ApiState, headers: &HeaderMap) -> String {
    let url = match &state.auth {
        Some(auth) => auth.public_url(headers),
        None => headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost:5000")
            .to_string(),
    };
    url.trim_start_matches("https://").trim_start_matches("http://").to_string()
}
