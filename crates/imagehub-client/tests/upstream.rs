//! The client against a small upstream registry written here (axum on a loopback port),
//! which can lie, fail, throttle and demand credentials on cue: what real registries do
//! now and then, and what an import must survive or report plainly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use imagehub_client::{
    ClientError, ClientSettings, Credentials, RegistryClient, RegistrySettings, RemoteReference,
    Target,
};
use imagehub_oci::{Digest, Reference, RepoName};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    None,
    Basic,
    Bearer,
}

/// What the upstream serves and how it misbehaves.
struct Upstream {
    auth: Auth,
    manifests: HashMap<String, Bytes>,
    blobs: HashMap<String, Bytes>,
    tags: Vec<String>,
    /// The next requests answered with these statuses (and `Retry-After`), in order.
    failures: Mutex<Vec<(StatusCode, Option<&'static str>)>>,
    /// A `Docker-Content-Digest` to state instead of the true one.
    lie_about_digest: Option<String>,
    /// Where blob downloads are redirected, if anywhere.
    redirect_blobs_to: Option<String>,
    requests: AtomicU32,
    token_requests: AtomicU32,
}

impl Upstream {
    fn new(auth: Auth) -> Upstream {
        Upstream {
            auth,
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            tags: Vec::new(),
            failures: Mutex::new(Vec::new()),
            lie_about_digest: None,
            redirect_blobs_to: None,
            requests: AtomicU32::new(0),
            token_requests: AtomicU32::new(0),
        }
    }
}

fn authorized(upstream: &Upstream, headers: &HeaderMap) -> bool {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    match upstream.auth {
        Auth::None => true,
        // "alice:s3cret"
        Auth::Basic => given == "Basic YWxpY2U6czNjcmV0",
        Auth::Bearer => given == "Bearer token-for-alice",
    }
}

async fn serve(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let headers = request.headers().clone();
    if path == "/token" {
        upstream.token_requests.fetch_add(1, Ordering::SeqCst);
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given != Some("Basic YWxpY2U6czNjcmV0") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        assert!(query.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{query}");
        let body = r#"{"token":"token-for-alice","expires_in":300}"#;
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    upstream.requests.fetch_add(1, Ordering::SeqCst);
    let next_failure = {
        let mut failures = upstream.failures.lock().expect("lock");
        (!failures.is_empty()).then(|| failures.remove(0))
    };
    if let Some((status, retry_after)) = next_failure {
        let mut response = status.into_response();
        if let Some(after) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(after));
        }
        return response;
    }
    if !authorized(&upstream, &headers) {
        let challenge = match upstream.auth {
            Auth::Basic => "Basic realm=\"upstream\"".to_string(),
            _ => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
                format!("Bearer realm=\"http://{host}/token\",service=\"upstream\"")
            }
        };
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    }
    if path == "/v2/team/app/tags/list" {
        let (start, n) = if query.contains("last=") { (2, 10) } else { (0, 2) };
        let page: Vec<&String> = upstream.tags.iter().skip(start).take(n).collect();
        let mut response =
            axum::Json(serde_json::json!({"name": "team/app", "tags": page})).into_response();
        if start == 0 {
            let link = "</v2/team/app/tags/list?n=2&last=b>; rel=\"next\"";
            response.headers_mut().insert(header::LINK, HeaderValue::from_static(link));
        }
        return response;
    }
    if let Some(reference) = path.strip_prefix("/v2/team/app/manifests/") {
        let Some(bytes) = upstream.manifests.get(reference) else {
            return (
                StatusCode::NOT_FOUND,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
                .into_response();
        };
        let digest = upstream
            .lie_about_digest
            .clone()
            .unwrap_or_else(|| Digest::sha256_of(bytes).to_string());
        let headers = [
            (header::CONTENT_TYPE, MANIFEST_TYPE.to_string()),
            (header::HeaderName::from_static("docker-content-digest"), digest),
        ];
        return (headers, bytes.clone()).into_response();
    }
    if let Some(digest) = path.strip_prefix("/v2/team/app/blobs/") {
        if let Some(target) = &upstream.redirect_blobs_to {
            return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target.clone())])
                .into_response();
        }
        return match upstream.blobs.get(digest) {
            Some(bytes) => bytes.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    StatusCode::NOT_FOUND.into_response()
}

/// Starts `upstream` on a loopback port; its `host:port`.
async fn start(upstream: Arc<Upstream>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let app = axum::Router::new().fallback(serve).with_state(upstream);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    address
}

/// A client that may reach `registry` (listed as insecure: plain HTTP on loopback).
fn client_for(registry: &str) -> RegistryClient {
    let mut settings =
        ClientSettings { backoff: Duration::from_millis(1), ..ClientSettings::default() };
    settings
        .registries
        .insert(registry.to_string(), RegistrySettings { mirror: None, insecure: true });
    RegistryClient::new(settings).expect("client")
}

fn manifest_bytes(layer: &Bytes) -> Bytes {
    let digest = Digest::sha256_of(layer);
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},  "layers":[]}}"#,
        layer.len()
    ))
}

/// An upstream holding `team/app:v1` (a manifest with odd spacing, to show it is kept
/// byte for byte) and one blob.
fn with_image(mut upstream: Upstream) -> (Upstream, Bytes, Bytes) {
    let blob = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    let manifest = manifest_bytes(&blob);
    upstream.manifests.insert("v1".into(), manifest.clone());
    upstream.manifests.insert(Digest::sha256_of(&manifest).to_string(), manifest.clone());
    upstream.blobs.insert(Digest::sha256_of(&blob).to_string(), blob.clone());
    (upstream, manifest, blob)
}

fn app() -> RepoName {
    "team/app".parse().expect("name")
}

fn tag(name: &str) -> Reference {
    Reference::Tag(name.parse().expect("tag"))
}

async fn read_all(mut stream: imagehub_client::BlobStream) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn manifests_come_back_byte_for_byte_and_blobs_are_verified() {
    let (upstream, manifest, blob) = with_image(Upstream::new(Auth::None));
    let registry = start(Arc::new(upstream)).await;
    let client = client_for(&registry);
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };

    let fetched = client.manifest(&target, &tag("v1")).await.expect("the manifest");
    assert_eq!(fetched.bytes, manifest, "byte for byte");
    assert_eq!(fetched.digest, Digest::sha256_of(&manifest));
    assert_eq!(fetched.media_type, MANIFEST_TYPE);
    let by_digest = client.manifest(&target, &Reference::Digest(fetched.digest.clone())).await;
    assert_eq!(by_digest.expect("by digest").bytes, manifest);
    let head = client.head_manifest(&target, &tag("v1")).await.expect("head").expect("found");
    assert_eq!(head.digest, Some(fetched.digest));
    assert_eq!(client.head_manifest(&target, &tag("v2")).await.expect("head"), None);
    let missing = client.manifest(&target, &tag("v2")).await.expect_err("no v2");
    assert!(matches!(missing, ClientError::NotFound { .. }), "{missing}");
    assert!(missing.to_string().starts_with("not found upstream"), "{missing}");

    let digest = Digest::sha256_of(&blob);
    let stream = client.blob(&target, &digest, Some(blob.len() as u64)).await.expect("the blob");
    assert_eq!(read_all(stream).await.expect("verified"), blob.to_vec());
    let shorter = client.blob(&target, &digest, Some(blob.len() as u64 - 1)).await.expect("sent");
    assert!(matches!(read_all(shorter).await, Err(ClientError::SizeMismatch { .. })));
    let longer = client.blob(&target, &digest, Some(blob.len() as u64 + 1)).await.expect("sent");
    assert!(matches!(read_all(longer).await, Err(ClientError::SizeMismatch { .. })));
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_refused() {
    let (mut upstream, manifest, blob) = with_image(Upstream::new(Auth::None));
    upstream.lie_about_digest = Some(format!("sha256:{}", "0".repeat(64)));
    let wrong = Digest::sha256_of(b"something else");
    upstream.blobs.insert(wrong.to_string(), blob.clone());
    let registry = start(Arc::new(upstream)).await;
    let client = client_for(&registry);
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };

    let lied = client.manifest(&target, &tag("v1")).await.expect_err("a false digest");
    assert!(matches!(lied, ClientError::DigestMismatch { .. }), "{lied}");
    let asked = Digest::sha256_of(&manifest);
    let fine = client.manifest(&target, &Reference::Digest(asked)).await;
    assert!(fine.is_ok(), "asked by digest, the bytes are checked against that: {fine:?}");
    let stream = client.blob(&target, &wrong, None).await.expect("sent");
    let refused = read_all(stream).await.expect_err("wrong bytes");
    assert!(matches!(refused, ClientError::DigestMismatch { .. }), "{refused}");
}

#[tokio::test]
async fn the_token_flow_with_credentials_caches_the_token() {
    let (upstream, manifest, _) = with_image(Upstream::new(Auth::Bearer));
    let upstream = Arc::new(upstream);
    let registry = start(upstream.clone()).await;
    let client = client_for(&registry);
    let repository = app();
    let alice = Credentials::basic("alice", "s3cret");
    let target = Target { registry: &registry, repository: &repository, credentials: &alice };
    for _ in 0..3 {
        let fetched = client.manifest(&target, &tag("v1")).await.expect("with a token");
        assert_eq!(fetched.bytes, manifest);
    }
    assert_eq!(upstream.token_requests.load(Ordering::SeqCst), 1, "one token, cached");

    let other = client_for(&registry);
    let wrong = Credentials::basic("alice", "wrong");
    let target = Target { registry: &registry, repository: &repository, credentials: &wrong };
    let refused = other.manifest(&target, &tag("v1")).await.expect_err("wrong password");
    assert!(matches!(refused, ClientError::Unauthorized { anonymous: false, .. }), "{refused}");
    assert!(refused.to_string().contains("refused the credentials"), "{refused}");
    let anonymous = Credentials::Anonymous;
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };
    let refused = other.manifest(&target, &tag("v1")).await.expect_err("no credentials");
    assert!(refused.to_string().contains("none were given"), "{refused}");
}

#[tokio::test]
async fn basic_auth_is_answered_when_asked_for() {
    let (upstream, manifest, _) = with_image(Upstream::new(Auth::Basic));
    let registry = start(Arc::new(upstream)).await;
    let client = client_for(&registry);
    let repository = app();
    let alice = Credentials::basic("alice", "s3cret");
    let target = Target { registry: &registry, repository: &repository, credentials: &alice };
    assert_eq!(client.manifest(&target, &tag("v1")).await.expect("basic").bytes, manifest);
    let wrong = Credentials::basic("alice", "nope");
    let target = Target { registry: &registry, repository: &repository, credentials: &wrong };
    let refused = client.manifest(&target, &tag("v1")).await.expect_err("wrong password");
    assert!(matches!(refused, ClientError::Unauthorized { .. }), "{refused}");
}

#[tokio::test]
async fn server_errors_and_short_rate_limits_are_retried() {
    let (upstream, manifest, _) = with_image(Upstream::new(Auth::None));
    *upstream.failures.lock().expect("lock") = vec![
        (StatusCode::SERVICE_UNAVAILABLE, None),
        (StatusCode::BAD_GATEWAY, None),
        (StatusCode::TOO_MANY_REQUESTS, Some("0")),
    ];
    let upstream = Arc::new(upstream);
    let registry = start(upstream.clone()).await;
    let client = client_for(&registry);
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };
    assert_eq!(client.manifest(&target, &tag("v1")).await.expect("in the end").bytes, manifest);
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 4, "three failures, then the answer");

    *upstream.failures.lock().expect("lock") = vec![(StatusCode::SERVICE_UNAVAILABLE, None); 5];
    let failed = client.manifest(&target, &tag("v1")).await.expect_err("tries run out");
    assert!(matches!(failed, ClientError::Upstream { status: 503, .. }), "{failed}");
    assert!(failed.is_transient(), "a job would wait and try again");
}

#[tokio::test]
async fn a_long_retry_after_is_reported_for_the_caller_to_wait() {
    let (upstream, _, _) = with_image(Upstream::new(Auth::None));
    *upstream.failures.lock().expect("lock") = vec![(StatusCode::TOO_MANY_REQUESTS, Some("3600"))];
    let registry = start(Arc::new(upstream)).await;
    let client = client_for(&registry);
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };
    let limited = client.manifest(&target, &tag("v1")).await.expect_err("rate limited");
    let ClientError::RateLimited { retry_at, .. } = &limited else { panic!("{limited}") };
    let wait = retry_at.duration_since(SystemTime::now()).expect("in the future");
    assert!(wait > Duration::from_secs(3000), "{wait:?}");
    assert!(
        limited.to_string().starts_with(&format!("rate limited by {registry}, retry after 20")),
        "{limited}"
    );
    assert!(limited.is_transient());
}

#[tokio::test]
async fn tags_are_listed_across_link_pages() {
    let mut upstream = Upstream::new(Auth::None);
    upstream.tags = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let registry = start(Arc::new(upstream)).await;
    let client = client_for(&registry);
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };
    assert_eq!(client.tags(&target).await.expect("tags"), ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn private_addresses_are_reached_only_when_listed() {
    let (mut upstream, _, blob) = with_image(Upstream::new(Auth::None));
    upstream.redirect_blobs_to = Some("http://169.254.169.254/latest/meta-data/".into());
    let registry = start(Arc::new(upstream)).await;
    let (repository, anonymous) = (app(), Credentials::Anonymous);
    let target = Target { registry: &registry, repository: &repository, credentials: &anonymous };

    let unlisted = RegistryClient::new(ClientSettings::default()).expect("client");
    let refused = unlisted.manifest(&target, &tag("v1")).await.expect_err("a loopback address");
    assert!(matches!(refused, ClientError::Forbidden(_)), "{refused}");
    assert!(refused.to_string().contains("[import.registries]"), "{refused}");

    // Listed, the registry is reached; its redirect to a link-local address is not.
    let client = client_for(&registry);
    client.manifest(&target, &tag("v1")).await.expect("listed");
    let redirected = client.blob(&target, &Digest::sha256_of(&blob), None).await;
    let refused = redirected.err().expect("the redirect is refused");
    assert!(refused.to_string().contains("private or local address"), "{refused}");
}

#[test]
fn references_name_the_registry_the_client_reaches() {
    let reference: RemoteReference = "127.0.0.1:5001/team/app:v1".parse().expect("valid");
    let anonymous = Credentials::Anonymous;
    let target = Target::of(&reference, &anonymous);
    assert_eq!((target.registry, target.repository.as_str()), ("127.0.0.1:5001", "team/app"));
}
