//! A repository the caller may not pull answers exactly as one that does not exist, on
//! `/v2` and `/api/v1`, whoever asks: anonymous callers get the challenge to log in,
//! users the 404 of a missing repository, and a refused push is the same 403 either way.
//! Each pair of answers is compared byte for byte, with the names swapped.

use reqwest::Method;
use serde_json::json;

use crate::support::hub::{Cred, Hub, OCI_MANIFEST, Reply, repo_scope};

/// Private, in an organization whose default is public.
const SECRET: &str = "acme/secret";
const MISSING: &str = "acme/nothing";

async fn setup(hub: &Hub) {
    hub.create_user("olga", "olga-password-1").await;
    hub.create_user("oscar", "oscar-password-1").await;
    let olga = Cred::basic("olga", "olga-password-1");
    hub.api(
        &olga,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "acme", "default_visibility": "public"})),
    )
    .await
    .expect_status(201, "create acme");
    let token = hub.token(&olga, &[repo_scope(SECRET, "pull,push")]).await.expect("olga's token");
    hub.push_image(Some(&token), SECRET, "v1").await.expect("push the secret");
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/secret",
        Some(json!({"visibility": "private"})),
    )
    .await
    .expect_status(200, "make it private");
}

/// Status, challenge and body, with the missing repository's name written as the
/// secret one's, so equal answers compare equal.
fn answer(reply: &Reply) -> (u16, Option<String>, String) {
    let unname = |s: String| s.replace(MISSING, SECRET).replace("repos/nothing", "repos/secret");
    (reply.status.as_u16(), reply.header("www-authenticate").map(unname), unname(reply.text()))
}

#[track_caller]
fn assert_same(secret: &Reply, missing: &Reply, what: &str) {
    assert_eq!(
        answer(secret),
        answer(missing),
        "{what}: the private repository and the missing one answer differently"
    );
}

/// One registry request to both repositories.
async fn both_v2(
    hub: &Hub,
    method: Method,
    path: &str,
    cred: &Cred,
    token_scope: Option<&str>,
) -> (Reply, Reply) {
    let mut replies = Vec::new();
    for repo in [SECRET, MISSING] {
        let token = match token_scope {
            Some(actions) => {
                Some(hub.token(cred, &[repo_scope(repo, actions)]).await.expect("token"))
            }
            None => None,
        };
        let mut request = hub
            .v2(method.clone(), &format!("/v2/{repo}{path}"), token.as_deref())
            .header("accept", OCI_MANIFEST);
        if let (None, Cred::Basic(user, password)) = (&token, cred) {
            request = request.basic_auth(user, Some(password));
        }
        replies.push(hub.send(request).await);
    }
    let missing = replies.pop().expect("two replies");
    (replies.pop().expect("two replies"), missing)
}

#[tokio::test]
async fn a_private_repository_answers_as_a_missing_one_on_the_registry() {
    let hub = Hub::start();
    setup(&hub).await;
    let oscar = Cred::basic("oscar", "oscar-password-1");
    let blob = format!("/blobs/{}", crate::support::hub::sha256(b"anything"));
    for (who, cred, scope) in [
        ("anonymous", Cred::Anonymous, None),
        ("anonymous with a token", Cred::Anonymous, Some("pull")),
        ("an outsider with Basic", oscar.clone(), None),
        ("an outsider with a token", oscar.clone(), Some("pull")),
    ] {
        for (method, path) in [
            (Method::GET, "/manifests/v1"),
            (Method::HEAD, "/manifests/v1"),
            (Method::GET, "/tags/list"),
            (Method::GET, blob.as_str()),
        ] {
            let (secret, missing) = both_v2(&hub, method.clone(), path, &cred, scope).await;
            assert_same(&secret, &missing, &format!("{who}: {method} {path}"));
            let expected = if cred.is_anonymous() { 401 } else { 404 };
            assert_eq!(
                secret.status.as_u16(),
                expected,
                "{who}: {method} {path}: {}",
                secret.text()
            );
            if method == Method::GET && expected == 404 {
                assert_eq!(secret.json()["errors"][0]["code"], "NAME_UNKNOWN", "{who}: {path}");
            }
        }
    }
    // A refused push says the same whether the repository exists.
    let (secret, missing) = both_v2(&hub, Method::POST, "/blobs/uploads/", &oscar, None).await;
    assert_same(&secret, &missing, "an outsider pushing with Basic");
    assert_eq!(secret.status.as_u16(), 403);
}

#[tokio::test]
async fn a_private_repository_answers_as_a_missing_one_on_the_api() {
    let hub = Hub::start();
    setup(&hub).await;
    let oscar = Cred::basic("oscar", "oscar-password-1");
    for (who, cred) in [("anonymous", Cred::Anonymous), ("an outsider", oscar)] {
        for (method, path, body) in [
            (Method::GET, "", None),
            (Method::GET, "/images", None),
            (Method::GET, "/images/v1", None),
            (Method::PATCH, "/images/v1", Some(json!({"description": "mine now"}))),
            (Method::DELETE, "/images/v1", None),
            (Method::DELETE, "", None),
        ] {
            let secret = hub
                .api(
                    &cred,
                    method.clone(),
                    &format!("/api/v1/orgs/acme/repos/secret{path}"),
                    body.clone(),
                )
                .await;
            let missing = hub
                .api(&cred, method.clone(), &format!("/api/v1/orgs/acme/repos/nothing{path}"), body)
                .await;
            assert_same(&secret, &missing, &format!("{who}: {method} …{path}"));
            assert!(
                [401, 403, 404].contains(&secret.status.as_u16()),
                "{who}: {method} …{path}: {}",
                secret.text()
            );
        }
    }
    let olga = Cred::basic("olga", "olga-password-1");
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/secret/images/v1", None)
        .await
        .expect_status(200, "the owner still sees it");
}
