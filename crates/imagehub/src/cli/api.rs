//! Calls to a hub's `/api/v1`, with the credentials kept for it, for the commands that
//! are about the hub's own objects (search, inspect, rm, …).

use imagehub_client::{CredentialStore, Credentials};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{ClientArgs, FAILED, Failure, NOT_FOUND, UNAUTHORIZED};

pub struct Hub {
    registry: String,
    base: String,
    credentials: Credentials,
    http: reqwest::Client,
    /// Answers are printed as JSON (escaped by the printer), not as text.
    json: bool,
}

/// The most of an answer read: the API pages its lists, so no honest answer is near.
const MAX_ANSWER: usize = 16 << 20;

impl Hub {
    /// The hub at `registry`: plain HTTP for loopback ones (and with `--insecure`),
    /// HTTPS otherwise.
    pub fn new(registry: &str, args: &ClientArgs) -> Result<Hub, Failure> {
        let plain = args.insecure
            || super::is_loopback(registry)
            || super::registries_conf::is_insecure(registry);
        let base = format!("{}://{registry}", if plain { "http" } else { "https" });
        let credentials = CredentialStore::from_env().get(registry, None)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("imagehub/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(args.insecure)
            // A hub that accepts and then says nothing must not hang a script forever;
            // the longest honest wait is an import's 30 s long poll.
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(90))
            .build()
            .map_err(|e| Failure::new(e.to_string()))?;
        Ok(Hub { registry: registry.to_string(), base, credentials, http, json: args.json })
    }

    /// Sends a request; the answer's JSON, or the failure the hub described.
    pub async fn call(&self, method: Method, path: &str) -> Result<Value, Failure> {
        self.send(method, path, None).await
    }

    /// `call`, with a JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let body = body.map(|b| ("application/json", b.to_string()));
        let text = self.exchange(method, path, body).await?;
        let mut value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !self.json {
            make_printable(&mut value);
        }
        Ok(value)
    }

    /// Sends a request with a body of the given content type, if any; the answer's
    /// text, or the failure the hub described.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<String, Failure> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some((content_type, body)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        if let Credentials::Basic { username, password } = &self.credentials {
            request = request.basic_auth(username, Some(password));
        }
        let response = request.send().await.map_err(|e| Failure {
            hint: Some(format!("is {} up? A plain-HTTP hub needs --insecure", self.registry)),
            ..Failure::new(format!("could not reach {}: {e}", self.registry))
        })?;
        let status = response.status();
        let text = self.read_bounded(response).await?;
        if status.is_success() {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message =
            body["errors"][0]["message"].as_str().map_or_else(|| status.to_string(), String::from);
        let (code, hint) = match status {
            StatusCode::NOT_FOUND => (NOT_FOUND, None),
            StatusCode::FORBIDDEN if !matches!(self.credentials, Credentials::Anonymous) => {
                (UNAUTHORIZED, Some(super::LACKS_RIGHT.into()))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                (UNAUTHORIZED, Some(format!("run: imagehub login {}", self.registry)))
            }
            _ => (FAILED, None),
        };
        Err(Failure { code, message: format!("{}: {message}", self.registry), hint })
    }

    /// The answer's text, refused past [`MAX_ANSWER`].
    async fn read_bounded(&self, mut response: reqwest::Response) -> Result<String, Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::new(format!("{}: the answer broke off: {e}", self.registry)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Failure::new(format!(
                    "{}: the answer is over {} MiB; is this an imagehub?",
                    self.registry,
                    MAX_ANSWER >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Every string of `value` made safe to print to a terminal (see [`super::printable`]).
fn make_printable(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = super::printable(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_printable),
        Value::Object(fields) => fields.values_mut().for_each(make_printable),
        _ => {}
    }
}

/// `s` percent-encoded for a query string.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
