//! The configuration tree: built-in defaults, then a TOML file (`--config`), then
//! `IMAGEHUB_<SECTION>__<KEY>` environment overrides, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything imagehub can be told; every field has a default that works out of the box.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub metadata: MetadataConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub uploads: UploadsConfig,
    pub gc: GcConfig,
    pub index: IndexConfig,
    pub datapacks: DataPacksConfig,
    pub import: ImportConfig,
    pub build: BuildConfig,
}

impl Config {
    /// A copy with its secrets (the bucket's secret key, the build webhook's secret)
    /// replaced by a mark, for printing.
    pub fn redacted(&self) -> Config {
        const HIDDEN: &str = "(hidden)";
        let mut shown = self.clone();
        if let Some(s3) = &mut shown.storage.s3 {
            s3.secret_key = HIDDEN.into();
        }
        shown.metadata.url = without_password(&shown.metadata.url, HIDDEN);
        if !shown.build.webhook_secret.is_empty() {
            shown.build.webhook_secret = HIDDEN.into();
        }
        shown
    }

    /// What the registry below the HTTP edge is told.
    pub fn registry_settings(&self) -> imagehub_core::Settings {
        imagehub_core::Settings {
            index: self.index.settings(),
            uploads: imagehub_core::UploadCaps {
                per_owner: self.uploads.max_sessions_per_user,
                per_repository: self.uploads.max_sessions_per_repository,
            },
            datapacks: imagehub_core::DataPackLimits {
                kept: self.datapacks.max_kept,
                max_age: std::time::Duration::from_secs(self.datapacks.max_age_secs),
            },
        }
    }
}

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (plain HTTP).
    pub listen: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// The URL clients reach this server at (`https://registry.example.com`), used in
    /// token challenges; empty: taken from each request's `Host`.
    pub public_url: String,
    /// Whether `X-Forwarded-Proto` and `X-Forwarded-Host` from a reverse proxy are
    /// believed when `public_url` is empty.
    pub trust_proxy_headers: bool,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Seconds a new connection gets to show its protocol (or finish its TLS
    /// handshake), and each request to send its head; an idle keep-alive connection is
    /// closed after this long too.
    pub header_read_timeout_secs: u64,
    /// Largest request head, in bytes (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Seconds a client may stop reading a response, or stop sending a request body,
    /// before its connection is dropped. Slow transfers that make progress are never cut.
    pub stall_timeout_secs: u64,
    /// Most connections open at once; more wait until one closes (a warning says when).
    /// Lowered at start to fit the open-file limit if that is too small.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            shutdown_timeout_secs: 30,
            public_url: String::new(),
            trust_proxy_headers: false,
            tls_cert: None,
            tls_key: None,
            header_read_timeout_secs: 30,
            max_header_bytes: 64 * 1024,
            stall_timeout_secs: 60,
            max_connections: 4096,
        }
    }
}

/// `[storage]`: where data lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding the SQLite database, blobs and uploads in progress.
    pub data_dir: PathBuf,
    /// Blobs and uploads in an S3-compatible bucket instead of under `data_dir`.
    pub s3: Option<S3Config>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("./data"), s3: None }
    }
}

/// `[metadata]`: the database of repositories, tags, manifests, accounts and jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// `postgres://user:password@host:5432/imagehub` for a database replicas share;
    /// empty: the SQLite file `imagehub.db` in `storage.data_dir`.
    pub url: String,
}

/// `url` with the password of its user part, if any, replaced by `mark`.
fn without_password(url: &str, mark: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{mark}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// `[storage.s3]`: the bucket blobs are kept in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `endpoint/bucket/key` addressing (most self-hosted S3 servers) rather than
    /// `bucket.endpoint/key`.
    #[serde(default)]
    pub path_style: bool,
    /// Answer pulls with a redirect to a presigned URL of the bucket (valid 20 minutes),
    /// so the bytes do not pass through the hub; clients must be able to reach the bucket.
    #[serde(default)]
    pub redirect: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl S3Config {
    /// `s3://BUCKET?endpoint=URL[&region=R][&path_style=true]` with the given keys.
    pub fn from_url(
        text: &str,
        access_key: String,
        secret_key: String,
    ) -> Result<S3Config, String> {
        let url = url::Url::parse(text).map_err(|e| e.to_string())?;
        if url.scheme() != "s3" {
            return Err("give s3://BUCKET?endpoint=URL".into());
        }
        let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or("no bucket after s3://")?;
        let mut config = S3Config {
            endpoint: String::new(),
            bucket: bucket.to_string(),
            region: default_region(),
            access_key,
            secret_key,
            path_style: false,
            redirect: false,
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "endpoint" => config.endpoint = value.into_owned(),
                "region" => config.region = value.into_owned(),
                "path_style" => config.path_style = value == "true",
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; give endpoint, region, path_style"
                    ));
                }
            }
        }
        match config.endpoint.is_empty() {
            true => Err("no endpoint: add ?endpoint=https://…".into()),
            false => Ok(config),
        }
    }

    pub fn settings(&self) -> imagehub_core::S3Settings {
        imagehub_core::S3Settings {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            path_style: self.path_style,
            redirect: self.redirect,
        }
    }
}

/// `[log]`: what the server logs and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human-readable lines) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax, used when `RUST_LOG` is unset (e.g. `info`, `imagehub=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".to_owned() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[index]`: what reading a pushed image for its details (README, labels) may cost.
/// An image past a limit keeps its base info; the README search stops and says why on
/// the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Decompressed bytes read from one layer.
    pub max_layer_bytes: u64,
    /// Decompressed bytes read from all the layers of one image (or index).
    pub max_image_bytes: u64,
    /// Tar entries read from one layer.
    pub max_layer_entries: u64,
    /// Tar entries read from all the layers of one image (or index).
    pub max_image_entries: u64,
    /// Seconds one image's indexing may take.
    pub timeout_secs: u64,
    /// Images indexed at once.
    pub workers: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        let limits = imagehub_core::ExtractLimits::default();
        IndexConfig {
            max_layer_bytes: limits.layer_bytes,
            max_image_bytes: limits.image_bytes,
            max_layer_entries: limits.layer_entries,
            max_image_entries: limits.image_entries,
            timeout_secs: limits.time.as_secs(),
            workers: imagehub_core::IndexSettings::default().workers,
        }
    }
}

impl IndexConfig {
    pub fn settings(&self) -> imagehub_core::IndexSettings {
        let limits = imagehub_core::ExtractLimits {
            layer_bytes: self.max_layer_bytes,
            layer_entries: self.max_layer_entries,
            image_bytes: self.max_image_bytes,
            image_entries: self.max_image_entries,
            time: std::time::Duration::from_secs(self.timeout_secs),
        };
        imagehub_core::IndexSettings { limits, workers: self.workers.max(1) }
    }
}

/// `[auth]`: accounts and token auth.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether accounts and permissions apply. `false` makes an open registry where
    /// anyone may push and pull, as distribution runs by default.
    pub enabled: bool,
    /// Who creates accounts: `admin` (site admins only) or `open` (anyone may sign up).
    pub signup: Signup,
    /// Whether callers without credentials may pull public repositories.
    pub anonymous_pull: bool,
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// The `iss` of tokens.
    pub issuer: String,
    /// Lifetime of registry bearer tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of OAuth2 refresh tokens, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Failed password logins of one user from one client address before growing
    /// delays start there (per address, any user: 4×; per account, any address: 20×).
    pub max_failed_logins: u32,
    /// An htpasswd file with bcrypt entries whose users may log in too.
    pub htpasswd_file: Option<PathBuf>,
    /// A URL that is POSTed `{"username","password"}` for logins imagehub cannot check
    /// itself; a `200 {"user": NAME}` accepts the login as NAME.
    pub webhook_url: String,
    /// The token signing key (P-256, PKCS#8 PEM), created there if missing; replicas
    /// share one so that a token from any of them works on all. Default:
    /// `token-signing-key.pem` in the data directory.
    pub signing_key_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            signup: Signup::Admin,
            anonymous_pull: true,
            service: "imagehub".to_owned(),
            issuer: "imagehub".to_owned(),
            token_ttl_secs: 300,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_failed_logins: 5,
            htpasswd_file: None,
            webhook_url: String::new(),
            signing_key_file: None,
        }
    }
}

/// Who may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signup {
    Admin,
    Open,
}

/// `[uploads]`: upload sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Seconds after which an unfinished upload session is deleted.
    pub expiry_secs: u64,
    /// Upload sessions one user may have open at once (anonymous callers count as one
    /// user); more get 429 with `Retry-After`.
    pub max_sessions_per_user: u32,
    /// Upload sessions open at once in one repository.
    pub max_sessions_per_repository: u32,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        let caps = imagehub_core::Settings::default().uploads;
        UploadsConfig {
            expiry_secs: 24 * 3600,
            max_sessions_per_user: caps.per_owner,
            max_sessions_per_repository: caps.per_repository,
        }
    }
}

/// `[datapacks]`: DataPacks are cached results, kept by last use. Anonymous callers get
/// results without anything being stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPacksConfig {
    /// DataPacks kept at most; creating one more drops the least recently used.
    pub max_kept: u32,
    /// Seconds an unused DataPack is kept.
    pub max_age_secs: u64,
}

impl Default for DataPacksConfig {
    fn default() -> Self {
        let limits = imagehub_core::Settings::default().datapacks;
        DataPacksConfig { max_kept: limits.kept, max_age_secs: limits.max_age.as_secs() }
    }
}

/// `[import]`: copying images from other registries into the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    pub enabled: bool,
    /// Import jobs run at once.
    pub workers: usize,
    /// Blobs one job transfers at once.
    pub transfers: usize,
    /// Tries of a job that meets passing failures (rate limits, an upstream down).
    pub max_attempts: u32,
    /// A 429 asking to wait up to this many seconds is waited out within the job; a
    /// longer one puts the job back in the queue until then.
    pub max_inline_wait_secs: u64,
    /// Registries (`host[:port]`) reached over plain HTTP or unverified TLS, which may
    /// also be at loopback or private addresses: a list, or one comma-separated string
    /// (`IMAGEHUB_IMPORT__INSECURE_REGISTRIES=127.0.0.1:5001,registry.lan`).
    #[serde(deserialize_with = "list_or_commas")]
    pub insecure_registries: Vec<String>,
    /// Per registry, as references name it: `[import.registries."docker.io"]` with
    /// `mirror = "mirror.internal:5000"` and `insecure = true|false`. A listed registry
    /// (and its mirror) may be at a private address.
    pub registries: std::collections::BTreeMap<String, ImportRegistryConfig>,
    /// The key sealing upstream credentials of import jobs (32 bytes, mode 0600),
    /// created there if missing; replicas share one, since any of them may run a job
    /// another queued. Default: `import.key` in the data directory.
    pub sealing_key_file: Option<PathBuf>,
}

/// `[import.registries."HOST"]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportRegistryConfig {
    /// A host (`host[:port]`) asked instead of the registry; empty for none.
    pub mirror: String,
    pub insecure: bool,
}

impl Default for ImportConfig {
    fn default() -> Self {
        let defaults = imagehub_core::ImportSettings::default();
        ImportConfig {
            enabled: defaults.enabled,
            workers: defaults.workers,
            transfers: defaults.transfers,
            max_attempts: defaults.max_attempts,
            max_inline_wait_secs: defaults.client.max_inline_wait.as_secs(),
            insecure_registries: Vec::new(),
            registries: Default::default(),
            sealing_key_file: None,
        }
    }
}

impl ImportConfig {
    pub fn settings(&self) -> imagehub_core::ImportSettings {
        use imagehub_core::RegistrySettings;
        let mut client = imagehub_core::ClientSettings {
            max_inline_wait: std::time::Duration::from_secs(self.max_inline_wait_secs),
            ..imagehub_core::ClientSettings::default()
        };
        for (name, registry) in &self.registries {
            let mirror = Some(registry.mirror.clone()).filter(|m| !m.is_empty());
            client
                .registries
                .insert(name.clone(), RegistrySettings { mirror, insecure: registry.insecure });
        }
        for name in &self.insecure_registries {
            client.registries.entry(name.clone()).or_default().insecure = true;
        }
        imagehub_core::ImportSettings {
            enabled: self.enabled,
            workers: self.workers.max(1),
            transfers: self.transfers.max(1),
            max_attempts: self.max_attempts.max(1),
            client,
        }
    }
}

/// `[build]`: cluster images built on the server from a recipes repository (seed 003).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildConfig {
    /// A checkout of a cluster-image repository (`applications/APP/VERSION/`); empty:
    /// builds are off.
    pub recipes_dir: Option<PathBuf>,
    /// The organization built images are pushed into, as `ORG/APP:VERSION`; it must
    /// exist. Site admins and its developers and owners may start builds.
    pub organization: String,
    /// Platforms built when a request names none.
    #[serde(deserialize_with = "list_or_commas")]
    pub platforms: Vec<String>,
    /// Whether recipes' `init.sh` runs (it is the recipe author's code, run as the
    /// server's user, in a copy of the recipe).
    pub run_init: bool,
    pub init_timeout_secs: u64,
    /// The secret of the GitHub webhook that sends `issue_comment` events to
    /// `/api/v1/builds/commands`; empty: webhooks are refused.
    pub webhook_secret: String,
    /// Whether each platform's image is also tagged `VERSION-ARCH` (`1.23.1-arm64`).
    pub arch_tags: bool,
}

impl Default for BuildConfig {
    fn default() -> Self {
        let defaults = imagehub_core::BuildSettings::default();
        BuildConfig {
            recipes_dir: None,
            organization: defaults.organization,
            platforms: defaults.platforms,
            run_init: defaults.run_init,
            init_timeout_secs: defaults.init_timeout.as_secs(),
            webhook_secret: String::new(),
            arch_tags: defaults.arch_tags,
        }
    }
}

impl BuildConfig {
    pub fn settings(&self, data_dir: &std::path::Path) -> imagehub_core::BuildSettings {
        imagehub_core::BuildSettings {
            recipes_dir: self.recipes_dir.clone().filter(|d| !d.as_os_str().is_empty()),
            organization: self.organization.clone(),
            platforms: self.platforms.clone(),
            run_init: self.run_init,
            init_timeout: std::time::Duration::from_secs(self.init_timeout_secs.max(1)),
            work_dir: data_dir.join("builds"),
            webhook_secret: self.webhook_secret.clone(),
            arch_tags: self.arch_tags,
        }
    }
}

/// A list, or a string of comma-separated items (as an environment variable gives it).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Items::deserialize(d)? {
        Items::List(items) => items,
        Items::Commas(text) => {
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        }
    })
}

/// `[gc]`: garbage collection of what no tag and no index references.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Seconds between background collections; 0 turns background GC off (`imagehub gc`
    /// still works).
    pub interval_secs: u64,
    /// Nothing written more recently than this many seconds is collected.
    pub grace_period_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig { interval_secs: 0, grace_period_secs: 3600 }
    }
}

/// Every knob: its key, the environment variable that overrides it, and what it does.
/// Printed by `imagehub --help`; a unit test keeps it in step with the structs above.
pub const KNOBS: &[(&str, &str)] = &[
    ("server.listen", "address to listen on (default 127.0.0.1:5000)"),
    (
        "server.shutdown_timeout_secs",
        "seconds in-flight requests get to finish on SIGTERM/SIGINT (default 30)",
    ),
    ("storage.data_dir", "directory for the SQLite database, blobs and uploads (default ./data)"),
    (
        "metadata.url",
        "postgres://user:password@host/db for a database several replicas share (default empty: SQLite in data_dir)",
    ),
    (
        "storage.s3",
        "an S3-compatible bucket for blobs and uploads: endpoint, bucket, region, access_key, secret_key, path_style, redirect (default none: under data_dir)",
    ),
    ("log.format", "text or json (default text)"),
    ("log.level", "log filter when RUST_LOG is unset (default info)"),
    ("uploads.expiry_secs", "seconds before an unfinished upload is deleted (default 86400)"),
    (
        "uploads.max_sessions_per_user",
        "upload sessions one user may have open; more get 429 (default 1000)",
    ),
    (
        "uploads.max_sessions_per_repository",
        "upload sessions open at once in one repository (default 500)",
    ),
    ("datapacks.max_kept", "DataPacks kept; more drop the least recently used (default 10000)"),
    ("datapacks.max_age_secs", "seconds an unused DataPack is kept (default 7776000)"),
    ("gc.interval_secs", "seconds between background garbage collections, 0 = off (default 0)"),
    (
        "gc.grace_period_secs",
        "garbage younger than this is kept, protecting pushes in flight (default 3600)",
    ),
    (
        "server.public_url",
        "URL clients reach the server at, for token challenges (default: from each request's Host)",
    ),
    (
        "server.trust_proxy_headers",
        "believe X-Forwarded-Proto/Host from a reverse proxy (default false)",
    ),
    ("server.tls_cert", "PEM certificate chain: serve HTTPS with tls_key (default: plain HTTP)"),
    ("server.tls_key", "PEM private key for tls_cert"),
    (
        "server.header_read_timeout_secs",
        "time for a new connection's first bytes and each request head; idle keep-alive limit (default 30)",
    ),
    ("server.max_header_bytes", "largest request head; larger ones get 431 (default 65536)"),
    (
        "server.stall_timeout_secs",
        "a client that stops reading a response or sending a body this long is dropped (default 60)",
    ),
    (
        "server.max_connections",
        "most connections open at once; fitted to the open-file limit (default 4096)",
    ),
    (
        "index.max_layer_bytes",
        "decompressed bytes read from one layer for details (default 4294967296)",
    ),
    (
        "index.max_image_bytes",
        "decompressed bytes read from one image's layers (default 8589934592)",
    ),
    ("index.max_layer_entries", "tar entries read from one layer (default 1000000)"),
    ("index.max_image_entries", "tar entries read from one image's layers (default 2000000)"),
    ("index.timeout_secs", "seconds one image's indexing may take (default 60)"),
    ("index.workers", "images indexed at once (default 2)"),
    (
        "auth.enabled",
        "accounts and permissions; false = open registry, anyone pushes and pulls (default true)",
    ),
    ("auth.signup", "admin (only site admins create accounts) or open (default admin)"),
    (
        "auth.anonymous_pull",
        "callers without credentials may pull public repositories (default true)",
    ),
    ("auth.service", "service name in challenges and token audience (default imagehub)"),
    ("auth.issuer", "issuer of registry tokens (default imagehub)"),
    ("auth.token_ttl_secs", "lifetime of registry bearer tokens (default 300)"),
    ("auth.refresh_token_ttl_secs", "lifetime of OAuth2 refresh tokens (default 2592000)"),
    (
        "auth.max_failed_logins",
        "failed password logins per user and address before growing delays (per address 4x, per account 20x; default 5)",
    ),
    ("auth.htpasswd_file", "htpasswd file (bcrypt) whose users may log in too (default none)"),
    ("auth.webhook_url", "URL POSTed {username,password} to accept logins (default none)"),
    (
        "auth.signing_key_file",
        "the token signing key (PEM), created if missing; one file for all replicas (default token-signing-key.pem in data_dir)",
    ),
    ("import.enabled", "importing images from other registries (default true)"),
    ("import.workers", "import jobs run at once (default 2)"),
    ("import.transfers", "blobs one import job transfers at once (default 4)"),
    (
        "import.max_attempts",
        "tries of an import that meets rate limits or an upstream down, before it fails (default 8)",
    ),
    (
        "import.max_inline_wait_secs",
        "a 429 asking to wait this long or less is waited out; longer ones requeue the job (default 60)",
    ),
    (
        "import.sealing_key_file",
        "the key sealing import credentials, created if missing; one file for all replicas (default import.key in data_dir)",
    ),
    (
        "import.insecure_registries",
        "registries imported from over plain HTTP or unverified TLS, at private addresses too: host:port,… (default none)",
    ),
    (
        "build.recipes_dir",
        "a checkout of a cluster-image repository (applications/APP/VERSION/) the hub builds from (default none: builds off)",
    ),
    (
        "build.organization",
        "the organization built images are pushed into (default cluster-images)",
    ),
    (
        "build.platforms",
        "platforms built when a request names none (default linux/amd64,linux/arm64)",
    ),
    ("build.run_init", "whether recipes' init.sh runs, in a copy of the recipe (default false)"),
    ("build.init_timeout_secs", "seconds init.sh may run (default 1800)"),
    (
        "build.arch_tags",
        "also tag each platform's image VERSION-ARCH, as the sealos CI does (default false)",
    ),
    (
        "build.webhook_secret",
        "the secret GitHub issue_comment webhooks to /api/v1/builds/commands are signed with (default none: refused)",
    ),
];

/// The environment variable that overrides `key` (`server.listen` → `IMAGEHUB_SERVER__LISTEN`).
pub fn env_var_for(key: &str) -> String {
    format!("IMAGEHUB_{}", key.replace('.', "__").to_uppercase())
}

impl Config {
    /// Loads defaults, then `file` if given, then `IMAGEHUB_<SECTION>__<KEY>` variables,
    /// and validates the result, reporting every problem at once.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.exists(), "config file {} does not exist", file.display());
            figment = figment.merge(Toml::file(file));
        }
        // Only SECTION__KEY variables are configuration; others such as
        // IMAGEHUB_ADMIN_PASSWORD are read where they are used.
        let env = Env::prefixed("IMAGEHUB_").filter(|key| key.as_str().contains("__")).split("__");
        let config: Config = figment.merge(env).extract().map_err(|errors| {
            let all: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration:\n  {}", all.join("\n  "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            problems.push("server.tls_cert and server.tls_key must be set together".to_owned());
        }
        let url = &self.server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(format!(
                "server.public_url {:?} must start with http:// or https://",
                self.server.public_url
            ));
        }
        if self.server.public_url.contains('"') {
            problems.push("server.public_url must not contain quotes".to_owned());
        }
        if self.auth.token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            problems.push(
                "auth.token_ttl_secs and auth.refresh_token_ttl_secs must be positive".to_owned(),
            );
        }
        if !self.auth.webhook_url.is_empty() && !self.auth.webhook_url.starts_with("http") {
            problems.push(format!(
                "auth.webhook_url {:?} must be an http:// or https:// URL",
                self.auth.webhook_url
            ));
        }
        if self.server.header_read_timeout_secs == 0
            || self.server.stall_timeout_secs == 0
            || self.server.max_connections == 0
        {
            problems.push("server.header_read_timeout_secs, server.stall_timeout_secs and server.max_connections must be positive".to_owned());
        }
        if self.server.max_header_bytes < 4096 {
            problems.push(format!(
                "server.max_header_bytes {} is below 4096: registry clients send large tokens",
                self.server.max_header_bytes
            ));
        }
        if self.uploads.max_sessions_per_user == 0
            || self.uploads.max_sessions_per_repository == 0
            || self.datapacks.max_kept == 0
        {
            problems.push("uploads.max_sessions_per_user, uploads.max_sessions_per_repository and datapacks.max_kept must be positive".to_owned());
        }
        if self.index.timeout_secs == 0 || self.index.workers == 0 {
            problems.push("index.timeout_secs and index.workers must be positive".to_owned());
        }
        for name in self.import.registries.keys().chain(&self.import.insecure_registries) {
            if name.is_empty() || name.contains(['/', ' ']) {
                problems
                    .push(format!("import: {name:?} is not a registry host (host or host:port)"));
            }
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            problems.push("storage.data_dir is empty".to_owned());
        }
        let url = &self.metadata.url;
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            problems.push(format!(
                "metadata.url {:?} is not a postgres:// URL (leave it empty for SQLite)",
                without_password(url, "(hidden)")
            ));
        }
        anyhow::ensure!(problems.is_empty(), "invalid configuration:\n  {}", problems.join("\n  "));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaf_keys(v, &key, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn knobs_list_every_field() {
        let value = serde_json::to_value(Config::default()).expect("config serialises");
        let mut keys = Vec::new();
        leaf_keys(&value, "", &mut keys);
        let mut knobs: Vec<String> = KNOBS.iter().map(|(k, _)| (*k).to_owned()).collect();
        keys.sort();
        knobs.sort();
        assert_eq!(keys, knobs);
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_for("server.listen"), "IMAGEHUB_SERVER__LISTEN");
        assert_eq!(env_var_for("storage.data_dir"), "IMAGEHUB_STORAGE__DATA_DIR");
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
    fn file_and_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "imagehub.toml",
                "[server]\nlisten = \"127.0.0.1:6000\"\n[log]\nformat = \"json\"\n",
            )?;
            jail.set_env("IMAGEHUB_STORAGE__DATA_DIR", "/srv/imagehub");
            jail.set_env("IMAGEHUB_ADMIN_PASSWORD", "not-a-config-key");
            let config = Config::load(Some(Path::new("imagehub.toml"))).expect("loads");
            assert_eq!(config.server.listen.port(), 6000);
            assert_eq!(config.log.format, LogFormat::Json);
            assert_eq!(config.storage.data_dir, PathBuf::from("/srv/imagehub"));
            Ok(())
        });
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nlisten_on = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
    }
}
