//! The permission matrix: every kind of caller × every kind of repository × every
//! operation, each cell asserted over real HTTP the way clients do it (a token from
//! `/token`, then the registry request; Basic credentials on `/api/v1`).
//!
//! Callers: anonymous, an outsider, the organization's viewer, developer and owner, the
//! site admin, and the owner's access tokens: pull-only, expired and revoked.
//! Repositories: a public and a private repository of the organization `acme`, and the
//! personal (private) repository of the user `alice`.
//! Operations: pull, push, delete, seeing the repository in the catalog, and changing
//! membership — for a personal repository, which has no members, changing its settings
//! (visibility), the owner-only operation there.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::hub::{Cred, Hub, repo_scope};

const PUBLIC: &str = "acme/public-app";
const PRIVATE: &str = "acme/private-app";
const PERSONAL: &str = "alice/personal";
const REPOS: [&str; 3] = [PUBLIC, PRIVATE, PERSONAL];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Pull,
    Push,
    Delete,
    Catalog,
    Members,
}
const OPS: [Op; 5] = [Op::Pull, Op::Push, Op::Delete, Op::Catalog, Op::Members];

/// Expected outcomes per subject: for each repository (public, private, personal) the
/// operations pull, push, delete, catalog, members as `Y` (allowed) or `N` (denied).
const EXPECTED: &[(&str, [&str; 3])] = &[
    ("anonymous", ["YNNYN", "NNNNN", "NNNNN"]),
    ("outsider", ["YNNYN", "NNNNN", "NNNNN"]),
    ("viewer", ["YNNYN", "YNNYN", "NNNNN"]),
    ("developer", ["YYNYN", "YYNYN", "NNNNN"]),
    ("owner", ["YYYYY", "YYYYY", "NNNNN"]),
    ("admin", ["YYYYY", "YYYYY", "YYYYY"]),
    ("pull-token", ["YNNYN", "YNNYN", "NNNNN"]),
    ("expired-token", ["NNNNN", "NNNNN", "NNNNN"]),
    ("revoked-token", ["NNNNN", "NNNNN", "NNNNN"]),
];

fn password(user: &str) -> String {
    format!("pw-{user}-1234")
}

#[tokio::test]
async fn every_cell_of_the_permission_matrix_holds() {
    let hub = Hub::start();
    let subjects = setup(&hub).await;
    let mut failures = Vec::new();
    for (subject, rows) in EXPECTED {
        let cred = &subjects.iter().find(|(name, _)| name == subject).expect("subject set up").1;
        for (repo, row) in REPOS.iter().zip(rows) {
            for (op, expected) in OPS.iter().zip(row.chars()) {
                let allowed = attempt(&hub, subject, cred, repo, *op).await;
                if allowed != (expected == 'Y') {
                    failures.push(format!(
                        "{subject} {op:?} {repo}: expected {}, got {}",
                        deny_or_allow(expected == 'Y'),
                        deny_or_allow(allowed)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
}

fn deny_or_allow(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// Users, the organization and its members, one image in each repository, and the
/// owner's three access tokens.
async fn setup(hub: &Hub) -> Vec<(&'static str, Cred)> {
    for user in ["owner1", "dev1", "viewer1", "outsider1", "alice"] {
        hub.create_user(user, &password(user)).await;
    }
    let owner = Cred::basic("owner1", &password("owner1"));
    hub.api(&owner, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "create acme");
    for (user, role) in [("dev1", "developer"), ("viewer1", "viewer")] {
        hub.api(
            &owner,
            Method::PUT,
            &format!("/api/v1/orgs/acme/members/{user}"),
            Some(json!({"role": role})),
        )
        .await
        .expect_status(200, "add member");
    }
    for repo in REPOS {
        let token =
            hub.token(&Cred::admin(), &[repo_scope(repo, "pull,push")]).await.expect("admin token");
        hub.push_image(Some(&token), repo, "v1").await.expect("admin pushes");
    }
    hub.api(
        &owner,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/public-app",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "make public-app public");

    let (_, pull_only) = hub.create_token(&owner, "pull-only", &["pull"], None).await;
    let (expired_id, expired) =
        hub.create_token(&owner, "expired", &["pull", "push", "delete"], None).await;
    hub.expire_token(expired_id).await;
    let (revoked_id, revoked) =
        hub.create_token(&owner, "revoked", &["pull", "push", "delete"], None).await;
    hub.api(&owner, Method::DELETE, &format!("/api/v1/user/tokens/{revoked_id}"), None)
        .await
        .expect_status(204, "revoke");

    vec![
        ("anonymous", Cred::Anonymous),
        ("outsider", Cred::basic("outsider1", &password("outsider1"))),
        ("viewer", Cred::basic("viewer1", &password("viewer1"))),
        ("developer", Cred::basic("dev1", &password("dev1"))),
        ("owner", owner.clone()),
        ("admin", Cred::admin()),
        ("pull-token", Cred::basic("owner1", &pull_only)),
        ("expired-token", Cred::basic("owner1", &expired)),
        ("revoked-token", Cred::basic("owner1", &revoked)),
    ]
}

/// Tries one operation; returns whether it was allowed, after checking that a denial
/// has the right shape and changed nothing.
async fn attempt(hub: &Hub, subject: &str, cred: &Cred, repo: &str, op: Op) -> bool {
    match op {
        Op::Pull => {
            let Some(token) = registry_token(hub, cred, &repo_scope(repo, "pull")).await else {
                return false;
            };
            let reply = hub
                .send(
                    hub.v2(Method::GET, &format!("/v2/{repo}/manifests/v1"), Some(&token))
                        .header("accept", crate::support::hub::OCI_MANIFEST),
                )
                .await;
            registry_outcome(&reply, "pull")
        }
        Op::Push => {
            let tag = format!("pushed-by-{subject}");
            let Some(token) = registry_token(hub, cred, &repo_scope(repo, "pull,push")).await
            else {
                return false;
            };
            match hub.push_image(Some(&token), repo, &tag).await {
                Ok(_) => true,
                Err(reply) => {
                    registry_outcome(&reply, "push");
                    assert!(!tag_exists(hub, repo, &tag).await, "a denied push left {repo}:{tag}");
                    false
                }
            }
        }
        Op::Delete => {
            let victim = format!("victim-of-{subject}");
            let admin = hub
                .token(&Cred::admin(), &[repo_scope(repo, "pull,push")])
                .await
                .expect("admin token");
            hub.push_image(Some(&admin), repo, &victim).await.expect("admin pushes the victim");
            let Some(token) = registry_token(hub, cred, &repo_scope(repo, "delete")).await else {
                return false;
            };
            let reply = hub
                .send(hub.v2(
                    Method::DELETE,
                    &format!("/v2/{repo}/manifests/{victim}"),
                    Some(&token),
                ))
                .await;
            let allowed = registry_outcome(&reply, "delete");
            assert_eq!(
                tag_exists(hub, repo, &victim).await,
                !allowed,
                "{repo}:{victim} after a delete that was {}",
                deny_or_allow(allowed)
            );
            allowed
        }
        Op::Catalog => {
            let Some(token) = registry_token(hub, cred, "registry:catalog:*").await else {
                return false;
            };
            let reply = hub.send(hub.v2(Method::GET, "/v2/_catalog", Some(&token))).await;
            reply.expect_status(200, "catalog with a catalog token");
            reply.json()["repositories"].as_array().expect("repositories").iter().any(|r| r == repo)
        }
        Op::Members => {
            let (org, rest) = repo.split_once('/').expect("namespaced repo");
            let reply = if org == "acme" {
                hub.api(
                    cred,
                    Method::PUT,
                    "/api/v1/orgs/acme/members/alice",
                    Some(json!({"role": "viewer"})),
                )
                .await
            } else {
                hub.api(
                    cred,
                    Method::PATCH,
                    &format!("/api/v1/orgs/{org}/repos/{rest}"),
                    Some(json!({"visibility": "private"})),
                )
                .await
            };
            let allowed = api_outcome(&reply, "change members");
            if org == "acme" {
                let members =
                    hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/acme/members", None).await;
                let has_alice = members.json()["members"]
                    .as_array()
                    .expect("members")
                    .iter()
                    .any(|m| m["user"] == "alice");
                assert_eq!(
                    has_alice,
                    allowed,
                    "alice's membership after a change that was {}",
                    deny_or_allow(allowed)
                );
                if allowed {
                    hub.api(
                        &Cred::admin(),
                        Method::DELETE,
                        "/api/v1/orgs/acme/members/alice",
                        None,
                    )
                    .await
                    .expect_status(204, "undo");
                }
            }
            allowed
        }
    }
}

/// A token from `/token` for `scope`, or `None` when the credentials are refused (401).
async fn registry_token(hub: &Hub, cred: &Cred, scope: &str) -> Option<String> {
    match hub.token(cred, &[scope.to_string()]).await {
        Ok(token) => Some(token),
        Err(reply) => {
            reply.expect_status(401, "refused credentials at /token");
            None
        }
    }
}

/// Allowed is 2xx; a denial on the registry is 401 with a Bearer challenge, or, for a
/// pull of a repository the caller may not see, the 404 of a missing one.
fn registry_outcome(reply: &crate::support::hub::Reply, what: &str) -> bool {
    if reply.status.is_success() {
        return true;
    }
    if what == "pull" && reply.status == StatusCode::NOT_FOUND {
        assert_eq!(reply.json()["errors"][0]["code"], "NAME_UNKNOWN", "{what}: {}", reply.text());
        return false;
    }
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what} denied with {}: {}",
        reply.status,
        reply.text()
    );
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm="), "{what}: challenge {challenge:?}");
    false
}

/// Allowed is 2xx; a denial on the API is 401 (no or bad credentials), 403 (not allowed)
/// or 404 (an organization the caller cannot see), in the API's error shape.
fn api_outcome(reply: &crate::support::hub::Reply, what: &str) -> bool {
    if reply.status.is_success() {
        return true;
    }
    assert!(
        [401, 403, 404].contains(&reply.status.as_u16()),
        "{what} denied with {}: {}",
        reply.status,
        reply.text()
    );
    assert!(reply.json()["errors"][0]["code"].is_string(), "{what}: error body {}", reply.text());
    false
}

async fn tag_exists(hub: &Hub, repo: &str, tag: &str) -> bool {
    let token = hub.token(&Cred::admin(), &[repo_scope(repo, "pull")]).await.expect("admin token");
    let reply = hub
        .send(
            hub.v2(Method::HEAD, &format!("/v2/{repo}/manifests/{tag}"), Some(&token))
                .header("accept", crate::support::hub::OCI_MANIFEST),
        )
        .await;
    reply.status == StatusCode::OK
}
