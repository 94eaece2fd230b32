//! Prometheus metrics at `/metrics`: requests by route and status, latency histograms,
//! bytes in and out, uploads in progress and storage used.
//!
//! Metrics live in a registry per server (not a process global), so several servers in
//! one test process keep separate counts.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use imagehub_core::Registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::v2::route::V2Route;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: prometheus_client::registry::Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    bytes_in: Family<RouteLabels, Counter>,
    bytes_out: Family<RouteLabels, Counter>,
    uploads_in_progress: Gauge,
    storage_bytes: Gauge,
    blobs: Gauge,
    repositories: Gauge,
    /// Kept by the core (`Registry::notices_heard`), copied here at each scrape.
    notices_heard: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = prometheus_client::registry::Registry::with_prefix("imagehub");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let bytes_in = Family::<RouteLabels, Counter>::default();
        let bytes_out = Family::<RouteLabels, Counter>::default();
        let (uploads_in_progress, storage_bytes, blobs, repositories) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            durations.clone(),
        );
        registry.register("http_request_bytes", "Request body bytes received", bytes_in.clone());
        registry.register("http_response_bytes", "Response body bytes sent", bytes_out.clone());
        registry.register(
            "uploads_in_progress",
            "Blob upload sessions open",
            uploads_in_progress.clone(),
        );
        registry.register("storage_blob_bytes", "Bytes of blobs stored", storage_bytes.clone());
        registry.register("storage_blobs", "Blobs stored", blobs.clone());
        registry.register("repositories", "Repositories", repositories.clone());
        let notices_heard = Counter::default();
        registry.register(
            "replica_notices_heard",
            "Notices heard from the processes sharing the PostgreSQL database",
            notices_heard.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                durations,
                bytes_in,
                bytes_out,
                uploads_in_progress,
                storage_bytes,
                blobs,
                repositories,
                notices_heard,
            }),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The route label: the endpoint kind, never the raw path (which would be unbounded).
fn route_label(path: &str) -> &'static str {
    match path {
        "/v2" | "/v2/" => "v2_base",
        "/v2/_catalog" => "catalog",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        _ => match path.strip_prefix("/v2/").and_then(V2Route::parse) {
            Some(V2Route::Tags { .. }) => "tags",
            Some(V2Route::Manifest { .. }) => "manifest",
            Some(V2Route::Referrers { .. }) => "referrers",
            Some(V2Route::UploadStart { .. }) | Some(V2Route::Upload { .. }) => "upload",
            Some(V2Route::Blob { .. }) => "blob",
            None => "other",
        },
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Middleware: counts and times every request, and the body bytes each way.
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let labels = RouteLabels {
        route: route_label(request.uri().path()),
        method: method_label(request.method()),
    };
    let started = Instant::now();
    let counter = metrics.inner.bytes_in.get_or_create(&labels).clone();
    let request = request.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counter.inc_by(data.len() as u64);
            }
            frame
        }))
    });
    let response = next.run(request).await;
    let inner = &metrics.inner;
    let status = response.status().as_u16();
    inner
        .requests
        .get_or_create(&RequestLabels { route: labels.route, method: labels.method, status })
        .inc();
    inner.durations.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    let sent = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(sent) = sent.filter(|_| labels.method != "HEAD") {
        inner.bytes_out.get_or_create(&labels).inc_by(sent);
    }
    response
}

/// `GET /metrics` in the Prometheus text format.
pub async fn serve_metrics(State((metrics, registry)): State<(Metrics, Registry)>) -> Response {
    match registry.usage().await {
        Ok(usage) => {
            let inner = &metrics.inner;
            inner.uploads_in_progress.set(usage.uploads_in_progress as i64);
            inner.storage_bytes.set(usage.blob_bytes as i64);
            inner.blobs.set(usage.blobs as i64);
            inner.repositories.set(usage.repositories as i64);
        }
        Err(e) => tracing::warn!(error = %e, "reading storage totals for metrics failed"),
    }
    // A store, not an increment, so scrapes at once cannot count twice.
    let heard = &metrics.inner.notices_heard;
    heard.inner().store(registry.notices_heard(), std::sync::atomic::Ordering::Relaxed);
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.inner.registry) {
        tracing::error!(error = %e, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}
