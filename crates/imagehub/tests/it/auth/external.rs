//! Logins imagehub cannot check against its own database: an htpasswd file (bcrypt
//! entries only) and an authentication webhook. Users of either source are created on
//! their first login (`"source": "htpasswd"` / `"webhook"`) and own their personal
//! namespace like local users do.
//!
//! The webhook is a small axum server inside the test, on `127.0.0.1:0`, that records
//! every request it gets; it is stopped when the test ends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use imagehub_server::config::Config;
use imagehub_testkit::ADMIN_PASSWORD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::hub::{Cred, Hub, repo_scope};

// ---- htpasswd ----

const CAROL_PASSWORD: &str = "carol-Secret-42";

/// Writes an htpasswd file holding `lines` into `dir`; returns its path.
fn write_htpasswd(dir: &Path, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write htpasswd file");
    path
}

/// `user:<bcrypt hash>`, as `htpasswd -B` writes it (cost 4: fast, still bcrypt).
fn bcrypt_entry(user: &str, password: &str) -> String {
    format!("{user}:{}", bcrypt::hash(password, 4).expect("bcrypt hash"))
}

#[tokio::test]
async fn htpasswd_user_logs_in_is_created_on_first_login_and_pushes_to_own_namespace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_htpasswd(
        dir.path(),
        &["# managed by the test".to_string(), bcrypt_entry("carol", CAROL_PASSWORD)],
    );
    let hub = Hub::start_with(|c| c.auth.htpasswd_file = Some(file));
    let carol = Cred::basic("carol", CAROL_PASSWORD);

    // The token endpoint accepts the password from the file…
    hub.token(&carol, &[]).await.expect("carol gets a token with her htpasswd password");
    // …and the first login created the account, marked as coming from the file.
    let me = hub.api(&carol, Method::GET, "/api/v1/user", None).await;
    me.expect_status(200, "GET /api/v1/user as carol");
    let me = me.json();
    assert_eq!(me["name"], json!("carol"), "{me}");
    assert_eq!(me["source"], json!("htpasswd"), "{me}");
    assert_eq!(me["admin"], json!(false), "{me}");

    // A wrong password is refused, on the token endpoint and on the API.
    let wrong = Cred::basic("carol", "not-her-password");
    let refused = hub.token(&wrong, &[]).await.expect_err("wrong password must not get a token");
    refused.expect_status(401, "/token with carol's wrong password");
    hub.api(&wrong, Method::GET, "/api/v1/user", None)
        .await
        .expect_status(401, "API with carol's wrong password");
    // So is someone who is neither local nor in the file.
    hub.token(&Cred::basic("mallory", CAROL_PASSWORD), &[])
        .await
        .expect_err("unknown user must not get a token")
        .expect_status(401, "/token as an unknown user");

    // carol owns her personal namespace: she may push there.
    let token = hub
        .token(&carol, &[repo_scope("carol/app", "pull,push")])
        .await
        .expect("token for carol/app");
    let digest =
        hub.push_image(Some(&token), "carol/app", "v1").await.expect("carol pushes carol/app:v1");
    let pulled = hub.send(hub.v2(Method::GET, "/v2/carol/app/manifests/v1", Some(&token))).await;
    pulled.expect_status(200, "carol pulls carol/app:v1");
    assert_eq!(pulled.header("docker-content-digest").as_deref(), Some(digest.as_str()));

    // …but not into someone else's namespace.
    let token = hub
        .token(&carol, &[repo_scope("admin/app", "pull,push")])
        .await
        .expect("token (with fewer rights) for admin/app");
    let refused = hub
        .push_image(Some(&token), "admin/app", "v1")
        .await
        .expect_err("carol must not push to admin/app");
    assert_eq!(refused.status.as_u16(), 401, "{}", refused.text());
}

#[tokio::test]
async fn htpasswd_file_with_a_non_bcrypt_entry_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_htpasswd(
        dir.path(),
        &[bcrypt_entry("carol", CAROL_PASSWORD), "bob:{SHA}xyz".to_string()],
    );
    let data = tempfile::tempdir().expect("temp data dir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.storage.data_dir = data.path().to_path_buf();
    config.auth.enabled = true;
    config.auth.htpasswd_file = Some(file.clone());

    let error = match imagehub_server::Server::bind_with_admin_password(
        config,
        Some(ADMIN_PASSWORD.to_string()),
    )
    .await
    {
        Ok(_) => panic!("the server started with a non-bcrypt htpasswd entry"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&file.display().to_string()), "the error should name the file: {error}");
    assert!(error.contains("line 2"), "the error should name the line: {error}");
    assert!(
        error.contains("\"bob\"") && error.contains("not bcrypt"),
        "the error should say what is wrong: {error}"
    );
}

// ---- webhook ----

const WENDY_SECRET: &str = "platform-token-123";

/// The test's authentication webhook: `POST /auth` with `{"username","password"}`
/// answers `200 {"user": <user>, "groups": ["ops"]}` when the password is
/// [`WENDY_SECRET`] and 401 otherwise. Every request body is recorded. Dropping it stops
/// the server.
struct Webhook {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct WebhookState {
    /// The user name the webhook vouches for.
    user: &'static str,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    /// A webhook that accepts [`WENDY_SECRET`] as the login of `user`.
    async fn start(user: &'static str) -> Webhook {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/auth", post(answer))
            .with_state(WebhookState { user, seen: seen.clone() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind webhook");
        let addr = listener.local_addr().expect("webhook address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook serves");
        });
        Webhook { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    /// The request bodies received so far.
    fn seen(&self) -> Vec<Value> {
        self.seen.lock().expect("webhook log").clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(state): State<WebhookState>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let accepted = body["password"] == json!(WENDY_SECRET);
    state.seen.lock().expect("webhook log").push(body);
    if accepted {
        (StatusCode::OK, Json(json!({"user": state.user, "groups": ["ops"]})))
    } else {
        (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid credentials"})))
    }
}

#[tokio::test]
async fn webhook_user_logs_in_is_created_on_first_login_and_pushes_to_own_namespace() {
    let webhook = Webhook::start("wendy").await;
    let url = webhook.url();
    let hub = Hub::start_with(|c| c.auth.webhook_url = url);
    let wendy = Cred::basic("wendy", WENDY_SECRET);

    hub.token(&wendy, &[]).await.expect("wendy gets a token through the webhook");
    assert_eq!(
        webhook.seen(),
        vec![json!({"username": "wendy", "password": WENDY_SECRET})],
        "the webhook gets exactly the presented credentials, once"
    );

    let me = hub.api(&wendy, Method::GET, "/api/v1/user", None).await;
    me.expect_status(200, "GET /api/v1/user as wendy");
    let me = me.json();
    assert_eq!(me["name"], json!("wendy"), "{me}");
    assert_eq!(me["source"], json!("webhook"), "{me}");
    assert_eq!(me["admin"], json!(false), "{me}");

    // The webhook says no: so does imagehub.
    let wrong = Cred::basic("wendy", "not-the-platform-token");
    hub.token(&wrong, &[])
        .await
        .expect_err("wrong password must not get a token")
        .expect_status(401, "/token with wendy's wrong password");
    hub.api(&wrong, Method::GET, "/api/v1/user", None)
        .await
        .expect_status(401, "API with wendy's wrong password");
    assert_eq!(
        webhook.seen().last(),
        Some(&json!({"username": "wendy", "password": "not-the-platform-token"})),
        "the webhook decided on the wrong password"
    );

    // wendy owns her personal namespace.
    let token = hub
        .token(&wendy, &[repo_scope("wendy/app", "pull,push")])
        .await
        .expect("token for wendy/app");
    let digest =
        hub.push_image(Some(&token), "wendy/app", "v1").await.expect("wendy pushes wendy/app:v1");
    let pulled = hub.send(hub.v2(Method::GET, "/v2/wendy/app/manifests/v1", Some(&token))).await;
    pulled.expect_status(200, "wendy pulls wendy/app:v1");
    assert_eq!(pulled.header("docker-content-digest").as_deref(), Some(digest.as_str()));
}

#[tokio::test]
async fn local_passwords_are_checked_locally_and_never_sent_to_the_webhook() {
    let webhook = Webhook::start("wendy").await;
    let url = webhook.url();
    let hub = Hub::start_with(|c| c.auth.webhook_url = url);

    hub.create_user("lucy", "lucy-Secret-7").await;
    hub.token(&Cred::basic("lucy", "lucy-Secret-7"), &[])
        .await
        .expect("lucy logs in with her local password");
    hub.api(&Cred::basic("lucy", "lucy-Secret-7"), Method::GET, "/api/v1/user", None)
        .await
        .expect_status(200, "GET /api/v1/user as lucy");
    // A wrong password of a local user is refused locally too, not handed on; even the
    // webhook's own secret does not open a local account.
    for password in ["lucy-wrong-password", WENDY_SECRET] {
        hub.token(&Cred::basic("lucy", password), &[])
            .await
            .expect_err("a wrong local password must not get a token")
            .expect_status(401, "/token with a wrong local password");
    }
    assert_eq!(
        webhook.seen(),
        Vec::<Value>::new(),
        "local logins (admin's and lucy's) reached the webhook"
    );
}

#[tokio::test]
async fn webhook_naming_an_invalid_user_logs_no_one_in() {
    let webhook = Webhook::start("Not Valid!").await;
    let url = webhook.url();
    let hub = Hub::start_with(|c| c.auth.webhook_url = url);
    let cred = Cred::basic("wendy", WENDY_SECRET);

    // The server treats the answer as a broken webhook: 502 Bad Gateway.
    let refused =
        hub.token(&cred, &[]).await.expect_err("an invalid user name must not log anyone in");
    assert!(
        refused.status.is_client_error() || refused.status.is_server_error(),
        "{:?}: {}",
        refused.status,
        refused.text()
    );
    assert!(refused.text().contains("invalid user"), "{}", refused.text());
    let api = hub.api(&cred, Method::GET, "/api/v1/user", None).await;
    assert!(
        api.status.is_client_error() || api.status.is_server_error(),
        "{:?}: {}",
        api.status,
        api.text()
    );
    let v2 =
        hub.send(hub.client.get(hub.url("/v2/")).basic_auth("wendy", Some(WENDY_SECRET))).await;
    assert!(
        v2.status.is_client_error() || v2.status.is_server_error(),
        "{:?}: {}",
        v2.status,
        v2.text()
    );
    assert_eq!(webhook.seen().len(), 3, "each attempt asked the webhook");
}

#[tokio::test]
async fn webhook_cannot_log_anyone_in_as_an_existing_local_account() {
    // The webhook vouches for "admin", the local site admin, for whatever name is
    // presented: an external source must not open a local account (which has its own
    // password) — least of all the site admin's.
    let webhook = Webhook::start("admin").await;
    let url = webhook.url();
    let hub = Hub::start_with(|c| c.auth.webhook_url = url);
    let cred = Cred::basic("someone", WENDY_SECRET);

    let me = hub.api(&cred, Method::GET, "/api/v1/user", None).await;
    assert_ne!(
        me.status.as_u16(),
        200,
        "the webhook logged the caller in as a local account: {}",
        me.text()
    );
    let token = hub.token(&cred, &[repo_scope("dev/app", "pull,push,delete")]).await;
    assert!(token.is_err(), "the webhook's answer got a token for the local account \"admin\"");
    assert_eq!(webhook.seen().len(), 2, "both attempts asked the webhook");
}
