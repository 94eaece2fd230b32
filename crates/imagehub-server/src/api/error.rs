//! The one error vocabulary of `/api/v1`: [`ErrorCode`] (shared with the OpenAPI
//! document), [`ApiV1Error`] built by handlers, and the single mapping from each code to
//! its status and from the lower layers' errors to a code.
//!
//! Every error answers `{"errors":[{"code","message","detail"}]}`; `detail` says for
//! programs what `message` says for people: the field at fault, the repository, the
//! document of an apply, when to retry.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imagehub_core::AccountError;
use serde::Serialize;
use utoipa::openapi::{self, Content, Ref, RefOr, header::Header};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use crate::auth::CredentialError;
use crate::error::InternalErrorChain;

/// What went wrong, as a program tells it apart; each code has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the request is malformed (body, parameter, name, Authorization header).
    Invalid,
    /// 401: credentials are needed, or the ones given are wrong, expired or revoked.
    Unauthorized,
    /// 403: the caller may not do this.
    Denied,
    /// 404: no such thing, or the caller may not see it.
    NotFound,
    /// 409: the name is taken, the organization still has repositories, or it would lose its last owner.
    Conflict,
    /// 413: the body is too large.
    TooLarge,
    /// 429: too many failed logins; see `Retry-After`.
    TooManyRequests,
    /// 500: see the server log.
    Internal,
    /// 502: the login webhook failed.
    Upstream,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Invalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Upstream => StatusCode::BAD_GATEWAY,
        }
    }
}

/// An `/api/v1` error.
#[derive(Debug)]
pub struct ApiV1Error {
    code: ErrorCode,
    message: String,
    detail: serde_json::Map<String, serde_json::Value>,
    retry_after: Option<u64>,
    /// For a 500: the cause, logged by the request middleware and never sent.
    internal: Option<String>,
}

/// An error answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"errors": [{"code": "NOT_FOUND", "message": "no repository team/app", "detail": {"repository": "team/app"}}]}))]
pub struct ErrorBody {
    /// Always one error.
    pub errors: [ErrorItem; 1],
}

#[derive(Serialize, ToSchema)]
pub struct ErrorItem {
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The same for programs, or `null`: an object with, where they apply, `field`
    /// (the field at fault: `keywords`, `spec.name`, `metadata.name`), `document` (which
    /// document of an apply, from 1), `repository` and `reference` (what was not found
    /// or denied), `action` (what was denied), `retry_after_secs` (with 429).
    #[schema(required = true, value_type = Option<Object>)]
    pub detail: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The 401 answer, as the OpenAPI document names it.
pub struct Unauthorized;

/// The 429 answer, as the OpenAPI document names it.
pub struct TooManyRequests;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<openapi::Response>) {
        let challenge = Header::builder()
            .schema(String::schema())
            .description(Some(r#"`Basic realm="imagehub"`"#));
        let response = error_response("Credentials are needed, or the ones given are wrong, expired or revoked (`UNAUTHORIZED`).")
            .header("WWW-Authenticate", challenge.build());
        ("Unauthorized", RefOr::T(response.build()))
    }
}

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<openapi::Response>) {
        let retry = Header::builder()
            .schema(u64::schema())
            .description(Some("Seconds to wait before trying again."));
        let response = error_response(
            "Too many failed logins with this user name from this client (`TOO_MANY_REQUESTS`); passwords only.",
        )
        .header("Retry-After", retry.build());
        ("TooManyRequests", RefOr::T(response.build()))
    }
}

/// A response whose body is an [`ErrorBody`].
fn error_response(description: &str) -> utoipa::openapi::response::ResponseBuilder {
    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
}

impl ApiV1Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiV1Error {
        ApiV1Error {
            code,
            message: message.into(),
            detail: serde_json::Map::new(),
            retry_after: None,
            internal: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiV1Error {
        ApiV1Error::new(ErrorCode::Invalid, message)
    }

    /// A 400 about one field of the request (`spec.name`, `keywords`); the message
    /// starts with the field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> ApiV1Error {
        ApiV1Error::invalid(format!("{field}: {problem}")).with_detail("field", field)
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// What it tells the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a failure of the server itself, its cause (never sent to the caller).
    pub fn cause(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// Adds `key` to the error's `detail` object.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiV1Error {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    /// The same error, its message prefixed with where it happened.
    pub fn context(mut self, place: &str) -> ApiV1Error {
        self.message = format!("{place}: {}", self.message);
        self
    }

    fn too_many(message: String, retry_after_secs: u64) -> ApiV1Error {
        let error = ApiV1Error::new(ErrorCode::TooManyRequests, message)
            .with_detail("retry_after_secs", retry_after_secs);
        ApiV1Error { retry_after: Some(retry_after_secs), ..error }
    }
}

/// A failure of the server itself: answered without its cause, which the request
/// middleware logs, as on `/v2`.
pub fn internal(e: impl std::fmt::Display) -> ApiV1Error {
    let error = ApiV1Error::new(ErrorCode::Internal, "internal error; see the server log");
    ApiV1Error { internal: Some(e.to_string()), ..error }
}

impl From<imagehub_core::ImportError> for ApiV1Error {
    fn from(e: imagehub_core::ImportError) -> Self {
        use imagehub_core::ImportError as I;
        match e {
            I::Disabled => ApiV1Error::new(ErrorCode::NotFound, e.to_string()),
            // The message starts with the field at fault (`source_url: …`).
            I::Refused(message) => {
                let field = message.split_once(':').map(|(field, _)| field.to_string());
                let error = ApiV1Error::invalid(message);
                match field {
                    Some(field) if !field.contains(' ') => error.with_detail("field", field),
                    _ => error,
                }
            }
            I::NoSuchJob(id) => ApiV1Error::new(ErrorCode::NotFound, format!("no import job {id}")),
            I::Upstream(e) => ApiV1Error::new(ErrorCode::Upstream, e.to_string()),
            I::TooMany(message) => ApiV1Error::new(ErrorCode::TooManyRequests, message),
            I::NoSuchRule(id) => ApiV1Error::new(ErrorCode::NotFound, format!("no sync rule {id}")),
            I::NoSuchGroup(id) => {
                ApiV1Error::new(ErrorCode::NotFound, format!("no import group {id}"))
            }
            I::Core(e) => internal(e),
        }
    }
}

impl From<AccountError> for ApiV1Error {
    fn from(e: AccountError) -> Self {
        use AccountError as A;
        let code = match &e {
            A::BadCredentials | A::Unauthenticated => ErrorCode::Unauthorized,
            A::TooManyAttempts { retry_after } => {
                return ApiV1Error::too_many(e.to_string(), retry_after.as_secs().max(1));
            }
            A::PasswordRequired { .. }
            | A::NotAnAccountCredential { .. }
            | A::SignupClosed
            | A::AdminOnly { .. }
            | A::NotOwner { .. }
            | A::AuditClosed => ErrorCode::Denied,
            A::NoSuchOrg(_) | A::NoSuchUser(_) | A::NoSuchToken(_) | A::NotAMember { .. } => {
                ErrorCode::NotFound
            }
            A::NameTaken(_) | A::LastOwner | A::OrgNotEmpty { .. } => ErrorCode::Conflict,
            A::InvalidInput(_) => ErrorCode::Invalid,
            A::Webhook(_) => ErrorCode::Upstream,
            A::Setup(_) | A::Metadata(_) => return internal(e),
        };
        ApiV1Error::new(code, e.to_string())
    }
}

impl From<CredentialError> for ApiV1Error {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Malformed => ApiV1Error::invalid("malformed Authorization header"),
            CredentialError::BadToken(why) => ApiV1Error::new(ErrorCode::Unauthorized, why),
            CredentialError::Account(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiV1Error {
    fn into_response(self) -> Response {
        let detail = (!self.detail.is_empty()).then_some(self.detail);
        let item = ErrorItem { code: self.code, message: self.message, detail };
        let mut response =
            (self.code.status(), axum::Json(ErrorBody { errors: [item] })).into_response();
        let headers = response.headers_mut();
        if self.code == ErrorCode::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="imagehub""#),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(cause) = self.internal {
            response.extensions_mut().insert(InternalErrorChain(cause));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(error: AccountError, status: StatusCode, code: &str) {
        let response = ApiV1Error::from(error).into_response();
        assert_eq!(response.status(), status);
        let body = response.into_body();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["errors"][0]["code"], code, "{json}");
    }

    #[tokio::test]
    async fn every_account_error_has_one_answer() {
        use std::time::Duration;
        check(AccountError::BadCredentials, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        check(AccountError::Unauthenticated, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let throttled = AccountError::TooManyAttempts { retry_after: Duration::from_millis(10) };
        let response = ApiV1Error::from(throttled).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1", "never Retry-After: 0");
        for denied in [
            AccountError::PasswordRequired { presented: "registry token" },
            AccountError::NotAnAccountCredential { presented: "registry token" },
            AccountError::SignupClosed,
            AccountError::AdminOnly { what: "list the users" },
            AccountError::NotOwner { namespace: "acme".into(), what: "do that" },
            AccountError::AuditClosed,
        ] {
            check(denied, StatusCode::FORBIDDEN, "DENIED").await;
        }
        for missing in [
            AccountError::NoSuchOrg("acme".into()),
            AccountError::NoSuchUser("bob".into()),
            AccountError::NoSuchToken(7),
            AccountError::NotAMember { user: "bob".into(), org: "acme".into() },
        ] {
            check(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        for conflict in [
            AccountError::NameTaken("acme".into()),
            AccountError::LastOwner,
            AccountError::OrgNotEmpty { repositories: 2 },
        ] {
            check(conflict, StatusCode::CONFLICT, "CONFLICT").await;
        }
        check(AccountError::InvalidInput("bad".into()), StatusCode::BAD_REQUEST, "INVALID").await;
        check(AccountError::Webhook("down".into()), StatusCode::BAD_GATEWAY, "UPSTREAM").await;
        check(AccountError::Setup("broken".into()), StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            .await;
    }

    #[tokio::test]
    async fn a_500_keeps_its_cause_for_the_log_and_out_of_the_body() {
        let response = internal("disk on fire").into_response();
        assert_eq!(
            response.extensions().get::<InternalErrorChain>().map(|c| c.0.as_str()),
            Some("disk on fire")
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("fire"));
    }

    #[test]
    fn unauthorized_answers_carry_a_basic_challenge() {
        let response = ApiV1Error::new(ErrorCode::Unauthorized, "who are you").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], r#"Basic realm="imagehub""#);
    }
}
