//! The HTTP edge of imagehub: the `/v2` OCI Distribution API, the token endpoint and
//! the `/api/v1` management API, health endpoints, the listener (HTTPS, or plain HTTP
//! with TLS detection), graceful shutdown, config and logging.
//!
//! Only this crate knows HTTP status codes. Nothing depends on it but the binary and
//! the test kit.

mod api;
mod auth;
pub mod config;
mod error;
mod listener;
pub mod logging;
mod maintenance;
mod metrics;
mod v2;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use imagehub_core::{AccountSettings, Registry};
use tokio::net::TcpListener;

use auth::{Auth, AuthState};
use config::{Config, Signup};
use error::InternalErrorChain;

/// The signing key of registry tokens, under the data directory.
const SIGNING_KEY_FILE: &str = "token-signing-key.pem";

/// A bound, ready server: storage is open and the port is taken.
pub struct Server {
    listener: TcpListener,
    registry: Registry,
    auth: AuthState,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Config,
}

impl Server {
    /// Opens storage under `config.storage.data_dir` and binds `config.server.listen`.
    /// On a database without users, the site admin `admin` is created with the password
    /// in `IMAGEHUB_ADMIN_PASSWORD`, or a generated one that is logged once.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        Server::bind_with_admin_password(
            config,
            std::env::var("IMAGEHUB_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()),
        )
        .await
    }

    /// `bind`, with the first admin's password given rather than read from the environment.
    pub async fn bind_with_admin_password(
        config: Config,
        admin_password: Option<String>,
    ) -> anyhow::Result<Server> {
        let registry = open_registry(&config).await?;
        registry.clean_stale_uploads().await.context("cleaning up after an earlier run")?;
        let auth = match config.auth.enabled {
            true => Some(Arc::new(open_accounts(&config, &registry, admin_password).await?)),
            false => None,
        };
        let tls = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => Some(listener::load_tls(cert, key)?),
            _ => None,
        };
        registry.configure(config.registry_settings());
        registry.configure_imports(config.import.settings());
        registry.configure_builds(config.build.settings(&config.storage.data_dir));
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        Ok(Server { listener, registry, auth, tls, config })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to
    /// `server.shutdown_timeout_secs`) and closes storage.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = app(self.registry.clone(), self.auth.clone());
        tracing::info!(
            server.addr = %self.local_addr(),
            storage.data_dir = %self.config.storage.data_dir.display(),
            "imagehub is listening"
        );
        let timeout = Duration::from_secs(self.config.server.shutdown_timeout_secs);
        let housekeeping =
            tokio::spawn(maintenance::run(self.registry.clone(), self.config.clone()));
        let indexer = tokio::spawn(maintenance::index_images(self.registry.clone()));
        let importer = {
            let registry = self.registry.clone();
            tokio::spawn(async move { registry.run_imports().await })
        };
        let builder = {
            let registry = self.registry.clone();
            tokio::spawn(async move { registry.run_builds().await })
        };
        let follower = {
            let registry = self.registry.clone();
            let accounts = self.auth.as_ref().map(|auth| auth.accounts.clone());
            tokio::spawn(async move { registry.follow_other_replicas(accounts).await })
        };
        let server = &self.config.server;
        let limits = listener::ConnectionLimits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_header_bytes: server.max_header_bytes,
            stall_timeout: Duration::from_secs(server.stall_timeout_secs),
            max_connections: listener::fit_to_file_limit(server.max_connections),
        };
        // Extraction runs on blocking threads, which the runtime waits for at exit, and
        // an in-flight `/api/v1/admin/index` waits for it: stop it at its next read as
        // soon as shutdown starts, rather than at the end of a hostile layer.
        let registry = self.registry.clone();
        let shutdown = async move {
            shutdown.await;
            registry.stop_indexing();
        };
        listener::serve(self.listener, app, shutdown, timeout, self.tls.clone(), limits).await;
        housekeeping.abort();
        indexer.abort();
        importer.abort();
        builder.abort();
        follower.abort();
        self.registry.close().await;
        tracing::info!("imagehub stopped");
        Ok(())
    }
}

pub use imagehub_core::{GC_LOCK, GcOptions, GcReport};

/// Runs one garbage collection over the storage `config` names (`imagehub gc`); safe
/// while a server runs on the same data directory.
pub async fn collect_garbage(config: &Config, options: GcOptions) -> anyhow::Result<GcReport> {
    let registry = open_registry(config).await?;
    let report = registry.collect_garbage(options).await;
    registry.close().await;
    Ok(report?)
}

async fn open_registry(config: &Config) -> anyhow::Result<Registry> {
    let s3 = config.storage.s3.as_ref().map(|s3| s3.settings());
    let data_dir = config.storage.data_dir.display();
    let mut what = match &s3 {
        Some(s3) => format!(
            "opening storage under {data_dir} and the bucket {} at {}",
            s3.bucket, s3.endpoint
        ),
        None => format!("opening storage under {data_dir}"),
    };
    let postgres = Some(config.metadata.url.as_str()).filter(|url| !url.is_empty());
    if postgres.is_some() {
        what += &format!(" and the database {}", config.redacted().metadata.url);
    }
    let placement = imagehub_core::Placement {
        s3: s3.as_ref(),
        postgres,
        import_key_file: config.import.sealing_key_file.as_deref(),
    };
    Registry::open_with(&config.storage.data_dir, &placement).await.context(what)
}

/// Copies the blobs of the hub `config` describes, kept under its data directory, into
/// the bucket `to`, each verified against its digest.
pub async fn migrate_blobs(
    config: &Config,
    to: &config::S3Config,
    progress: &(dyn Fn(&imagehub_oci::Digest, u64) + Sync),
) -> anyhow::Result<imagehub_core::CopyReport> {
    anyhow::ensure!(
        config.storage.s3.is_none(),
        "this hub keeps its blobs in a bucket already ([storage.s3])"
    );
    let data_dir = &config.storage.data_dir;
    anyhow::ensure!(data_dir.join("blobs").is_dir(), "{} holds no blobs", data_dir.display());
    imagehub_core::copy_blobs_to_bucket(data_dir, &to.settings(), progress)
        .await
        .with_context(|| format!("copying the blobs under {} into the bucket", data_dir.display()))
}

/// Copies the metadata of the hub `config` describes, kept in SQLite under its data
/// directory, into the empty PostgreSQL database `url`.
pub async fn migrate_metadata(
    config: &Config,
    url: &str,
) -> anyhow::Result<imagehub_core::MetadataCopy> {
    anyhow::ensure!(
        config.metadata.url.is_empty(),
        "this hub keeps its metadata in PostgreSQL already (metadata.url)"
    );
    let data_dir = &config.storage.data_dir;
    let database = data_dir.join("imagehub.db");
    anyhow::ensure!(database.is_file(), "{} holds no database (imagehub.db)", data_dir.display());
    // The error's own message is the whole story; its source chain would repeat it.
    imagehub_core::copy_metadata_to_postgres(data_dir, url)
        .await
        .map_err(|e| anyhow::anyhow!("copying {} into PostgreSQL: {e}", database.display()))
}

/// Accounts, the first admin, and the token signing key (created on first start).
async fn open_accounts(
    config: &Config,
    registry: &Registry,
    admin_password: Option<String>,
) -> anyhow::Result<Auth> {
    let settings = AccountSettings {
        anonymous_pull: config.auth.anonymous_pull,
        open_signup: config.auth.signup == Signup::Open,
        free_login_failures: config.auth.max_failed_logins,
        htpasswd_file: config.auth.htpasswd_file.clone(),
        webhook_url: Some(config.auth.webhook_url.clone()).filter(|u| !u.is_empty()),
    };
    let accounts = registry.accounts(settings).context("setting up accounts")?;
    if let Some(generated) =
        accounts.bootstrap_admin(admin_password).await.context("creating the site admin")?
    {
        // Shown once, on purpose: nobody could log in otherwise.
        tracing::warn!(
            "created the site admin \"admin\" with the generated password {generated} (shown only this once; set IMAGEHUB_ADMIN_PASSWORD on first start to choose it)"
        );
    }
    let key_path = match &config.auth.signing_key_file {
        Some(file) => file.clone(),
        None => config.storage.data_dir.join(SIGNING_KEY_FILE),
    };
    let key = imagehub_auth::SigningKey::load_or_create(&key_path)?;
    Ok(Auth::new(accounts, key, config.auth.clone(), &config.server))
}

/// The whole application router.
pub fn app(registry: Registry, auth: AuthState) -> Router {
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(registry.clone());
    let metrics = metrics::Metrics::new();
    let metrics_route = Router::new()
        .route("/metrics", get(metrics::serve_metrics))
        .with_state((metrics.clone(), registry.clone()));
    let mut router = Router::new().merge(v2::router(registry.clone(), auth.clone()));
    if let Some(auth) = &auth {
        let token = Router::new()
            .route("/token", get(auth::token::get_token).post(auth::token::post_token))
            .route("/.well-known/jwks.json", get(auth::token::jwks))
            .with_state(auth.clone());
        router = router.merge(token);
    }
    let accounts = match &auth {
        Some(auth) => auth.accounts.clone(),
        None => registry
            .accounts(AccountSettings::open_registry())
            .expect("accounts without htpasswd or webhook cannot fail to set up"),
    };
    let web_state = api::ApiState {
        auth: auth.clone(),
        accounts: accounts.clone(),
        registry: registry.clone(),
    };
    router = router.merge(api::router(auth, accounts, registry.clone()));
    router = router.merge(web::router(web_state));
    router
        .merge(health)
        .merge(metrics_route)
        .layer(middleware::from_fn_with_state(metrics, metrics::record))
        .layer(middleware::from_fn(log_request))
}

/// `GET /readyz`: the database and the blob store (the bucket, with `storage.s3`) answer.
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
