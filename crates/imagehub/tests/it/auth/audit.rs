//! The audit log (what is recorded, who may read it) and what the server log must never
//! hold: passwords, token secrets, JWTs, `Authorization` headers. The second runs the
//! real binary, whose first start also creates the admin with a generated password.

use reqwest::Method;
use serde_json::{Value, json};

use crate::process::ServerProcess;
use crate::support::hub::{Cred, Hub, repo_scope};

#[tokio::test]
async fn the_audit_log_records_account_changes_and_deletions() {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    hub.create_user("dev", "dev-Secret-12").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "create org");
    hub.api(
        &olga,
        Method::PUT,
        "/api/v1/orgs/acme/members/dev",
        Some(json!({"role": "developer"})),
    )
    .await
    .expect_status(200, "add dev");
    let (token_id, secret) = hub.create_token(&olga, "ci", &["pull", "push", "delete"], None).await;
    let token = hub
        .token(&Cred::basic("olga", &secret), &[repo_scope("acme/app", "pull,push,delete")])
        .await
        .expect("token");
    let digest = hub.push_image(Some(&token), "acme/app", "v1").await.expect("push");
    hub.send(hub.v2(Method::DELETE, &format!("/v2/acme/app/manifests/{digest}"), Some(&token)))
        .await
        .expect_status(202, "delete");
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "visibility");
    hub.api(&olga, Method::DELETE, &format!("/api/v1/user/tokens/{token_id}"), None)
        .await
        .expect_status(204, "revoke");
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme/members/dev", None)
        .await
        .expect_status(204, "remove dev");
    assert!(hub.token(&Cred::basic("olga", "wrong-password"), &[]).await.is_err());

    let all = events(&hub, &Cred::admin()).await;
    for action in [
        "user.create",
        "org.create",
        "member.set",
        "token.create",
        "login",
        "registry.delete",
        "repository.visibility",
        "token.revoke",
        "member.remove",
        "login.failed",
    ] {
        assert!(all.iter().any(|e| e["action"] == action), "no {action} event in {all:#?}");
    }
    let delete = all.iter().find(|e| e["action"] == "registry.delete").expect("delete event");
    assert_eq!(delete["actor"], "olga");
    assert_eq!(delete["namespace"], "acme");
    assert_eq!(delete["target"], format!("/v2/acme/app/manifests/{digest}"));
    let text = serde_json::to_string(&all).expect("serialise");
    assert!(
        !text.contains(&secret)
            && !text.contains("olga-Secret-1")
            && !text.contains("wrong-password"),
        "a secret in the audit log"
    );

    // An organization owner reads the events of their organization only.
    let owned = events(&hub, &olga).await;
    assert!(!owned.is_empty() && owned.iter().all(|e| e["namespace"] == "acme"), "{owned:#?}");
    // Anyone else may not read it.
    hub.api(&Cred::basic("dev", "dev-Secret-12"), Method::GET, "/api/v1/audit", None)
        .await
        .expect_status(403, "a non-owner");
    hub.api(&Cred::Anonymous, Method::GET, "/api/v1/audit", None)
        .await
        .expect_status(401, "anonymous");
}

async fn events(hub: &Hub, cred: &Cred) -> Vec<Value> {
    let reply = hub.api(cred, Method::GET, "/api/v1/audit?limit=1000", None).await;
    reply.expect_status(200, "read the audit log");
    reply.json()["events"].as_array().expect("events").clone()
}

#[tokio::test]
async fn secrets_never_reach_the_server_log() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with_env(data.path(), &[("IMAGEHUB_AUTH__ENABLED", "true")]);
    let admin_password = generated_admin_password(&server.log());
    let hub = Hub::at(server.url());
    let admin = Cred::basic("admin", &admin_password);
    hub.api(&admin, Method::GET, "/api/v1/user", None)
        .await
        .expect_status(200, "the generated admin password works");

    hub.api(
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "sam", "password": "sam-Very-Secret-9"})),
    )
    .await
    .expect_status(201, "create sam");
    let sam = Cred::basic("sam", "sam-Very-Secret-9");
    let (_, secret) = hub.create_token(&sam, "ci", &["pull", "push"], None).await;
    let jwt = hub
        .token(&sam, &[repo_scope("sam/app", "pull,push")])
        .await
        .expect("token with the password");
    hub.push_image(Some(&jwt), "sam/app", "v1").await.expect("push with the JWT");
    hub.token(&Cred::basic("sam", &secret), &[repo_scope("sam/app", "pull")])
        .await
        .expect("token with the access token");
    assert!(hub.token(&Cred::basic("sam", "sam-Wrong-Secret-0"), &[]).await.is_err());
    hub.send(hub.client.get(hub.url("/api/v1/user")).bearer_auth(&secret))
        .await
        .expect_status(200, "access token as bearer");
    hub.send(hub.client.get(hub.url("/v2/")).basic_auth("sam", Some("sam-Very-Secret-9")))
        .await
        .expect_status(200, "Basic on /v2");

    let log = server.terminate_and_log();
    for (what, secret) in [
        ("a password", "sam-Very-Secret-9"),
        ("a wrong password", "sam-Wrong-Secret-0"),
        ("an access-token secret", secret.as_str()),
        ("a JWT", jwt.as_str()),
        ("a JWT's signature", jwt.rsplit('.').next().unwrap_or_default()),
    ] {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
    }
    assert!(
        !log.to_lowercase().contains("authorization"),
        "an Authorization header is in the log:\n{log}"
    );
    assert_eq!(
        log.matches(&admin_password).count(),
        1,
        "the generated password is shown exactly once"
    );
}

/// The password the first start generated for `admin`, from its log line.
fn generated_admin_password(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("generated password"))
        .unwrap_or_else(|| panic!("no generated password in the log:\n{log}"));
    let after = line.split("generated password ").nth(1).expect("password follows");
    after.split_whitespace().next().expect("a password").to_string()
}
