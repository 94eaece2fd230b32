//! Shared helpers for the accounts tests: a server with accounts on, the management API,
//! the token endpoint as Docker clients use it, and pushing a small image as someone.

use std::time::Duration;

use imagehub_server::config::Config;
use imagehub_testkit::{ADMIN_PASSWORD, TestServer};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

pub use super::reply::Reply;
use crate::realclients::tar;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Bound on one exchange so a hung server fails the test; never used to wait.
const EXCHANGE_GUARD: Duration = Duration::from_secs(60);

/// Credentials a test presents.
#[derive(Debug, Clone)]
pub enum Cred {
    Anonymous,
    /// User name and password or access-token secret.
    Basic(String, String),
}

impl Cred {
    pub fn basic(user: &str, secret: &str) -> Cred {
        Cred::Basic(user.to_string(), secret.to_string())
    }

    pub fn admin() -> Cred {
        Cred::basic("admin", ADMIN_PASSWORD)
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Cred::Anonymous)
    }

    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Cred::Anonymous => request,
            Cred::Basic(user, secret) => request.basic_auth(user, Some(secret)),
        }
    }
}

/// A test server with accounts on (or one running elsewhere), and a client for it.
pub struct Hub {
    server: Option<TestServer>,
    base: String,
    pub client: Client,
}

impl Hub {
    /// Moves a token's expiry into the past in the database: the API refuses to create
    /// a token that is already expired, and waiting for one to expire would make the
    /// test slow.
    pub async fn expire_token(&self, id: i64) {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let url = self.server().database_url();
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("open the test database");
        let past = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
            - 60;
        sqlx::query("UPDATE access_tokens SET expires_at = $1 WHERE id = $2")
            .bind(past)
            .bind(id)
            .execute(&mut conn)
            .await
            .expect("expire the token");
    }

    /// Accounts on; logins are not throttled (tests present wrong credentials on purpose,
    /// many times, from one address) unless `configure` says otherwise.
    pub fn start() -> Hub {
        Hub::start_with(|_| {})
    }

    pub fn start_with(configure: impl FnOnce(&mut Config)) -> Hub {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        Hub::start_in(data_dir, configure)
    }

    fn start_in(data_dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> Hub {
        let server = TestServer::start_in(data_dir, |c| {
            c.auth.enabled = true;
            c.auth.max_failed_logins = 1_000_000;
            configure(c);
        });
        let base = server.url();
        Hub { server: Some(server), base, client: client() }
    }

    /// Stops the server gracefully and starts a new one over the same data.
    pub fn restart(self) -> Hub {
        self.restart_with(|_| {})
    }

    /// `restart`, configured by `configure` (the configuration is not kept).
    pub fn restart_with(mut self, configure: impl FnOnce(&mut Config)) -> Hub {
        let data_dir = self.server.take().expect("this hub was started in-process").stop();
        Hub::start_in(data_dir, configure)
    }

    /// A client for a server already running at `base` (`http://HOST:PORT`).
    pub fn at(base: &str) -> Hub {
        Hub { server: None, base: base.trim_end_matches('/').to_string(), client: client() }
    }

    /// The in-process server.
    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("this hub was started in-process")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request reaches the server")).await
    }

    /// A management API call with a JSON body (or none).
    pub async fn api(&self, cred: &Cred, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = cred.apply(self.client.request(method, self.url(path)));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Creates a user as the admin.
    pub async fn create_user(&self, name: &str, password: &str) {
        self.api(
            &Cred::admin(),
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": name, "password": password})),
        )
        .await
        .expect_status(201, &format!("create user {name}"));
    }

    /// Creates user `olga` (password `olga-password-1`) who owns the public organization
    /// `acme`: the cast of the hub's page tests. Returns her credentials.
    pub async fn olga_with_public_acme(&self) -> Cred {
        self.create_user("olga", "olga-password-1").await;
        let olga = Cred::basic("olga", "olga-password-1");
        self.api(
            &olga,
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"name": "acme", "default_visibility": "public"})),
        )
        .await
        .expect_status(201, "a public org");
        olga
    }

    /// Creates an access token; returns (id, secret).
    pub async fn create_token(
        &self,
        cred: &Cred,
        name: &str,
        scopes: &[&str],
        expires_at: Option<i64>,
    ) -> (i64, String) {
        let reply = self
            .api(
                cred,
                Method::POST,
                "/api/v1/user/tokens",
                Some(json!({"name": name, "scopes": scopes, "expires_at": expires_at})),
            )
            .await;
        reply.expect_status(201, &format!("create token {name}"));
        let v = reply.json();
        (
            v["id"].as_i64().expect("token id"),
            v["secret"].as_str().expect("token secret").to_string(),
        )
    }

    /// `GET /token` as Docker asks for it; `Err(status)` when the token endpoint refuses.
    pub async fn token(&self, cred: &Cred, scopes: &[String]) -> Result<String, Reply> {
        let mut query: Vec<(&str, &str)> = vec![("service", "imagehub")];
        query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
        let reply = self.send(cred.apply(self.client.get(self.url("/token")).query(&query))).await;
        if reply.status != StatusCode::OK {
            return Err(reply);
        }
        Ok(reply.json()["token"].as_str().expect("token in answer").to_string())
    }

    /// A registry request with a bearer token (or none).
    pub fn v2(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Pushes a small image (unique config, one layer) to `repo:tag` with a token that
    /// allows it; returns the manifest digest.
    pub async fn push_image(
        &self,
        token: Option<&str>,
        repo: &str,
        tag: &str,
    ) -> Result<String, Reply> {
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","repo":"{repo}","tag":"{tag}"}}"#);
        let layer = format!("layer of {repo}:{tag}");
        self.push_parts(token, repo, tag, config.as_bytes(), layer.as_bytes()).await
    }

    /// Pushes `repo:tag` whose only layer holds `/README.md` = `readme` (empty: no
    /// README), and runs the indexing queue (as the admin).
    pub async fn push_with_readme(
        &self,
        cred: &Cred,
        repo: &str,
        tag: &str,
        readme: &str,
    ) -> String {
        let token = self.token(cred, &[repo_scope(repo, "pull,push")]).await.expect("token");
        let digest = self.push_readme_image(Some(&token), repo, tag, readme).await.expect("push");
        self.api(&Cred::admin(), Method::POST, "/api/v1/admin/index", None)
            .await
            .expect_status(200, "run the indexing queue");
        digest
    }

    /// Pushes `repo:tag` whose only layer holds `/README.md` = `readme` (empty: no README).
    pub async fn push_readme_image(
        &self,
        token: Option<&str>,
        repo: &str,
        tag: &str,
        readme: &str,
    ) -> Result<String, Reply> {
        let layer = if readme.is_empty() {
            tar(&[("bin/app", b"app")])
        } else {
            tar(&[("README.md", readme.as_bytes())])
        };
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","repo":"{repo}:{tag}"}}"#
        );
        self.push_parts(token, repo, tag, config.as_bytes(), &layer).await
    }

    /// Pushes a config, one layer (as an uncompressed tar) and the manifest tying them.
    async fn push_parts(
        &self,
        token: Option<&str>,
        repo: &str,
        tag: &str,
        config: &[u8],
        layer: &[u8],
    ) -> Result<String, Reply> {
        let config_digest = self.push_blob(token, repo, config).await?;
        let layer_digest = self.push_blob(token, repo, layer).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        let reply = self
            .send(
                self.v2(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"), token)
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest.clone()),
            )
            .await;
        if reply.status != StatusCode::CREATED {
            return Err(reply);
        }
        Ok(sha256(manifest.as_bytes()))
    }

    /// Pushes `manifest` (of its `mediaType`) to `repo:reference`; returns its digest.
    pub async fn put_manifest(
        &self,
        token: &str,
        repo: &str,
        reference: &str,
        manifest: &Value,
    ) -> String {
        let media_type = manifest["mediaType"].as_str().expect("a media type");
        let body = manifest.to_string();
        self.send(
            self.v2(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"), Some(token))
                .header("content-type", media_type)
                .body(body.clone()),
        )
        .await
        .expect_status(201, "push the manifest");
        sha256(body.as_bytes())
    }

    /// Pushes an image for one architecture, with a build history, environment, labels and
    /// ports in its config; returns its manifest as an index entry.
    pub async fn push_platform_image(&self, token: &str, repo: &str, architecture: &str) -> Value {
        let config = json!({
            "architecture": architecture, "os": "linux", "created": "2024-05-01T12:00:00Z",
            "config": {
                "Env": ["PATH=/usr/bin", "API_KEY=hunter2-secret"],
                "Entrypoint": ["/app", "--serve"], "Cmd": ["--port", "8080"], "WorkingDir": "/srv",
                "ExposedPorts": {"8080/tcp": {}},
                "Labels": {"org.opencontainers.image.title": "<script>alert('label')</script>"}
            },
            "history": [
                {"created_by": "ADD rootfs.tar /"},
                {"created_by": "ENV API_KEY=hunter2-secret", "empty_layer": true},
                {"created_by": "RUN make install"}
            ]
        })
        .to_string();
        let config_digest =
            self.push_blob(Some(token), repo, config.as_bytes()).await.expect("config");
        let mut layers = Vec::new();
        for content in [format!("base {architecture}"), format!("app {architecture}")] {
            let data = tar(&[("file", content.as_bytes())]);
            let digest = self.push_blob(Some(token), repo, &data).await.expect("layer");
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": data.len()}));
        }
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layers,
        });
        let size = manifest.to_string().len();
        let digest = self.put_manifest(token, repo, &format!("v1-{architecture}"), &manifest).await;
        json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
               "platform": {"os": "linux", "architecture": architecture}})
    }

    /// Monolithic blob upload (POST + PUT).
    pub async fn push_blob(
        &self,
        token: Option<&str>,
        repo: &str,
        data: &[u8],
    ) -> Result<String, Reply> {
        let digest = sha256(data);
        let start =
            self.send(self.v2(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), token)).await;
        if start.status != StatusCode::ACCEPTED {
            return Err(start);
        }
        let location = start.header("location").expect("upload location");
        let target = if location.starts_with('/') { self.url(&location) } else { location };
        let separator = if target.contains('?') { '&' } else { '?' };
        let mut request =
            self.client.put(format!("{target}{separator}digest={digest}")).body(data.to_vec());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = self.send(request).await;
        if reply.status != StatusCode::CREATED {
            return Err(reply);
        }
        Ok(digest)
    }
}

fn client() -> Client {
    Client::builder().timeout(EXCHANGE_GUARD).build().expect("build reqwest client")
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `repository:<repo>:<actions>`.
pub fn repo_scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}
