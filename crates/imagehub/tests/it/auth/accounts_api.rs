//! The rules of the accounts model through `/api/v1`: sign-up, one namespace for users
//! and organizations, an organization keeps an owner, default visibility, anonymous
//! pull, tokens limited to namespaces, and bad input answered with clear 4xx errors.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::hub::{Cred, Hub, repo_scope};

#[tokio::test]
async fn only_admins_create_accounts_unless_signup_is_open() {
    let hub = Hub::start();
    let body = json!({"name": "eve", "password": "eve-Secret-12"});
    let reply = hub.api(&Cred::Anonymous, Method::POST, "/api/v1/users", Some(body.clone())).await;
    reply.expect_status(403, "anonymous sign-up with signup = admin");
    assert_eq!(reply.json()["errors"][0]["code"], "DENIED");
    hub.create_user("bob", "bob-Secret-12").await;
    hub.api(
        &Cred::basic("bob", "bob-Secret-12"),
        Method::POST,
        "/api/v1/users",
        Some(body.clone()),
    )
    .await
    .expect_status(403, "a user");

    let open = Hub::start_with(|c| c.auth.signup = imagehub_server::config::Signup::Open);
    open.api(&Cred::Anonymous, Method::POST, "/api/v1/users", Some(body))
        .await
        .expect_status(201, "open sign-up");
    let me =
        open.api(&Cred::basic("eve", "eve-Secret-12"), Method::GET, "/api/v1/user", None).await;
    me.expect_status(200, "the new account logs in");
    assert_eq!(me.json()["name"], "eve");
    assert_eq!(me.json()["admin"], false);
}

#[tokio::test]
async fn users_and_organizations_share_one_namespace() {
    let hub = Hub::start();
    hub.create_user("acme", "acme-Secret-1").await;
    let bob = Cred::basic("acme", "acme-Secret-1");
    let reply = hub.api(&bob, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"}))).await;
    reply.expect_status(409, "an org named like a user");
    assert_eq!(reply.json()["errors"][0]["code"], "CONFLICT");
    hub.api(&bob, Method::POST, "/api/v1/orgs", Some(json!({"name": "widgets"})))
        .await
        .expect_status(201, "an org");
    hub.api(
        &Cred::admin(),
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "widgets", "password": "w-Secret-123"})),
    )
    .await
    .expect_status(409, "a user named like an org");
}

#[tokio::test]
async fn an_organization_always_keeps_an_owner() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    hub.create_user("pete", "pete-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "create");
    hub.api(
        &olga,
        Method::PUT,
        "/api/v1/orgs/acme/members/olga",
        Some(json!({"role": "developer"})),
    )
    .await
    .expect_status(409, "demote the last owner");
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme/members/olga", None)
        .await
        .expect_status(409, "remove the last owner");
    hub.api(&olga, Method::PUT, "/api/v1/orgs/acme/members/pete", Some(json!({"role": "owner"})))
        .await
        .expect_status(200, "a second owner");
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme/members/olga", None)
        .await
        .expect_status(204, "now olga may leave");
    let members = hub
        .api(&Cred::basic("pete", "pete-Secret-1"), Method::GET, "/api/v1/orgs/acme/members", None)
        .await;
    assert_eq!(
        members.json()["members"],
        json!([{"user": "pete", "role": "owner", "added_at": members.json()["members"][0]["added_at"]}])
    );
    // olga is no longer a member: the organization is hidden from her.
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme", None)
        .await
        .expect_status(404, "a former member");
}

#[tokio::test]
async fn an_organization_with_repositories_is_not_deleted() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "create");
    let token = hub.token(&olga, &[repo_scope("acme/app", "pull,push")]).await.expect("token");
    hub.push_image(Some(&token), "acme/app", "v1").await.expect("push");
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme", None)
        .await
        .expect_status(409, "delete with a repository");
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme", None).await.expect_status(200, "still there");
}

#[tokio::test]
async fn new_repositories_take_the_organization_default_visibility() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(
        &olga,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "oss", "default_visibility": "public"})),
    )
    .await
    .expect_status(201, "public org");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "corp"})))
        .await
        .expect_status(201, "private org");
    for repo in ["oss/lib", "corp/secret"] {
        let token = hub.token(&olga, &[repo_scope(repo, "pull,push")]).await.expect("token");
        hub.push_image(Some(&token), repo, "v1").await.expect("push");
    }
    assert!(anonymous_pull(&hub, "oss/lib").await, "a repository of a public-by-default org");
    assert!(!anonymous_pull(&hub, "corp/secret").await, "a repository of a private org");
    // Changing the default later does not flip existing repositories.
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/oss",
        Some(json!({"default_visibility": "private"})),
    )
    .await
    .expect_status(200, "change default");
    assert!(anonymous_pull(&hub, "oss/lib").await, "an existing repository keeps its visibility");
}

#[tokio::test]
async fn anonymous_pull_can_be_turned_off() {
    let hub = Hub::start_with(|c| c.auth.anonymous_pull = false);
    hub.create_user("olga", "olga-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    let token = hub.token(&olga, &[repo_scope("olga/app", "pull,push")]).await.expect("token");
    hub.push_image(Some(&token), "olga/app", "v1").await.expect("push");
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/olga/repos/app",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "public");
    assert!(!anonymous_pull(&hub, "olga/app").await, "anonymous pull is off");
    hub.create_user("other", "other-Secret-1").await;
    let token = hub
        .token(&Cred::basic("other", "other-Secret-1"), &[repo_scope("olga/app", "pull")])
        .await
        .expect("token");
    let reply = hub
        .send(
            hub.v2(Method::GET, "/v2/olga/app/manifests/v1", Some(&token))
                .header("accept", crate::support::hub::OCI_MANIFEST),
        )
        .await;
    reply.expect_status(200, "a logged-in outsider still pulls a public repository");
}

#[tokio::test]
async fn a_token_limited_to_namespaces_reaches_nothing_else() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "org");
    let reply = hub
        .api(
            &olga,
            Method::POST,
            "/api/v1/user/tokens",
            Some(json!({"name": "acme-ci", "scopes": ["pull", "push"], "namespaces": ["acme"]})),
        )
        .await;
    reply.expect_status(201, "limited token");
    let secret = reply.json()["secret"].as_str().expect("secret").to_string();
    let limited = Cred::basic("olga", &secret);
    let token = hub.token(&limited, &[repo_scope("acme/app", "pull,push")]).await.expect("token");
    hub.push_image(Some(&token), "acme/app", "v1").await.expect("push inside the namespace");
    let token = hub.token(&limited, &[repo_scope("olga/own", "pull,push")]).await.expect("token");
    let denied = hub
        .push_image(Some(&token), "olga/own", "v1")
        .await
        .expect_err("push outside the namespace");
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let hub = Hub::start();
    let admin = Cred::admin();
    for (body, what) in [
        (json!({"name": "Bad Name", "password": "long-enough-1"}), "an invalid name"),
        (json!({"name": "ok", "password": "short"}), "a short password"),
        (json!({"name": "ok"}), "a missing password"),
        (json!({"name": "ok", "password": "long-enough-1", "role": "admin"}), "an unknown field"),
    ] {
        let reply = hub.api(&admin, Method::POST, "/api/v1/users", Some(body)).await;
        reply.expect_status(400, what);
        assert_eq!(reply.json()["errors"][0]["code"], "INVALID", "{what}");
    }
    let reply = hub
        .send(
            hub.client
                .post(hub.url("/api/v1/orgs"))
                .basic_auth("admin", Some(imagehub_testkit::ADMIN_PASSWORD))
                .body("{not json"),
        )
        .await;
    reply.expect_status(400, "malformed JSON");
    hub.api(
        &admin,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "acme", "default_visibility": "secret"})),
    )
    .await
    .expect_status(400, "a bad visibility");
    hub.api(&admin, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "org");
    hub.api(&admin, Method::PUT, "/api/v1/orgs/acme/members/admin", Some(json!({"role": "boss"})))
        .await
        .expect_status(400, "a bad role");
    hub.api(
        &admin,
        Method::PUT,
        "/api/v1/orgs/acme/members/nobody",
        Some(json!({"role": "viewer"})),
    )
    .await
    .expect_status(404, "an unknown user");
    hub.api(
        &admin,
        Method::POST,
        "/api/v1/user/tokens",
        Some(json!({"name": "t", "scopes": ["fly"]})),
    )
    .await
    .expect_status(400, "a bad scope");
    hub.api(&admin, Method::POST, "/api/v1/user/tokens", Some(json!({"name": "t", "scopes": []})))
        .await
        .expect_status(400, "no scope");
    hub.api(&admin, Method::DELETE, "/api/v1/user/tokens/abc", None)
        .await
        .expect_status(400, "a bad token id");
    hub.api(&admin, Method::DELETE, "/api/v1/user/tokens/999", None)
        .await
        .expect_status(404, "an unknown token");
    let reply = hub.api(&Cred::basic("admin", "wrong"), Method::GET, "/api/v1/user", None).await;
    reply.expect_status(401, "a wrong password");
    assert!(reply.header("www-authenticate").is_some(), "401 carries a challenge");
}

#[tokio::test]
async fn repository_names_with_slashes_are_percent_encoded() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    let token =
        hub.token(&olga, &[repo_scope("olga/tools/cli", "pull,push")]).await.expect("token");
    hub.push_image(Some(&token), "olga/tools/cli", "v1").await.expect("push");
    let reply = hub
        .api(
            &olga,
            Method::PATCH,
            "/api/v1/orgs/olga/repos/tools%2Fcli",
            Some(json!({"visibility": "public"})),
        )
        .await;
    reply.expect_status(200, "encoded slash");
    assert_eq!(reply.json()["name"], "olga/tools/cli");
    assert!(anonymous_pull(&hub, "olga/tools/cli").await);
}

async fn anonymous_pull(hub: &Hub, repo: &str) -> bool {
    let token = hub.token(&Cred::Anonymous, &[repo_scope(repo, "pull")]).await.ok();
    let reply = hub
        .send(
            hub.v2(Method::GET, &format!("/v2/{repo}/manifests/v1"), token.as_deref())
                .header("accept", crate::support::hub::OCI_MANIFEST),
        )
        .await;
    reply.status == StatusCode::OK
}
