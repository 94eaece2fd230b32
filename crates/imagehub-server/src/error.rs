//! `ApiError`: the one place where failures become HTTP statuses and the OCI error body
//! `{"errors":[{"code","message","detail"}]}`.

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

    pub fn status(mut self, status: StatusCode) -> ApiError {
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
            chain.push_str(": ");
            chain.push_str(&s.to_string());
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
