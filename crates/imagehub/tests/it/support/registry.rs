//! Shared helpers for the `/v2` tests: a client bound to a fresh test server, fully read
//! replies, digests, deterministic test bytes, manifest builders and OCI error-body checks.

use std::time::Duration;

use imagehub_testkit::TestServer;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use sha2::Digest as _;

pub use super::reply::Reply;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What a client that understands every manifest kind sends as `Accept`.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The error codes the spec allows in an error body (section "Error Codes").
pub const SPEC_ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// Upper bound on any single exchange, so that a hung server fails a test instead of
/// hanging it. Never used to wait for anything.
const EXCHANGE_GUARD: Duration = Duration::from_secs(60);

/// An HTTP client pointed at an imagehub server: usually a fresh in-process one, which
/// stops when this is dropped, or one running elsewhere (a separate process).
pub struct Registry {
    server: Option<TestServer>,
    base: String,
    pub client: Client,
}

fn client() -> Client {
    Client::builder().timeout(EXCHANGE_GUARD).build().expect("build reqwest client")
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(|_| {})
    }

    /// `start`, configured by `configure`.
    pub fn start_with(configure: impl FnOnce(&mut imagehub_server::config::Config)) -> Registry {
        let server = TestServer::start_with(configure);
        let base = server.url();
        Registry { server: Some(server), base, client: client() }
    }

    /// A client for a server already running at `base` (`http://HOST:PORT`).
    pub fn at(base: &str) -> Registry {
        Registry { server: None, base: base.trim_end_matches('/').to_owned(), client: client() }
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("this registry was started in-process")
    }

    /// `http://127.0.0.1:PORT` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'), "path must start with '/': {path}");
        format!("{}{}", self.base, path)
    }

    /// Resolves a `Location` (or `Link`) target, relative or absolute, against the server.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            panic!("location is neither absolute nor an absolute path: {location:?}")
        }
    }

    /// A request to `target`, a path (`/v2/...`) or a `Location` value.
    pub fn request(&self, method: Method, target: &str) -> RequestBuilder {
        self.client.request(method, self.resolve(target))
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, target: &str) -> Reply {
        self.send(self.request(Method::GET, target)).await
    }

    pub async fn head(&self, target: &str) -> Reply {
        self.send(self.request(Method::HEAD, target)).await
    }

    pub async fn delete(&self, target: &str) -> Reply {
        self.send(self.request(Method::DELETE, target)).await
    }

    /// `POST /v2/<repo>/blobs/uploads/` with an empty body, as the spec's chunked flow asks.
    pub async fn post_upload(&self, repo: &str) -> Reply {
        let req = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("Content-Length", "0")
            .body(Vec::new());
        self.send(req).await
    }

    /// Opens an upload session, asserting `202 Accepted` with a `Location`; returns it.
    pub async fn begin_upload(&self, repo: &str) -> String {
        let reply = self.post_upload(repo).await;
        reply.expect_status_in(&[202], "POST /blobs/uploads/ opens a session");
        reply.location()
    }

    /// `PUT <location>?digest=<digest>` with `data` as the body (possibly empty).
    pub async fn put_upload(&self, location: &str, digest: &str, data: &[u8]) -> Reply {
        let req = self
            .request(Method::PUT, location)
            .query(&[("digest", digest)])
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec());
        self.send(req).await
    }

    /// `PATCH <location>` with `Content-Range: <start>-<end>` and the chunk as the body.
    pub async fn patch_chunk(&self, location: &str, start: usize, chunk: &[u8]) -> Reply {
        assert!(!chunk.is_empty(), "a chunk has at least one byte");
        let range = format!("{}-{}", start, start + chunk.len() - 1);
        let req = self
            .request(Method::PATCH, location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .body(chunk.to_vec());
        self.send(req).await
    }

    /// Pushes a blob with POST then PUT, asserting `201 Created`; returns its sha256 digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let location = self.begin_upload(repo).await;
        let reply = self.put_upload(&location, &digest, data).await;
        reply.expect_status_in(&[201], &format!("PUT of blob {digest} into {repo}"));
        assert!(reply.header("Location").is_some(), "201 for a blob upload carries a Location");
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the given `Content-Type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Reply {
        let req = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(body.to_vec());
        self.send(req).await
    }

    /// Pushes a manifest, asserting `201 Created` with a `Location`; returns its sha256 digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let reply = self.put_manifest(repo, reference, media_type, body).await;
        reply.expect_status_in(&[201], &format!("PUT manifest {repo}:{reference}"));
        assert!(reply.header("Location").is_some(), "201 for a manifest push carries a Location");
        sha256_digest(body)
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting every manifest kind.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Reply {
        let req = self
            .request(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL_MANIFESTS);
        self.send(req).await
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` accepting every manifest kind.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Reply {
        let req = self
            .request(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL_MANIFESTS);
        self.send(req).await
    }

    /// `GET /v2/<repo>/tags/list` with optional `n` and `last`.
    pub async fn tags_list(&self, repo: &str, n: Option<usize>, last: Option<&str>) -> Reply {
        let mut req = self.request(Method::GET, &format!("/v2/{repo}/tags/list"));
        if let Some(n) = n {
            req = req.query(&[("n", n.to_string())]);
        }
        if let Some(last) = last {
            req = req.query(&[("last", last)]);
        }
        self.send(req).await
    }
}

/// Checks the error body and its `Content-Type`, whatever the status.
pub fn assert_error_body(reply: &Reply, codes: &[&str], what: &str) {
    let content_type = reply.header("Content-Type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    assert_eq!(
        media_type,
        "application/json",
        "{what}: error body Content-Type; {}",
        reply.describe()
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}); {}", reply.describe()));
    let errors = body.get("errors").and_then(Value::as_array).unwrap_or_else(|| {
        panic!("{what}: error body has no \"errors\" array; {}", reply.describe())
    });
    assert!(!errors.is_empty(), "{what}: \"errors\" is empty; {}", reply.describe());
    for error in errors {
        let code = error.get("code").and_then(Value::as_str);
        let code = code
            .unwrap_or_else(|| panic!("{what}: error without a string code; {}", reply.describe()));
        assert!(
            SPEC_ERROR_CODES.contains(&code),
            "{what}: {code} is not a spec error code; {}",
            reply.describe()
        );
        assert!(
            error.get("message").is_some_and(Value::is_string),
            "{what}: error without a string message; {}",
            reply.describe()
        );
    }
    let found = errors.iter().any(|e| codes.contains(&e["code"].as_str().unwrap_or_default()));
    assert!(found, "{what}: expected an error code in {codes:?}; {}", reply.describe());
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn sha512_digest(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for byte in word.to_le_bytes() {
            if out.len() < len {
                out.push(byte);
            }
        }
    }
    out
}

/// Standard base64 with padding, for the `data` field of descriptors.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A descriptor of `data` with the given media type.
pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256_digest(data), "size": data.len() })
}

/// A small OCI image config; `label` makes it unique.
pub fn image_config(label: &str) -> Vec<u8> {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "author": label,
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    serde_json::to_vec_pretty(&config).expect("serialize config")
}

/// An OCI image manifest (with `mediaType`) over a config and layers.
pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<Value> = layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers,
    });
    serde_json::to_vec_pretty(&manifest).expect("serialize manifest")
}

/// An OCI image manifest with annotations, for making distinct manifests over the same blobs.
pub fn annotated_manifest(config: &[u8], layers: &[&[u8]], annotations: Value) -> Vec<u8> {
    let layers: Vec<Value> = layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers,
        "annotations": annotations,
    });
    serde_json::to_vec_pretty(&manifest).expect("serialize manifest")
}

/// An OCI image index over the given manifests (each an OCI image manifest).
pub fn image_index(manifests: &[&[u8]]) -> Vec<u8> {
    let manifests: Vec<Value> = manifests.iter().map(|m| descriptor(OCI_MANIFEST, m)).collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    serde_json::to_vec_pretty(&index).expect("serialize index")
}

/// Pushes a config and one layer, then an image manifest over them under `reference`.
/// Returns the manifest bytes and digest.
pub async fn push_image(
    reg: &Registry,
    repo: &str,
    reference: &str,
    label: &str,
) -> (Vec<u8>, String) {
    let config = image_config(label);
    let layer = random_bytes(64, label.len() as u64 + 7);
    reg.push_blob(repo, &config).await;
    reg.push_blob(repo, &layer).await;
    let manifest = image_manifest(&config, &[&layer]);
    let digest = reg.push_manifest(repo, reference, OCI_MANIFEST, &manifest).await;
    (manifest, digest)
}

/// The URL inside `<...>` of a `Link` header with `rel="next"`, if any.
pub fn next_link(reply: &Reply) -> Option<String> {
    let links = reply.header_all("Link");
    for value in links {
        for part in value.split(',') {
            let part = part.trim();
            let Some(rest) = part.strip_prefix('<') else { continue };
            let Some((target, params)) = rest.split_once('>') else { continue };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(target.to_string());
            }
        }
    }
    None
}

/// The path (and query) of a location, without scheme and authority.
pub fn location_path(location: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            };
        }
    }
    location.to_string()
}

/// The query parameters of a URL, decoded.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The string list under `key` in a JSON body, failing if it is missing or not an array.
pub fn string_list(body: &Value, key: &str) -> Vec<String> {
    let list = body
        .get(key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("expected {key:?} to be an array in {body}"));
    list.iter().map(|v| v.as_str().expect("list entries are strings").to_string()).collect()
}

/// Sends raw bytes over a fresh TCP connection and reads until the server closes it.
pub async fn raw_exchange(server: &TestServer, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut out = Vec::new();
        // A reset after the server's reply still leaves us what was read.
        let _ = stream.read_to_end(&mut out).await;
        out
    };
    tokio::time::timeout(EXCHANGE_GUARD, exchange).await.expect("server closes the connection")
}

/// Splits a raw HTTP/1.x response into status code, lower-cased headers and body.
pub fn parse_raw_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

/// A `Reply` from a raw HTTP/1.x response, for the assertions that take one.
pub fn reply_from_raw(raw: &[u8]) -> Reply {
    let (status, parsed, body) = parse_raw_response(raw);
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in parsed {
        let name =
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        headers.append(name, value.parse().expect("valid header value"));
    }
    let status = reqwest::StatusCode::from_u16(status).expect("a valid status code");
    Reply { status, headers, body }
}

/// Sends a request with `Expect: 100-continue` on a fresh connection: the body goes out only
/// if the server asks for it with `100 Continue`; returns the final response.
pub async fn raw_exchange_expecting_continue(
    server: &TestServer,
    head: &str,
    body: &[u8],
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert!(
        head.ends_with("\r\n\r\n") && head.contains("Expect: 100-continue"),
        "a request head asking to continue"
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write request head");
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).await.expect("read response head");
            assert!(
                n > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        };
        if raw.starts_with(b"HTTP/1.1 100") || raw.starts_with(b"HTTP/1.0 100") {
            raw.drain(..head_end);
            // The server may answer before it has read everything; a write error is no failure.
            let _ = stream.write_all(body).await;
        }
        let _ = stream.read_to_end(&mut raw).await;
        raw
    };
    let raw =
        tokio::time::timeout(EXCHANGE_GUARD, exchange).await.expect("server answers and closes");
    reply_from_raw(&raw)
}
