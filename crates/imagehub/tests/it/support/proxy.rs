//! A proxy in front of an upstream registry that counts what is asked of it and
//! misbehaves on cue: answers the first manifest GETs with 429, or holds one path until
//! released (saying when a request reached it), so that imports can be interrupted at a
//! known point without any timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, Semaphore};

pub struct Proxy {
    pub host: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    /// `METHOD path` → requests seen.
    counts: Mutex<HashMap<String, u32>>,
    /// Manifest GETs still to answer with 429 and `Retry-After: 1`.
    throttle: Mutex<u32>,
    /// `RateLimit-Remaining` to add to manifest answers, as Docker Hub does.
    remaining: Mutex<Option<u32>>,
    /// Upload chunks (PATCH) still to swallow with a 502, as a failing gateway does.
    failing_patches: Mutex<u32>,
    /// A path whose requests wait for the gate, and the gate.
    hold: Mutex<Option<String>>,
    gate: Arc<Semaphore>,
    reached: Notify,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on a loopback port.
    pub async fn start(upstream: &str) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            counts: Mutex::default(),
            throttle: Mutex::new(0),
            remaining: Mutex::new(None),
            failing_patches: Mutex::new(0),
            hold: Mutex::new(None),
            gate: Arc::new(Semaphore::new(0)),
            reached: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("address").to_string();
        let app = axum::Router::new().fallback(forward).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("proxy") });
        Proxy { host, state }
    }

    /// Requests seen for `METHOD path`.
    pub fn count(&self, method: &str, path: &str) -> u32 {
        let counts = self.state.counts.lock().expect("lock");
        counts.get(&format!("{method} {path}")).copied().unwrap_or(0)
    }

    /// Requests seen for `METHOD` on paths starting with `prefix`.
    pub fn count_prefix(&self, method: &str, prefix: &str) -> u32 {
        let counts = self.state.counts.lock().expect("lock");
        let key = format!("{method} {prefix}");
        counts.iter().filter(|(k, _)| k.starts_with(&key)).map(|(_, n)| n).sum()
    }

    /// Answers the next `n` manifest GETs with 429.
    pub fn throttle_manifests(&self, n: u32) {
        *self.state.throttle.lock().expect("lock") = n;
    }

    /// Swallows the next `n` upload chunks (PATCH) with a 502: they never reach the
    /// registry.
    pub fn fail_patches(&self, n: u32) {
        *self.state.failing_patches.lock().expect("lock") = n;
    }

    /// Adds `RateLimit-Remaining: n;w=21600` to manifest answers.
    pub fn rate_limit_remaining(&self, n: u32) {
        *self.state.remaining.lock().expect("lock") = Some(n);
    }

    /// Holds requests for `path` until [`Proxy::release`].
    pub fn hold(&self, path: &str) {
        *self.state.hold.lock().expect("lock") = Some(path.to_string());
    }

    /// Waits until a request for the held path arrived.
    pub async fn reached(&self) {
        self.state.reached.notified().await;
    }

    /// Lets held requests (and later ones) through.
    pub fn release(&self) {
        *self.state.hold.lock().expect("lock") = None;
        self.state.gate.add_permits(1 << 20);
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let target = match request.uri().query() {
        Some(query) => format!("{}{path}?{query}", state.upstream),
        None => format!("{}{path}", state.upstream),
    };
    *state.counts.lock().expect("lock").entry(format!("{method} {path}")).or_default() += 1;
    if method == "GET" && path.contains("/manifests/") {
        let mut throttle = state.throttle.lock().expect("lock");
        if *throttle > 0 {
            *throttle -= 1;
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
    }
    if method == "PATCH" {
        let mut failing = state.failing_patches.lock().expect("lock");
        if *failing > 0 {
            *failing -= 1;
            return StatusCode::BAD_GATEWAY.into_response();
        }
    }
    let held = state.hold.lock().expect("lock").as_deref() == Some(path.as_str());
    if held {
        state.reached.notify_one();
        let _permit = state.gate.acquire().await.expect("the gate");
    }
    let mut upstream = state.client.request(method, target);
    for name in [header::ACCEPT, header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = request.headers().get(&name) {
            upstream = upstream.header(name, value.clone());
        }
    }
    let body = axum::body::to_bytes(request.into_body(), 64 << 20).await.expect("a body");
    let answer = match upstream.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            response = response.header(name, value);
        }
    }
    let remaining = *state.remaining.lock().expect("lock");
    if let Some(n) = remaining.filter(|_| path.contains("/manifests/")) {
        response = response.header("ratelimit-remaining", format!("{n};w=21600"));
    }
    response.body(Body::from_stream(answer.bytes_stream())).expect("a response")
}
