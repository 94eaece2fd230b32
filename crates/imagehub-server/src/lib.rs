//! The HTTP edge of imagehub: the `/v2` OCI Distribution API, health endpoints, the
//! listener (with plain-HTTP/TLS detection), graceful shutdown, config and logging.
//!
//! Only this crate knows HTTP status codes. Nothing depends on it but the binary and
//! the test kit.

pub mod config;
mod error;
mod listener;
mod maintenance;
mod metrics;
pub mod logging;
mod v2;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use imagehub_core::Registry;
use tokio::net::TcpListener;

use config::Config;
use error::InternalErrorChain;

/// A bound, ready server: storage is open and the port is taken.
pub struct Server {
    listener: TcpListener,
    registry: Registry,
    config: Config,
}

impl Server {
    /// Opens storage under `config.storage.data_dir` and binds `config.server.listen`.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let registry = open_registry(&config).await?;
        registry.clean_stale_uploads().await.context("cleaning up after an earlier run")?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        Ok(Server { listener, registry, config })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to
    /// `server.shutdown_timeout_secs`) and closes storage.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = app(self.registry.clone());
        tracing::info!(
            server.addr = %self.local_addr(),
            storage.data_dir = %self.config.storage.data_dir.display(),
            "imagehub is listening"
        );
        let timeout = Duration::from_secs(self.config.server.shutdown_timeout_secs);
        let housekeeping = tokio::spawn(maintenance::run(self.registry.clone(), self.config.clone()));
        listener::serve(self.listener, app, shutdown, timeout).await;
        housekeeping.abort();
        self.registry.close().await;
        tracing::info!("imagehub stopped");
        Ok(())
    }
}

pub use imagehub_core::{GcOptions, GcReport};

/// Runs one garbage collection over the storage `config` names (`imagehub gc`); safe
/// while a server runs on the same data directory.
pub async fn collect_garbage(config: &Config, options: GcOptions) -> anyhow::Result<GcReport> {
    let registry = open_registry(config).await?;
    let report = registry.collect_garbage(options).await;
    registry.close().await;
    Ok(report?)
}

async fn open_registry(config: &Config) -> anyhow::Result<Registry> {
    Registry::open(&config.storage.data_dir)
        .await
        .with_context(|| format!("opening storage under {}", config.storage.data_dir.display()))
}

/// The whole application router.
pub fn app(registry: Registry) -> Router {
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(registry.clone());
    let metrics = metrics::Metrics::new();
    let metrics_route = Router::new()
        .route("/metrics", get(metrics::serve_metrics))
        .with_state((metrics.clone(), registry.clone()));
    Router::new()
        .merge(v2::router(registry))
        .merge(health)
        .merge(metrics_route)
        .layer(middleware::from_fn_with_state(metrics, metrics::record))
        .layer(middleware::from_fn(log_request))
}

/// `GET /readyz`: the database answers.
async fn readyz(State(registry): State<Registry>) -> Response {
    match registry.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()
        }
    }
}

/// One log line per request: method, path, status, duration. Never headers or bodies,
/// so credentials cannot leak; 5xx causes are logged from the error chain.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(InternalErrorChain(chain)) = response.extensions().get::<InternalErrorChain>() {
        tracing::error!(http.method = %method, http.path = %path, http.status = status, duration_ms, error = %chain, "request failed");
    } else {
        tracing::info!(http.method = %method, http.path = %path, http.status = status, duration_ms, "request");
    }
    response
}
