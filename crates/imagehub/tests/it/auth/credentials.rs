//! Each credential grants exactly what it stands for on `/api/v1`, as on `/v2`: a
//! registry JWT its `access` claim and nothing else, an access token its scopes and
//! namespaces (and never the account), the password everything the user may do. And a
//! JWT issued before a password change stops working.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::hub::{Cred, Hub, Reply, repo_scope};

const ALICE_PW: &str = "alice-password-1";

/// alice with two images (`alice/app:v1`, `alice/other:v1`) and the organization
/// `alices-team` she owns.
async fn alice(hub: &Hub) -> Cred {
    hub.create_user("alice", ALICE_PW).await;
    hub.create_user("mallory", "mallory-password-1").await;
    let alice = Cred::basic("alice", ALICE_PW);
    for repo in ["alice/app", "alice/other"] {
        let token =
            hub.token(&alice, &[repo_scope(repo, "pull,push")]).await.expect("alice's token");
        hub.push_image(Some(&token), repo, "v1").await.expect("alice pushes");
    }
    hub.api(&alice, Method::POST, "/api/v1/orgs", Some(json!({"name": "alices-team"})))
        .await
        .expect_status(201, "create the org");
    alice
}

/// A request to `/api/v1` with `Authorization: Bearer <token>`.
async fn with_bearer(
    hub: &Hub,
    token: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    let mut request = hub.client.request(method, hub.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    hub.send(request).await
}

#[track_caller]
fn expect_refused(reply: &Reply, what: &str) {
    assert!(
        [401, 403, 404].contains(&reply.status.as_u16()),
        "{what} was not refused: {} {}",
        reply.status,
        reply.text()
    );
    assert!(reply.json()["errors"][0]["code"].is_string(), "{what}: error body {}", reply.text());
}

async fn image_exists(hub: &Hub, repo: &str) -> bool {
    let reply = hub
        .api(
            &Cred::admin(),
            Method::GET,
            &format!("/api/v1/orgs/{repo}/images/v1").replace("/alice/", "/alice/repos/"),
            None,
        )
        .await;
    reply.status == StatusCode::OK
}

async fn team_members(hub: &Hub) -> Vec<String> {
    let reply =
        hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/alices-team/members", None).await;
    reply.expect_status(200, "members");
    reply.json()["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["user"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_registry_token_grants_its_access_claim_and_nothing_else_on_the_api() {
    let hub = Hub::start();
    let alice = alice(&hub).await;
    let scoped = hub.token(&alice, &[repo_scope("alice/app", "pull")]).await.expect("scoped token");
    let unscoped = hub.token(&alice, &[]).await.expect("token without scope");

    for (kind, token) in [("pull-scoped", &scoped), ("unscoped", &unscoped)] {
        // What the claim does not name: her other image, her account, her organization.
        let reply = with_bearer(
            &hub,
            token,
            Method::DELETE,
            "/api/v1/orgs/alice/repos/other/images/v1",
            None,
        )
        .await;
        expect_refused(&reply, &format!("{kind}: deleting alice/other:v1"));
        assert!(image_exists(&hub, "alice/other").await, "{kind}: alice/other:v1 survives");
        let reply =
            with_bearer(&hub, token, Method::DELETE, "/api/v1/orgs/alice/repos/app", None).await;
        expect_refused(&reply, &format!("{kind}: deleting alice/app"));
        assert!(image_exists(&hub, "alice/app").await, "{kind}: alice/app:v1 survives");

        let reply = with_bearer(
            &hub,
            token,
            Method::PUT,
            "/api/v1/orgs/alices-team/members/mallory",
            Some(json!({"role": "owner"})),
        )
        .await;
        expect_refused(&reply, &format!("{kind}: making mallory an owner"));
        assert_eq!(team_members(&hub).await, ["alice"], "{kind}: the team is unchanged");

        for (method, path, body) in [
            (Method::GET, "/api/v1/user", None),
            (Method::PATCH, "/api/v1/user", Some(json!({"email": "mallory@example.com"}))),
            (Method::GET, "/api/v1/user/tokens", None),
            (
                Method::POST,
                "/api/v1/user/tokens",
                Some(json!({"name": "stolen", "scopes": ["pull", "push", "delete"]})),
            ),
            (Method::POST, "/api/v1/orgs", Some(json!({"name": "mallorys-org"}))),
            (Method::PATCH, "/api/v1/orgs/alice/repos/app", Some(json!({"visibility": "public"}))),
        ] {
            let reply = with_bearer(&hub, token, method.clone(), path, body).await;
            expect_refused(&reply, &format!("{kind}: {method} {path}"));
        }
    }

    // Within its claim the token works: it reads alice/app.
    with_bearer(&hub, &scoped, Method::GET, "/api/v1/orgs/alice/repos/app/images/v1", None)
        .await
        .expect_status(200, "read within the claim");
    let me = hub.api(&alice, Method::GET, "/api/v1/user", None).await;
    assert!(me.json()["email"].is_null(), "the email was not changed: {}", me.text());
}

#[tokio::test]
async fn an_admins_registry_token_is_not_an_admin_login() {
    let hub = Hub::start();
    let scoped = hub.token(&Cred::admin(), &[]).await.expect("admin token without scope");
    let reply = with_bearer(
        &hub,
        &scoped,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "sneaky", "password": "sneaky-password-1"})),
    )
    .await;
    expect_refused(&reply, "creating a user with the admin's unscoped JWT");
    let reply = with_bearer(&hub, &scoped, Method::POST, "/api/v1/admin/index", None).await;
    expect_refused(&reply, "running the index with the admin's unscoped JWT");
    let reply = with_bearer(&hub, &scoped, Method::GET, "/api/v1/audit", None).await;
    expect_refused(&reply, "reading the audit log with the admin's unscoped JWT");
}

#[tokio::test]
async fn a_pull_only_access_token_reads_the_account_but_never_changes_it() {
    let hub = Hub::start();
    let alice = alice(&hub).await;
    let (_, secret) = hub.create_token(&alice, "ci-pull", &["pull"], None).await;
    let token = Cred::basic("alice", &secret);

    hub.api(&token, Method::GET, "/api/v1/user", None)
        .await
        .expect_status(200, "who am I, with a token");
    for (method, path, body) in [
        (Method::PATCH, "/api/v1/user", Some(json!({"email": "mallory@example.com"}))),
        (Method::PATCH, "/api/v1/user", Some(json!({"password": "taken-over-123"}))),
        (
            Method::POST,
            "/api/v1/user/tokens",
            Some(json!({"name": "more", "scopes": ["pull", "push", "delete"]})),
        ),
        (Method::PUT, "/api/v1/orgs/alices-team/members/mallory", Some(json!({"role": "owner"}))),
        (Method::PATCH, "/api/v1/orgs/alices-team", Some(json!({"description": "owned"}))),
        (Method::DELETE, "/api/v1/orgs/alice/repos/other/images/v1", None),
    ] {
        let reply = hub.api(&token, method.clone(), path, body).await;
        expect_refused(&reply, &format!("pull-only token: {method} {path}"));
    }
    // The bearer form of the same token is held to the same rules.
    let reply = with_bearer(
        &hub,
        &secret,
        Method::PATCH,
        "/api/v1/user",
        Some(json!({"email": "mallory@example.com"})),
    )
    .await;
    expect_refused(&reply, "pull-only token as bearer: changing the email");
    let me = hub.api(&alice, Method::GET, "/api/v1/user", None).await;
    assert!(me.json()["email"].is_null(), "the email was not changed: {}", me.text());
    assert_eq!(team_members(&hub).await, ["alice"]);
    assert!(image_exists(&hub, "alice/other").await);
}

#[tokio::test]
async fn a_registry_token_from_before_a_password_change_stops_working_on_the_registry() {
    let hub = Hub::start();
    let alice = alice(&hub).await;
    let token = hub.token(&alice, &[repo_scope("alice/app", "pull")]).await.expect("token");
    let pull = || {
        hub.v2(Method::GET, "/v2/alice/app/manifests/v1", Some(&token))
            .header("accept", crate::support::hub::OCI_MANIFEST)
    };
    hub.send(pull()).await.expect_status(200, "pull before the change");

    hub.api(&alice, Method::PATCH, "/api/v1/user", Some(json!({"password": "alice-password-2"})))
        .await
        .expect_status(200, "change the password");

    let reply = hub.send(pull()).await;
    reply.expect_status(401, "pull with a token from before the password change");
    assert!(
        reply.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer ")),
        "a challenge to log in again"
    );
    let reply =
        with_bearer(&hub, &token, Method::GET, "/api/v1/orgs/alice/repos/app/images/v1", None)
            .await;
    reply.expect_status(401, "the API with a token from before the password change");
}
