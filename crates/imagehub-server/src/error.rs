//! `ApiError`: the one place where failures become HTTP statuses and the OCI error body
//! `{"errors":[{"code","message","detail"}]}`. The core's situations are `CoreError`s,
//! the accounts' `AccountError`s, the edge's own [`EdgeError`]s; each maps to a code, a
//! status and headers here, and nowhere else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imagehub_core::CoreError;
use imagehub_oci::{ManifestError, NameError, OciErrorCode};
use serde::Serialize;
use serde_json::{Value, json};

/// An error answered on `/v2`.
#[derive(Debug)]
pub struct ApiError {
    code: OciErrorCode,
    status: StatusCode,
    message: String,
    detail: Option<Value>,
    /// For 5xx: the full error chain, logged by the request middleware, never sent.
    internal: Option<String>,
    /// `WWW-Authenticate`, `Retry-After`, an upload's `Range`.
    headers: Vec<(header::HeaderName, String)>,
}

/// The full error chain of a 5xx, left in the response extensions for the logger.
#[derive(Debug, Clone)]
pub struct InternalErrorChain(pub String);

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Value>,
}

impl ApiError {
    /// An error with the code's default status and message.
    pub fn new(code: OciErrorCode) -> ApiError {
        ApiError {
            code,
            status: StatusCode::from_u16(code.default_status()).expect("table statuses are valid"),
            message: code.message().to_owned(),
            detail: None,
            internal: None,
            headers: Vec::new(),
        }
    }

    /// The error's code.
    pub fn code(&self) -> OciErrorCode {
        self.code
    }

    /// Adds a response header.
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// Only for the mappings below: call sites name a situation instead.
    fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
    }

    pub fn detail(mut self, detail: Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    /// A 500 whose cause is logged but not sent.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            // Many errors print their source in their own message as well (thiserror's
            // `{0}` beside `#[from]`): say each cause once.
            let text = s.to_string();
            if !chain.ends_with(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            source = s.source();
        }
        ApiError { internal: Some(chain), ..ApiError::new(OciErrorCode::Unknown) }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use OciErrorCode as C;
        let message = e.to_string();
        match e {
            CoreError::NameUnknown(name) => ApiError::new(C::NameUnknown)
                .message(message)
                .detail(json!({ "name": name.as_str() })),
            CoreError::BlobUnknown(digest) => {
                ApiError::new(C::BlobUnknown).message(message).detail(json!({ "digest": digest }))
            }
            CoreError::ManifestUnknown(reference) => ApiError::new(C::ManifestUnknown)
                .message(message)
                .detail(json!({ "reference": reference })),
            CoreError::UploadUnknown(id) => {
                ApiError::new(C::BlobUploadUnknown).message(message).detail(json!({ "uuid": id }))
            }
            // A 416 on an upload tells the client the `Range` the upload has now.
            CoreError::UploadOutOfOrder { current_len } => ApiError::new(C::BlobUploadInvalid)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message(message)
                .detail(json!({ "received": current_len }))
                .header(header::RANGE, range_header_value(current_len)),
            CoreError::UploadInvalid(_) => ApiError::new(C::BlobUploadInvalid).message(message),
            CoreError::DigestMismatch { expected, actual } => ApiError::new(C::DigestInvalid)
                .message(message)
                .detail(json!({ "expected": expected, "actual": actual })),
            CoreError::ManifestInvalid(ManifestError::TooLarge(size)) => ApiError::new(
                C::ManifestInvalid,
            )
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .message(message)
            .detail(json!({ "size": size, "limit": imagehub_oci::manifest::MAX_MANIFEST_BYTES })),
            CoreError::ManifestInvalid(ManifestError::UnsupportedMediaType(media_type)) => {
                ApiError::new(C::ManifestInvalid)
                    .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                    .message(message)
                    .detail(json!({ "mediaType": media_type }))
            }
            CoreError::ManifestInvalid(ManifestError::Invalid(_)) => {
                ApiError::new(C::ManifestInvalid).message(message)
            }
            CoreError::ManifestReferenceUnknown { digest, .. } => {
                ApiError::new(C::ManifestBlobUnknown)
                    .message(message)
                    .detail(json!({ "digest": digest }))
            }
            // Sessions end when finished, cancelled or expired; a minute is a fair wait.
            CoreError::TooManyUploads { limit, .. } => ApiError::new(C::TooManyRequests)
                .message(message)
                .detail(json!({ "limit": limit }))
                .header(header::RETRY_AFTER, "60"),
            CoreError::Internal(cause) => ApiError::internal(cause.as_ref()),
        }
    }
}

/// What went wrong at the `/v2` edge (and the token endpoint) itself, before or
/// beside the registry's rules.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    #[error("malformed query string: {0}")]
    MalformedQuery(String),
    /// A `/token` request that cannot be served: its form, grant, scope or service.
    #[error("{0}")]
    MalformedTokenRequest(String),
    #[error("Content-Range {0:?} is not of the form <start>-<end>")]
    MalformedContentRange(String),
    #[error("manifest is larger than the {limit}-byte limit")]
    ManifestTooLarge { limit: usize },
    #[error("no such /v2 endpoint")]
    NoSuchEndpoint,
    #[error("{0} is not supported on this endpoint")]
    MethodNotSupported(axum::http::Method),
}

impl From<EdgeError> for ApiError {
    fn from(e: EdgeError) -> Self {
        use OciErrorCode as C;
        let message = e.to_string();
        let bad_request =
            |code| ApiError::new(code).status(StatusCode::BAD_REQUEST).message(message.clone());
        match e {
            EdgeError::MalformedAuthorization => bad_request(C::Unauthorized),
            EdgeError::MalformedQuery(_) | EdgeError::MalformedTokenRequest(_) => {
                bad_request(C::Unsupported)
            }
            EdgeError::MalformedContentRange(_) => ApiError::new(C::BlobUploadInvalid)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message(message),
            EdgeError::ManifestTooLarge { limit } => ApiError::new(C::ManifestInvalid)
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .message(message)
                .detail(json!({ "limit": limit })),
            EdgeError::NoSuchEndpoint => ApiError::new(C::NameUnknown).message(message),
            EdgeError::MethodNotSupported(_) => ApiError::new(C::Unsupported).message(message),
        }
    }
}

/// The accounts' situations in the OCI error shape.
impl From<&imagehub_core::AccountError> for ApiError {
    fn from(e: &imagehub_core::AccountError) -> Self {
        use imagehub_core::AccountError as A;
        let message = e.to_string();
        match e {
            A::BadCredentials | A::Unauthenticated => {
                ApiError::new(OciErrorCode::Unauthorized).message(message)
            }
            A::TooManyAttempts { retry_after } => ApiError::new(OciErrorCode::TooManyRequests)
                .message(message)
                .header(header::RETRY_AFTER, retry_after.as_secs().max(1).to_string()),
            A::PasswordRequired { .. }
            | A::NotAnAccountCredential { .. }
            | A::SignupClosed
            | A::AdminOnly { .. }
            | A::NotOwner { .. }
            | A::AuditClosed => ApiError::new(OciErrorCode::Denied).message(message),
            A::NoSuchOrg(_) | A::NoSuchUser(_) | A::NoSuchToken(_) | A::NotAMember { .. } => {
                ApiError::new(OciErrorCode::NameUnknown).message(message)
            }
            A::NameTaken(_) | A::LastOwner | A::OrgNotEmpty { .. } | A::InvalidInput(_) => {
                ApiError::new(OciErrorCode::Unsupported)
                    .status(StatusCode::BAD_REQUEST)
                    .message(message)
            }
            A::Webhook(_) => ApiError::new(OciErrorCode::Unknown)
                .status(StatusCode::BAD_GATEWAY)
                .message(message),
            A::Setup(_) | A::Metadata(_) => ApiError::internal(e),
        }
    }
}

/// Malformed names are `NAME_INVALID`; malformed digests `DIGEST_INVALID`.
impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        let code = match e {
            NameError::InvalidName(_) | NameError::InvalidAccountName(_) => {
                OciErrorCode::NameInvalid
            }
            NameError::InvalidTag(_) => OciErrorCode::ManifestInvalid,
            NameError::InvalidDigest(_) => OciErrorCode::DigestInvalid,
        };
        ApiError::new(code).message(e.to_string())
    }
}

impl From<imagehub_oci::DigestError> for ApiError {
    fn from(e: imagehub_oci::DigestError) -> Self {
        ApiError::new(OciErrorCode::DigestInvalid).message(e.to_string())
    }
}

/// The `Range` header value of an upload that has received `len` bytes. An empty upload
/// is `0-0`, as distribution sends and clients expect.
pub fn range_header_value(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code.as_str(),
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        };
        let json = serde_json::to_vec(&body).expect("error bodies serialise");
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        if let Some(chain) = self.internal {
            response.extensions_mut().insert(InternalErrorChain(chain));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use imagehub_core::{AccountError, CoreError};
    use imagehub_oci::{Digest, ManifestError};

    use super::*;

    #[track_caller]
    fn check(error: ApiError, status: u16, code: &str) {
        assert_eq!((error.status.as_u16(), error.code.as_str()), (status, code), "{error:?}");
    }

    fn digest() -> Digest {
        format!("sha256:{}", "a".repeat(64)).parse().unwrap()
    }

    #[test]
    fn every_core_error_has_one_answer() {
        check(CoreError::NameUnknown("a/b".parse().unwrap()).into(), 404, "NAME_UNKNOWN");
        check(CoreError::BlobUnknown(digest()).into(), 404, "BLOB_UNKNOWN");
        check(CoreError::ManifestUnknown("v1".into()).into(), 404, "MANIFEST_UNKNOWN");
        check(CoreError::UploadUnknown("x".into()).into(), 404, "BLOB_UPLOAD_UNKNOWN");
        let out_of_order: ApiError = CoreError::UploadOutOfOrder { current_len: 10 }.into();
        assert!(out_of_order.headers.iter().any(|(n, v)| n == header::RANGE && v == "0-9"));
        check(out_of_order, 416, "BLOB_UPLOAD_INVALID");
        check(CoreError::UploadInvalid("short".into()).into(), 400, "BLOB_UPLOAD_INVALID");
        check(
            CoreError::DigestMismatch { expected: digest(), actual: digest() }.into(),
            400,
            "DIGEST_INVALID",
        );
        check(
            CoreError::ManifestInvalid(ManifestError::TooLarge(5 << 20)).into(),
            413,
            "MANIFEST_INVALID",
        );
        check(
            CoreError::ManifestInvalid(ManifestError::UnsupportedMediaType("x".into())).into(),
            415,
            "MANIFEST_INVALID",
        );
        check(
            CoreError::ManifestInvalid(ManifestError::Invalid("bad".into())).into(),
            400,
            "MANIFEST_INVALID",
        );
        check(
            CoreError::ManifestReferenceUnknown { digest: digest(), is_manifest: false }.into(),
            400,
            "MANIFEST_BLOB_UNKNOWN",
        );
        let scope = imagehub_core::UploadScope::User;
        let too_many: ApiError = CoreError::TooManyUploads { scope, limit: 3 }.into();
        assert!(too_many.headers.iter().any(|(n, v)| n == header::RETRY_AFTER && v == "60"));
        check(too_many, 429, "TOOMANYREQUESTS");
        let internal: ApiError = CoreError::Internal("disk on fire".into()).into();
        assert_eq!(internal.internal.as_deref(), Some("disk on fire"));
        assert!(!internal.message.contains("fire"), "the cause is logged, not sent");
        check(internal, 500, "UNKNOWN");
    }

    #[test]
    fn an_internal_error_logs_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("blob store I/O failed: {0}")]
        struct SaysItsSource(#[from] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("saving failed")]
        struct HidesItsSource(#[source] SaysItsSource);

        let cause = || SaysItsSource(std::io::Error::other("disk on fire"));
        let said = ApiError::internal(&cause());
        assert_eq!(said.internal.as_deref(), Some("blob store I/O failed: disk on fire"));
        let hidden = ApiError::internal(&HidesItsSource(cause()));
        let chain = "saving failed: blob store I/O failed: disk on fire";
        assert_eq!(hidden.internal.as_deref(), Some(chain));
    }

    #[test]
    fn every_edge_error_has_one_answer() {
        check(EdgeError::MalformedAuthorization.into(), 400, "UNAUTHORIZED");
        check(EdgeError::MalformedQuery("n".into()).into(), 400, "UNSUPPORTED");
        check(EdgeError::MalformedTokenRequest("grant".into()).into(), 400, "UNSUPPORTED");
        check(EdgeError::MalformedContentRange("x".into()).into(), 416, "BLOB_UPLOAD_INVALID");
        check(EdgeError::ManifestTooLarge { limit: 4 << 20 }.into(), 413, "MANIFEST_INVALID");
        check(EdgeError::NoSuchEndpoint.into(), 404, "NAME_UNKNOWN");
        check(EdgeError::MethodNotSupported(axum::http::Method::TRACE).into(), 405, "UNSUPPORTED");
    }

    #[test]
    fn every_account_error_has_one_answer_on_v2() {
        check((&AccountError::BadCredentials).into(), 401, "UNAUTHORIZED");
        let throttled: ApiError =
            (&AccountError::TooManyAttempts { retry_after: std::time::Duration::ZERO }).into();
        assert!(throttled.headers.iter().any(|(n, v)| n == header::RETRY_AFTER && v == "1"));
        check(throttled, 429, "TOOMANYREQUESTS");
        check((&AccountError::SignupClosed).into(), 403, "DENIED");
        check((&AccountError::NoSuchUser("bob".into())).into(), 404, "NAME_UNKNOWN");
        check((&AccountError::NameTaken("acme".into())).into(), 400, "UNSUPPORTED");
        check((&AccountError::Webhook("down".into())).into(), 502, "UNKNOWN");
        check((&AccountError::Setup("broken".into())).into(), 500, "UNKNOWN");
    }
}
