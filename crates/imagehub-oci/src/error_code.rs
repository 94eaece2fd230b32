//! The OCI Distribution error-code table: each code's wire string, default status and message.
//!
//! This is the only list of `/v2` error codes; codes outside the spec are never sent
//! (`UNKNOWN` is distribution's code for internal errors and is what clients expect on a 500).

/// An error code from the OCI Distribution Spec, section "Error Codes".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OciErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// Not in the spec's table; distribution's code for an internal error.
    Unknown,
}

impl OciErrorCode {
    /// The code as it appears in the JSON body.
    pub fn as_str(self) -> &'static str {
        self.describe().0
    }

    /// The HTTP status this code is sent with unless a situation calls for another.
    pub fn default_status(self) -> u16 {
        self.describe().1
    }

    /// The short, fixed message for this code.
    pub fn message(self) -> &'static str {
        self.describe().2
    }

    fn describe(self) -> (&'static str, u16, &'static str) {
        use OciErrorCode::*;
        match self {
            BlobUnknown => ("BLOB_UNKNOWN", 404, "blob unknown to registry"),
            BlobUploadInvalid => ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
            BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"),
            DigestInvalid => {
                ("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
            }
            ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                400,
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid => ("MANIFEST_INVALID", 400, "manifest invalid"),
            ManifestUnknown => ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry"),
            NameInvalid => ("NAME_INVALID", 400, "invalid repository name"),
            NameUnknown => ("NAME_UNKNOWN", 404, "repository name not known to registry"),
            SizeInvalid => ("SIZE_INVALID", 400, "provided length did not match content length"),
            Unauthorized => ("UNAUTHORIZED", 401, "authentication required"),
            Denied => ("DENIED", 403, "requested access to the resource is denied"),
            Unsupported => ("UNSUPPORTED", 405, "the operation is unsupported"),
            TooManyRequests => ("TOOMANYREQUESTS", 429, "too many requests"),
            Unknown => ("UNKNOWN", 500, "unknown error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_upper_snake_case() {
        for code in [
            OciErrorCode::BlobUnknown,
            OciErrorCode::ManifestBlobUnknown,
            OciErrorCode::TooManyRequests,
            OciErrorCode::Unknown,
        ] {
            let s = code.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{s}");
            assert!((400..600).contains(&code.default_status()));
        }
    }
}
