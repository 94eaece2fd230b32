//! Test-only: starts the real imagehub server (the production router and storage) on
//! `127.0.0.1:0` over a temporary data directory, and stops it gracefully on drop.
//!
//! The server runs on its own thread and Tokio runtime, so tests may be synchronous
//! (driving real clients with `std::process::Command`) or async, as they like.

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;

use imagehub_server::config::{Config, S3Config};
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down and removes its data.
pub struct TestServer {
    addr: SocketAddr,
    /// The metadata database: a `postgres://` URL, or empty for SQLite in `data_dir`.
    metadata_url: String,
    /// The bucket blobs are kept in; `None` for the filesystem under `data_dir`.
    s3: Option<S3Config>,
    data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The password of the site admin `admin` on test servers with accounts on.
pub const ADMIN_PASSWORD: &str = "admin-Secret-1";

impl TestServer {
    /// Starts an open registry (`auth.enabled = false`, as the registry-core tests want)
    /// with an otherwise default configuration and a fresh data directory.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts a server after `configure` has adjusted the test configuration (accounts
    /// off unless `configure` turns them on; the site admin's password is then
    /// [`ADMIN_PASSWORD`]).
    pub fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        TestServer::start_in(data_dir, configure)
    }

    /// Starts a server over an existing data directory, e.g. to test a restart.
    pub fn start_in(
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().expect("valid address");
        config.storage.data_dir = data_dir.path().to_path_buf();
        config.auth.enabled = false;
        // Before `configure`, which may clear them to test SQLite or the filesystem in the
        // scale-out pass.
        config.metadata.url = backend::metadata_url(data_dir.path()).unwrap_or_default();
        config.storage.s3 = backend::s3_config(data_dir.path());
        configure(&mut config);

        let metadata_url = config.metadata.url.clone();
        let s3 = config.storage.s3.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build test runtime");
            runtime.block_on(async move {
                let server = match imagehub_server::Server::bind_with_admin_password(
                    config,
                    Some(ADMIN_PASSWORD.to_owned()),
                )
                .await
                {
                    Ok(server) => server,
                    Err(e) => {
                        addr_tx.send(Err(format!("{e:#}"))).expect("test waits for the address");
                        return;
                    }
                };
                addr_tx.send(Ok(server.local_addr())).expect("test waits for the address");
                server
                    .run(async move {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .expect("test server ran");
            });
        });
        let addr = match addr_rx.recv().expect("server thread reports its address") {
            Ok(addr) => addr,
            Err(e) => panic!("test server failed to start: {e}"),
        };
        TestServer {
            addr,
            metadata_url,
            s3,
            data_dir,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, the form real clients take as a registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A URL sqlx's `Any` driver opens the server's metadata database with, for tests
    /// that must change what no API changes (a token's expiry in the past).
    pub fn database_url(&self) -> String {
        match self.metadata_url.as_str() {
            "" => format!("sqlite:{}", self.data_dir.path().join("imagehub.db").display()),
            url => url.to_string(),
        }
    }

    /// The bucket the server keeps its blobs in, if not the filesystem.
    pub fn s3(&self) -> Option<&S3Config> {
        self.s3.as_ref()
    }

    /// Stops the server gracefully and hands back its data directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown_and_join();
        let placeholder = tempfile::tempdir().expect("create placeholder dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    fn shutdown_and_join(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_and_join();
        // After `stop` this is the placeholder, and the backends live on for a restart.
        backend::remove(self.data_dir.path());
    }
}

/// The backends the suite runs against, from the environment the test command sets:
/// `IMAGEHUB_TEST_POSTGRES` (a server URL such as `postgres://imagehub@127.0.0.1:5433`)
/// puts every test server's metadata in a database of its own on that server, and
/// `IMAGEHUB_TEST_S3` (the endpoint of an `s3s-fs` server) with `IMAGEHUB_TEST_S3_ROOT`
/// (the directory it serves) puts its blobs in a bucket of its own there. Unset, servers
/// use SQLite and the filesystem in their data directory, as a user's default install does.
pub mod backend {
    use std::path::Path;
    use std::process::Command;

    use imagehub_server::config::S3Config;

    /// The variable naming the PostgreSQL server tests create their databases on.
    pub const POSTGRES: &str = "IMAGEHUB_TEST_POSTGRES";
    /// The variable naming the S3 server (s3s-fs) tests create their buckets on.
    pub const S3: &str = "IMAGEHUB_TEST_S3";
    /// The directory that S3 server serves: s3s-fs keeps each bucket as a directory of it,
    /// so a test makes its bucket with `mkdir` (S3's CreateBucket needs a signed request
    /// no library here sends).
    pub const S3_ROOT: &str = "IMAGEHUB_TEST_S3_ROOT";
    /// The credentials the test command starts the S3 server with.
    pub const S3_ACCESS_KEY: &str = "imagehub-test";
    pub const S3_SECRET_KEY: &str = "imagehub-test-secret";
    /// Where a data directory records its database and bucket, so a restart finds them.
    const DATABASE_FILE: &str = "test-database";
    const BUCKET_FILE: &str = "test-bucket";

    /// The metadata URL for a server over `data_dir`: its database, created the first
    /// time; `None` for SQLite.
    pub fn metadata_url(data_dir: &Path) -> Option<String> {
        let server = var(POSTGRES)?;
        let name = recorded_or(data_dir, DATABASE_FILE, |name| {
            psql(&server, &format!("CREATE DATABASE {name}"));
        });
        Some(format!("{}/{name}", server.trim_end_matches('/')))
    }

    /// The `[storage.s3]` table for a server over `data_dir`: its bucket, created the
    /// first time; `None` for the filesystem.
    pub fn s3_config(data_dir: &Path) -> Option<S3Config> {
        let endpoint = var(S3)?;
        let root = var(S3_ROOT).unwrap_or_else(|| panic!("{S3} is set, {S3_ROOT} is not"));
        let bucket = recorded_or(data_dir, BUCKET_FILE, |name| {
            std::fs::create_dir(Path::new(&root).join(name)).expect("create the test bucket");
        });
        Some(S3Config {
            endpoint,
            bucket,
            region: "us-east-1".into(),
            access_key: S3_ACCESS_KEY.into(),
            secret_key: S3_SECRET_KEY.into(),
            path_style: true,
            redirect: false,
        })
    }

    /// The environment that points an `imagehub` process over `data_dir` at the same
    /// backends as a test server over it (`IMAGEHUB_METADATA__URL`, `IMAGEHUB_STORAGE__S3__…`).
    pub fn env(data_dir: &Path) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(url) = metadata_url(data_dir) {
            env.push(("IMAGEHUB_METADATA__URL", url));
        }
        if let Some(s3) = s3_config(data_dir) {
            env.extend([
                ("IMAGEHUB_STORAGE__S3__ENDPOINT", s3.endpoint),
                ("IMAGEHUB_STORAGE__S3__BUCKET", s3.bucket),
                ("IMAGEHUB_STORAGE__S3__ACCESS_KEY", s3.access_key),
                ("IMAGEHUB_STORAGE__S3__SECRET_KEY", s3.secret_key),
                ("IMAGEHUB_STORAGE__S3__PATH_STYLE", "true".into()),
            ]);
        }
        env
    }

    /// Drops the database and removes the bucket of `data_dir`, if it has them.
    pub fn remove(data_dir: &Path) {
        let recorded = |file| std::fs::read_to_string(data_dir.join(file)).ok();
        if let (Some(server), Some(name)) = (var(POSTGRES), recorded(DATABASE_FILE)) {
            psql(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        if let (Some(root), Some(bucket)) = (var(S3_ROOT), recorded(BUCKET_FILE)) {
            let _ = std::fs::remove_dir_all(Path::new(&root).join(bucket));
        }
    }

    fn var(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|s| !s.is_empty())
    }

    /// The name recorded in `data_dir/file`, or a new one, made with `create` and recorded.
    fn recorded_or(data_dir: &Path, file: &str, create: impl FnOnce(&str)) -> String {
        let file = data_dir.join(file);
        if let Ok(name) = std::fs::read_to_string(&file) {
            return name;
        }
        let name = unique_name();
        create(&name);
        std::fs::write(&file, &name).expect("record the test backend's name");
        name
    }

    /// Unique across the suite's processes and calls; a valid database and bucket name.
    fn unique_name() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs one statement on the server's `postgres` database with Debian's `psql`.
    fn psql(server: &str, sql: &str) {
        let url = format!("{}/postgres", server.trim_end_matches('/'));
        let out = Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .expect("run psql (the test command installs postgresql-client)");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
