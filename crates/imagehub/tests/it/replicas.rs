//! Several `imagehub serve` processes as replicas of one hub (issue 18): what they must
//! share to be interchangeable behind a load balancer.

use reqwest::Method;

use crate::support::hub::{Cred, Hub, repo_scope};

/// Replicas given one `auth.signing_key_file` sign with one key: each publishes the same
/// key set, and a token from one is accepted by another; a hub with its own key refuses
/// it. (The first replica to start creates the file; the others read it.)
#[tokio::test]
async fn replicas_sharing_a_signing_key_accept_each_others_tokens() {
    let keys = tempfile::tempdir().expect("keys");
    let shared = keys.path().join("signing-key.pem");
    let start = |key: Option<std::path::PathBuf>| {
        Hub::start_with(move |c| {
            if let Some(key) = key {
                c.auth.signing_key_file = Some(key);
            }
        })
    };
    let (one, two, other) = (start(Some(shared.clone())), start(Some(shared.clone())), start(None));
    assert!(shared.is_file(), "created by the first replica");
    let jwks = |hub: &Hub| {
        let url = hub.url("/.well-known/jwks.json");
        async move {
            reqwest::get(url).await.expect("jwks").json::<serde_json::Value>().await.expect("JSON")
        }
    };
    assert_eq!(jwks(&one).await, jwks(&two).await, "one key set");
    assert_ne!(jwks(&one).await, jwks(&other).await);

    // The same public repository on each (their databases are not shared here).
    for hub in [&one, &two, &other] {
        let olga = hub.olga_with_public_acme().await;
        hub.push_with_readme(&olga, "acme/app", "v1", "").await;
    }
    let token =
        one.token(&Cred::Anonymous, &[repo_scope("acme/app", "pull")]).await.expect("token");
    let path = "/v2/acme/app/manifests/v1";
    two.send(two.v2(Method::GET, path, Some(&token))).await.expect_status(200, "replica two");
    let refused = other.send(other.v2(Method::GET, path, Some(&token))).await;
    refused.expect_status(401, "a hub with another key");
}
