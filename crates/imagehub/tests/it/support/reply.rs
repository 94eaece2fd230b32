//! A response read to the end, and the assertions tests make on it. Each `expect_*`
//! names what it checks and says, when it fails, what the server answered.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A response read to the end: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("read the response body").to_vec();
        Reply { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// Every value of a header that may repeat.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    /// The `Location` header, which must be present and non-empty.
    pub fn location(&self) -> String {
        let location = self.header("Location").unwrap_or_default();
        assert!(!location.is_empty(), "expected a Location header; {}", self.describe());
        location
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}); {}", self.describe()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A short description for assertion messages.
    pub fn describe(&self) -> String {
        let mut shown = self.text();
        if shown.len() > 600 {
            let mut cut = 600;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        format!("status {} headers {:?} body {:?}", self.status, self.headers, shown)
    }

    /// Asserts the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16, what: &str) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "{what}: {}", self.text());
        self
    }

    /// Asserts the status is one of `allowed`.
    #[track_caller]
    pub fn expect_status_in(&self, allowed: &[u16], what: &str) -> &Reply {
        assert!(
            allowed.contains(&self.status.as_u16()),
            "{what}: expected status in {allowed:?}, got {}",
            self.describe()
        );
        self
    }

    /// Asserts an OCI error reply: a status in `statuses`, `Content-Type: application/json`
    /// and a body `{"errors":[{"code":..,"message":..},..]}` whose codes are all spec codes
    /// and one of which is in `codes`.
    #[track_caller]
    pub fn expect_oci_error(&self, statuses: &[u16], codes: &[&str], what: &str) {
        self.expect_status_in(statuses, what);
        super::registry::assert_error_body(self, codes, what);
    }
}
