//! What can go wrong talking to a registry, in words a person understands: these
//! messages end up as the reason an import failed.

use std::time::SystemTime;

use imagehub_oci::Digest;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The registry has no such repository, manifest or blob (or hides it from us).
    #[error("not found upstream: {what}")]
    NotFound { what: String },
    /// The registry wants credentials we do not have, or refused those we gave.
    #[error("{registry} refused the credentials{}", if *.anonymous { " (none were given: the image may be private)" } else { "" })]
    Unauthorized { registry: String, anonymous: bool },
    /// The registry took the credentials but does not let them do what was asked.
    #[error("{registry} accepted the credentials but denies them this on {repository}")]
    Denied { registry: String, repository: String },
    /// The registry asked us to wait longer than we wait inline.
    #[error("rate limited by {registry}, retry after {}", crate::rfc3339(*.retry_at))]
    RateLimited { registry: String, retry_at: SystemTime },
    /// Refused by the operator's policy: a private address, an unlisted insecure registry.
    #[error("{0}")]
    Forbidden(String),
    /// The registry's TLS certificate is not trusted; trying again will not help.
    #[error(
        "the TLS certificate of {registry} is not trusted ({message}); to import from it anyway, the operator lists it as insecure"
    )]
    Untrusted { registry: String, message: String },
    /// The registry answered something we cannot use.
    #[error("{registry} answered {status}: {message}")]
    Upstream { registry: String, status: u16, message: String },
    /// The registry could not be reached (after retries).
    #[error("could not reach {registry}: {message}")]
    Unreachable { registry: String, message: String },
    /// What the registry sent is not what it said it was.
    #[error("{what} from upstream does not match its digest {expected} (got {actual})")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    #[error("{what} from upstream is {size} bytes, over the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what} from upstream is {actual} bytes, not the {expected} its descriptor says")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("invalid answer from {registry}: {message}")]
    Protocol { registry: String, message: String },
    /// Something on this machine failed (reading the file being uploaded).
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    /// Whether trying again later may succeed (the job should wait, not fail).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::RateLimited { .. } | ClientError::Unreachable { .. })
            || matches!(self, ClientError::Upstream { status, .. } if *status >= 500)
    }
}
