//! Docker token auth end to end: forged and tampered JWTs on `/v2`, the token endpoint
//! (`GET /token`, the OAuth2 grants of `POST /token`), the JWKS, revocation and expiry of
//! access tokens, login throttling, Basic credentials on `/v2`, and the challenge's realm
//! and scope.
//!
//! Most tests share one layout: the organization `acme` (private by default) with the
//! private repository `acme/private-app` and the public `acme/public-app`, each holding
//! `v1`, pushed by the site admin.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::hub::{Cred, Hub, OCI_MANIFEST, Reply, repo_scope, sha256};

const PRIVATE: &str = "acme/private-app";
const PUBLIC: &str = "acme/public-app";
const TAG: &str = "v1";

// ---- forged and tampered JWTs on /v2 ----

#[tokio::test]
async fn a_token_from_the_token_endpoint_pulls_a_private_manifest() {
    let (hub, token) = hub_and_pull_token().await;
    assert_accepted(&hub, &token, "the token from /token").await;
}

#[tokio::test]
async fn a_token_the_test_signs_with_the_server_key_is_accepted() {
    // The control for the forgeries below: the test's signing is right, so when they are
    // refused it is for what was changed, not for how the test signs.
    let (hub, token) = hub_and_pull_token().await;
    let resigned = resign_with_server_key(&hub, &token, |_| {});
    assert_accepted(&hub, &resigned, "the same claims re-signed with the server's key").await;
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = token.split('.').nth(1).expect("payload part");
    assert_rejected(&hub, &format!("{header}.{body}."), "alg none").await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let other = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = other.to_pkcs8_pem(LineEnding::LF).expect("encode the other key");
    let forged = sign_es256(pem.as_bytes(), jwt_header(&token).kid, &payload(&token));
    assert_rejected(&hub, &forged, "signed by a foreign key").await;
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let now = unix_now();
    let expired = resign_with_server_key(&hub, &token, |claims| {
        claims["iat"] = json!(now - 7200);
        claims["nbf"] = json!(now - 7200);
        claims["exp"] = json!(now - 3600);
    });
    assert_rejected(&hub, &expired, "expired an hour ago").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let forged =
        resign_with_server_key(&hub, &token, |claims| claims["aud"] = json!("some-other-registry"));
    assert_rejected(&hub, &forged, "wrong aud").await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let forged =
        resign_with_server_key(&hub, &token, |claims| claims["iss"] = json!("some-other-issuer"));
    assert_rejected(&hub, &forged, "wrong iss").await;
}

#[tokio::test]
async fn a_token_with_widened_access_and_the_original_signature_is_rejected() {
    let (hub, token) = hub_and_pull_token().await;
    let mut claims = payload(&token);
    claims["access"] = json!([
        {"type": "repository", "name": PRIVATE, "actions": ["pull", "push", "delete"]},
        {"type": "repository", "name": "acme/other", "actions": ["*"]},
    ]);
    let parts: Vec<&str> = token.split('.').collect();
    let edited = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = format!("{}.{edited}.{}", parts[0], parts[2]);
    assert_rejected(&hub, &tampered, "widened access, original signature").await;

    let delete = hub
        .send(hub.v2(Method::DELETE, &format!("/v2/{PRIVATE}/manifests/{TAG}"), Some(&tampered)))
        .await;
    delete.expect_status(401, "delete with the widened token");
    assert_accepted(&hub, &token, "the manifest is still there").await;
}

#[tokio::test]
async fn a_refresh_token_is_not_a_bearer_token() {
    let hub = hub_with_repos().await;
    let reply = password_grant(
        &hub,
        "admin",
        imagehub_testkit::ADMIN_PASSWORD,
        &repo_scope(PRIVATE, "pull"),
        true,
    )
    .await;
    reply.expect_status(200, "password grant");
    let answer = reply.json();
    assert_accepted(
        &hub,
        answer["access_token"].as_str().expect("access_token"),
        "the access token of the grant",
    )
    .await;
    let refresh = answer["refresh_token"].as_str().expect("refresh_token");
    assert_rejected(&hub, refresh, "the refresh token as a bearer").await;
}

// ---- GET /token ----

#[tokio::test]
async fn an_anonymous_token_answer_has_the_spec_fields() {
    let hub = hub_with_repos().await;
    let reply = get_token(&hub, &Cred::Anonymous, &[&repo_scope(PUBLIC, "pull")]).await;
    reply.expect_status(200, "anonymous token");
    let answer = reply.json();
    let token = answer["token"].as_str().expect("token");
    assert_eq!(
        answer["access_token"].as_str(),
        Some(token),
        "access_token is the same token: {answer}"
    );
    assert!(answer["expires_in"].as_u64().is_some_and(|s| s > 0), "expires_in: {answer}");
    let issued_at = answer["issued_at"].as_str().expect("issued_at");
    assert!(
        issued_at.contains('T') && issued_at.ends_with('Z'),
        "issued_at is RFC 3339 UTC: {issued_at}"
    );
    assert_eq!(payload(token)["sub"], "", "an anonymous token names no one");
}

#[tokio::test]
async fn anonymous_gets_pull_on_a_public_repo_and_nothing_on_a_private_one() {
    let hub = hub_with_repos().await;
    let scopes = [repo_scope(PUBLIC, "pull,push"), repo_scope(PRIVATE, "pull,push")];
    let reply = get_token(&hub, &Cred::Anonymous, &[&scopes[0], &scopes[1]]).await;
    reply.expect_status(200, "asking for more than allowed is not an error");
    let token = reply.json()["token"].as_str().expect("token").to_string();
    assert_eq!(granted(&token, PUBLIC), ["pull"]);
    assert!(granted(&token, PRIVATE).is_empty(), "private repo: {:?}", granted(&token, PRIVATE));
}

#[tokio::test]
async fn the_site_admin_gets_pull_push_and_delete() {
    let hub = hub_with_repos().await;
    let token = hub
        .token(&Cred::admin(), &[repo_scope(PRIVATE, "pull,push,delete")])
        .await
        .expect("admin token");
    assert_eq!(granted(&token, PRIVATE), ["pull", "push", "delete"]);
}

#[tokio::test]
async fn a_wrong_password_at_the_token_endpoint_is_401() {
    let hub = hub_with_repos().await;
    let reply =
        get_token(&hub, &Cred::basic("admin", "not-the-password"), &[&repo_scope(PRIVATE, "pull")])
            .await;
    reply.expect_status(401, "wrong password");
}

#[tokio::test]
async fn a_logged_in_user_is_granted_the_catalog() {
    let hub = hub_with_repos().await;
    hub.create_user("alice", "alice-Secret-1").await;
    let token = hub
        .token(&Cred::basic("alice", "alice-Secret-1"), &["registry:catalog:*".to_string()])
        .await
        .expect("token");
    let claims = payload(&token);
    let catalog = json!({"type": "registry", "name": "catalog", "actions": ["*"]});
    assert!(
        claims["access"].as_array().expect("access").contains(&catalog),
        "catalog access in {claims}"
    );
    hub.send(hub.v2(Method::GET, "/v2/_catalog", Some(&token)))
        .await
        .expect_status(200, "catalog with the token");
}

#[tokio::test]
async fn several_scopes_in_one_parameter_are_all_granted() {
    let hub = hub_with_repos().await;
    let joined = format!("{} {}", repo_scope(PUBLIC, "pull"), repo_scope(PRIVATE, "pull,push"));
    let token = hub.token(&Cred::admin(), &[joined]).await.expect("token");
    assert_eq!(granted(&token, PUBLIC), ["pull"]);
    assert_eq!(granted(&token, PRIVATE), ["pull", "push"]);
}

#[tokio::test]
async fn a_malformed_scope_is_400() {
    let hub = hub_with_repos().await;
    let reply = get_token(&hub, &Cred::admin(), &["repository:UPPER/case:pull"]).await;
    reply.expect_status(400, "malformed scope");
}

// ---- POST /token ----

#[tokio::test]
async fn the_password_grant_with_offline_access_returns_a_refresh_token() {
    let hub = hub_with_repos().await;
    let reply = password_grant(
        &hub,
        "admin",
        imagehub_testkit::ADMIN_PASSWORD,
        &repo_scope(PRIVATE, "pull"),
        true,
    )
    .await;
    reply.expect_status(200, "password grant");
    let answer = reply.json();
    assert!(
        answer["refresh_token"].as_str().is_some_and(|t| !t.is_empty()),
        "refresh_token in {answer}"
    );
    assert_accepted(
        &hub,
        answer["access_token"].as_str().expect("access_token"),
        "the access token of the grant",
    )
    .await;
}

#[tokio::test]
async fn the_refresh_token_grant_returns_a_working_access_token() {
    let hub = hub_with_repos().await;
    let reply = password_grant(
        &hub,
        "admin",
        imagehub_testkit::ADMIN_PASSWORD,
        &repo_scope(PRIVATE, "pull"),
        true,
    )
    .await;
    let refresh_token = reply.expect_status(200, "password grant").json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("service", "imagehub"),
        ("scope", &repo_scope(PRIVATE, "pull")),
        ("client_id", "test"),
    ];
    let reply = hub.send(hub.client.post(hub.url("/token")).form(&form)).await;
    reply.expect_status(200, "refresh grant");
    assert_accepted(
        &hub,
        reply.json()["access_token"].as_str().expect("access_token"),
        "the refreshed access token",
    )
    .await;
}

#[tokio::test]
async fn a_password_change_ends_refresh_tokens() {
    let hub = hub_with_repos().await;
    let alice = alice_with_app(&hub).await;
    let Cred::Basic(_, old_password) = &alice else { unreachable!() };
    let reply =
        password_grant(&hub, "alice", old_password, &repo_scope("alice/app", "pull"), true).await;
    let refresh_token = reply.expect_status(200, "password grant").json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    hub.api(&alice, Method::PATCH, "/api/v1/user", Some(json!({"password": "a-new-Password-2"})))
        .await
        .expect_status(200, "change password");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("service", "imagehub"),
        ("client_id", "test"),
    ];
    hub.send(hub.client.post(hub.url("/token")).form(&form))
        .await
        .expect_status(401, "refresh after the password changed");
    password_grant(&hub, "alice", old_password, &repo_scope("alice/app", "pull"), false)
        .await
        .expect_status(401, "the old password");
    password_grant(&hub, "alice", "a-new-Password-2", &repo_scope("alice/app", "pull"), false)
        .await
        .expect_status(200, "the new password");
}

#[tokio::test]
async fn a_token_for_another_service_is_400() {
    let hub = hub_with_repos().await;
    let reply = hub
        .send(
            hub.client
                .get(hub.url("/token"))
                .query(&[("service", "elsewhere"), ("scope", &repo_scope(PUBLIC, "pull"))]),
        )
        .await;
    reply.expect_status(400, "another service");
}

#[tokio::test]
async fn a_bearer_header_at_the_token_endpoint_is_401_with_a_basic_challenge() {
    let hub = hub_with_repos().await;
    let reply = hub.send(hub.client.get(hub.url("/token")).bearer_auth("abc.def.ghi")).await;
    reply.expect_status(401, "bearer at /token");
    assert!(
        reply.header("www-authenticate").is_some_and(|c| c.starts_with("Basic realm=")),
        "{:?}",
        reply.header("www-authenticate")
    );
}

#[tokio::test]
async fn an_unsupported_grant_type_is_400() {
    let hub = hub_with_repos().await;
    let form =
        [("grant_type", "client_credentials"), ("service", "imagehub"), ("client_id", "test")];
    hub.send(hub.client.post(hub.url("/token")).form(&form))
        .await
        .expect_status(400, "client_credentials grant");
}

#[tokio::test]
async fn the_password_grant_with_a_wrong_password_is_401() {
    let hub = hub_with_repos().await;
    password_grant(&hub, "admin", "not-the-password", &repo_scope(PRIVATE, "pull"), false)
        .await
        .expect_status(401, "wrong password");
}

#[tokio::test]
async fn an_access_token_secret_works_as_the_password_of_the_password_grant() {
    let hub = hub_with_repos().await;
    let alice = alice_with_app(&hub).await;
    let (_, secret) = hub.create_token(&alice, "ci", &["pull"], None).await;
    let reply =
        password_grant(&hub, "alice", &secret, &repo_scope("alice/app", "pull,push"), false).await;
    reply.expect_status(200, "password grant with the secret");
    let token = reply.json()["access_token"].as_str().expect("access_token").to_string();
    assert_eq!(granted(&token, "alice/app"), ["pull"], "the token's own limits apply");
    get_manifest(&hub, "alice/app", Some(&token)).await.expect_status(200, "pull with it");
}

// ---- JWKS ----

#[tokio::test]
async fn the_jwks_publishes_the_key_tokens_are_signed_with() {
    let hub = hub_with_repos().await;
    let token = hub.token(&Cred::admin(), &[repo_scope(PRIVATE, "pull")]).await.expect("token");
    let jwks = hub.send(hub.client.get(hub.url("/.well-known/jwks.json"))).await;
    jwks.expect_status(200, "jwks");
    let keys = jwks.json()["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 1, "one key: {keys:?}");
    let key = &keys[0];
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("EC"), Some("P-256")), "{key}");
    assert_eq!(
        jwt_header(&token).kid.as_deref(),
        key["kid"].as_str(),
        "the JWT's kid names the published key"
    );

    let decoding = DecodingKey::from_ec_components(
        key["x"].as_str().expect("x"),
        key["y"].as_str().expect("y"),
    )
    .expect("JWK to key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["imagehub"]);
    validation.set_issuer(&["imagehub"]);
    let verified = jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
        .expect("the token verifies against the JWKS");
    assert_eq!(verified.claims["sub"], "admin");
}

// ---- registry JWTs on the management API ----

#[tokio::test]
async fn a_registry_jwt_cannot_mint_access_tokens() {
    let hub = Hub::start();
    hub.create_user("alice", "alice-Secret-1").await;
    let jwt = hub
        .token(&Cred::basic("alice", "alice-Secret-1"), &[])
        .await
        .expect("a token with no access at all");
    let body = json!({"name": "minted", "scopes": ["pull", "push", "delete"]});
    let reply = hub
        .send(hub.client.post(hub.url("/api/v1/user/tokens")).bearer_auth(&jwt).json(&body))
        .await;
    assert!(
        !reply.status.is_success(),
        "a registry JWT minted a permanent access token: {}",
        reply.text()
    );
}

#[tokio::test]
async fn a_registry_jwt_cannot_change_the_password() {
    let hub = Hub::start();
    hub.create_user("alice", "alice-Secret-1").await;
    let jwt = hub
        .token(&Cred::basic("alice", "alice-Secret-1"), &[])
        .await
        .expect("a token with no access at all");
    let body = json!({"password": "taken-over-Secret-1"});
    let reply =
        hub.send(hub.client.patch(hub.url("/api/v1/user")).bearer_auth(&jwt).json(&body)).await;
    assert!(!reply.status.is_success(), "a registry JWT changed the password: {}", reply.text());
    hub.api(&Cred::basic("alice", "alice-Secret-1"), Method::GET, "/api/v1/user", None)
        .await
        .expect_status(200, "the old password still works");
}

// ---- access tokens: revocation and expiry ----

#[tokio::test]
async fn revoking_an_access_token_ends_its_jwts_at_once() {
    let hub = hub_with_repos().await;
    let alice = alice_with_app(&hub).await;
    let (id, secret) = hub.create_token(&alice, "ci", &["pull", "push"], None).await;
    let through_token = Cred::basic("alice", &secret);
    let jwt = hub
        .token(&through_token, &[repo_scope("alice/app", "pull")])
        .await
        .expect("token through the secret");
    get_manifest(&hub, "alice/app", Some(&jwt))
        .await
        .expect_status(200, "pull before the revocation");

    hub.api(&alice, Method::DELETE, &format!("/api/v1/user/tokens/{id}"), None)
        .await
        .expect_status(204, "revoke");

    assert_eq!(
        get_manifest(&hub, "alice/app", Some(&jwt)).await.status,
        StatusCode::UNAUTHORIZED,
        "the JWT after the revocation"
    );
    get_token(&hub, &through_token, &[&repo_scope("alice/app", "pull")])
        .await
        .expect_status(401, "/token with the revoked secret");
}

#[tokio::test]
async fn an_access_token_cannot_be_created_already_expired() {
    let hub = hub_with_repos().await;
    let alice = alice_with_app(&hub).await;
    let body = json!({"name": "stale", "scopes": ["pull"], "expires_at": unix_now() as i64 - 60});
    hub.api(&alice, Method::POST, "/api/v1/user/tokens", Some(body))
        .await
        .expect_status(400, "a token that expired a minute ago");
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_ends_its_jwts() {
    let hub = hub_with_repos().await;
    let alice = alice_with_app(&hub).await;
    let (id, secret) = hub.create_token(&alice, "ci", &["pull"], None).await;
    let through_token = Cred::basic("alice", &secret);
    let jwt = hub
        .token(&through_token, &[repo_scope("alice/app", "pull")])
        .await
        .expect("token while it lives");

    hub.expire_token(id).await;

    get_token(&hub, &through_token, &[&repo_scope("alice/app", "pull")])
        .await
        .expect_status(401, "/token with the expired secret");
    assert_eq!(
        get_manifest(&hub, "alice/app", Some(&jwt)).await.status,
        StatusCode::UNAUTHORIZED,
        "a JWT issued before it expired"
    );
}

#[tokio::test]
async fn a_token_request_cannot_ask_for_thousands_of_scopes() {
    let hub = Hub::start();
    let many: Vec<String> = (0..1000).map(|i| repo_scope(&format!("flood/r{i}"), "pull")).collect();
    let scopes: Vec<&str> = many.iter().map(String::as_str).collect();
    let reply = get_token(&hub, &Cred::Anonymous, &scopes).await;
    reply.expect_status(400, "1,000 scopes in one token request");
    assert!(reply.text().contains("at most 32"), "{}", reply.text());
    get_token(&hub, &Cred::Anonymous, &scopes[..32]).await.expect_status(200, "32 scopes");
}

// ---- login throttling ----

#[tokio::test]
async fn repeated_wrong_passwords_slow_the_user_from_that_address_but_not_others() {
    let hub = Hub::start_with(|c| c.auth.max_failed_logins = 3);
    hub.create_user("alice", "alice-Secret-1").await;
    hub.create_user("bob", "bob-Secret-1").await;
    let scope = repo_scope("alice/app", "pull");
    for attempt in 1..=3 {
        get_token(&hub, &Cred::basic("alice", "wrong-password"), &[&scope])
            .await
            .expect_status(401, &format!("wrong password #{attempt}"));
    }

    let blocked = get_token(&hub, &Cred::basic("alice", "alice-Secret-1"), &[&scope]).await;
    blocked.expect_status(429, "the right password while blocked");
    let retry_after: u64 = blocked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");

    let bob =
        get_token(&hub, &Cred::basic("bob", "bob-Secret-1"), &[&repo_scope("bob/app", "pull")])
            .await;
    bob.expect_status(200, "another user from the same address");
}

/// `/token` as seen from `address` (through a trusted proxy's `X-Forwarded-For`).
async fn token_from(hub: &Hub, address: &str, user: &str, secret: &str) -> Reply {
    let request = hub
        .client
        .get(hub.url("/token"))
        .query(&[("service", "imagehub"), ("scope", "repository:alice/app:pull")]);
    hub.send(request.basic_auth(user, Some(secret)).header("x-forwarded-for", address)).await
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_real_user_out() {
    let hub = Hub::start_with(|c| {
        c.auth.max_failed_logins = 5;
        c.server.trust_proxy_headers = true;
    });
    hub.create_user("alice", "alice-Secret-1").await;
    let (_, ci_token) =
        hub.create_token(&Cred::basic("alice", "alice-Secret-1"), "ci", &["pull"], None).await;
    let attacker = "203.0.113.66";
    for attempt in 1..=5 {
        token_from(&hub, attacker, "alice", "guess")
            .await
            .expect_status(401, &format!("guess #{attempt}"));
    }
    token_from(&hub, attacker, "alice", "guess")
        .await
        .expect_status(429, "the guesser is slowed down");
    token_from(&hub, attacker, "alice", "alice-Secret-1")
        .await
        .expect_status(429, "even the right password from the guesser's address");
    // alice, from her own address, and her CI's access token, from anywhere, still work.
    token_from(&hub, "198.51.100.7", "alice", "alice-Secret-1")
        .await
        .expect_status(200, "alice from her own address");
    token_from(&hub, attacker, "alice", &ci_token)
        .await
        .expect_status(200, "her access token, even from the guesser's address");
    token_from(&hub, "198.51.100.8", "alice", &ci_token)
        .await
        .expect_status(200, "her access token from elsewhere");
}

#[tokio::test]
async fn an_account_guessed_from_many_addresses_is_slowed_and_audited() {
    let hub = Hub::start_with(|c| {
        c.auth.max_failed_logins = 2;
        c.server.trust_proxy_headers = true;
    });
    hub.create_user("alice", "alice-Secret-1").await;
    // 2 per address, 20 times 2 per account: 40 guesses from 20 addresses.
    for i in 0..40 {
        token_from(&hub, &format!("203.0.113.{}", i / 2), "alice", "guess")
            .await
            .expect_status(401, &format!("guess #{i}"));
    }
    token_from(&hub, "198.51.100.7", "alice", "alice-Secret-1")
        .await
        .expect_status(429, "the account-wide limit, far above the per-address one");
    let audit = hub.api(&Cred::admin(), reqwest::Method::GET, "/api/v1/audit", None).await;
    audit.expect_status(200, "audit log");
    let throttled = audit.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == "login.throttled")
        .count();
    assert_eq!(throttled, 1, "{}", audit.text());
}

// ---- Basic credentials straight to /v2 ----

#[tokio::test]
async fn basic_credentials_pass_the_version_check() {
    let hub = Hub::start();
    let reply = hub
        .send(
            hub.client
                .get(hub.url("/v2/"))
                .basic_auth("admin", Some(imagehub_testkit::ADMIN_PASSWORD)),
        )
        .await;
    reply.expect_status(200, "GET /v2/ with Basic");
}

#[tokio::test]
async fn the_version_check_without_credentials_challenges_with_the_token_realm() {
    let hub = Hub::start();
    let reply = hub.send(hub.client.get(hub.url("/v2/"))).await;
    reply.expect_status(401, "GET /v2/ anonymously");
    let expected = format!(r#"Bearer realm="{}/token",service="imagehub""#, hub.server().url());
    assert_eq!(reply.header("www-authenticate").as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn a_blob_push_with_basic_credentials_works() {
    let hub = hub_with_repos().await;
    let data = b"a blob pushed with Basic credentials";
    let digest = sha256(data);
    let admin = |request: reqwest::RequestBuilder| {
        request.basic_auth("admin", Some(imagehub_testkit::ADMIN_PASSWORD))
    };

    let start =
        hub.send(admin(hub.client.post(hub.url(&format!("/v2/{PRIVATE}/blobs/uploads/"))))).await;
    start.expect_status(202, "start the upload");
    let location = start.header("location").expect("upload location");
    let target = if location.starts_with('/') { hub.url(&location) } else { location };
    let separator = if target.contains('?') { '&' } else { '?' };
    let finish = hub
        .send(admin(
            hub.client.put(format!("{target}{separator}digest={digest}")).body(data.to_vec()),
        ))
        .await;
    finish.expect_status(201, "finish the upload");

    let blob =
        hub.send(admin(hub.client.get(hub.url(&format!("/v2/{PRIVATE}/blobs/{digest}"))))).await;
    blob.expect_status(200, "read the blob back");
    assert_eq!(blob.body, data);
}

#[tokio::test]
async fn a_malformed_basic_header_is_400() {
    let hub = Hub::start();
    let reply =
        hub.send(hub.client.get(hub.url("/v2/")).header("authorization", "Basic !!!")).await;
    reply.expect_status(400, "Authorization: Basic !!!");
}

// ---- the challenge's realm ----

#[tokio::test]
async fn the_configured_public_url_is_the_realm() {
    let hub = Hub::start_with(|c| c.server.public_url = "https://registry.example.com".into());
    let reply = hub.send(hub.client.get(hub.url("/v2/"))).await;
    assert_eq!(realm(&reply), "https://registry.example.com/token");
}

#[tokio::test]
async fn trusted_proxy_headers_make_the_realm() {
    let hub = Hub::start_with(|c| c.server.trust_proxy_headers = true);
    let reply = hub.send(forwarded(&hub)).await;
    assert_eq!(realm(&reply), "https://hub.example.org/token");
}

#[tokio::test]
async fn proxy_headers_are_ignored_unless_trusted() {
    let hub = Hub::start();
    let reply = hub.send(forwarded(&hub)).await;
    assert_eq!(realm(&reply), format!("{}/token", hub.server().url()));
}

#[tokio::test]
async fn a_forwarded_host_list_uses_its_first_entry() {
    let hub = Hub::start_with(|c| c.server.trust_proxy_headers = true);
    let request = hub.client.get(hub.url("/v2/")).header("x-forwarded-proto", "https");
    let reply =
        hub.send(request.header("x-forwarded-host", "hub.example.org, internal.example.net")).await;
    assert_eq!(realm(&reply), "https://hub.example.org/token");
}

// ---- the challenge's scope ----

#[tokio::test]
async fn an_anonymous_push_is_challenged_for_pull_and_push() {
    let hub = hub_with_repos().await;
    let reply = hub.send(hub.v2(Method::POST, &format!("/v2/{PUBLIC}/blobs/uploads/"), None)).await;
    reply.expect_status(401, "anonymous push");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains(&format!(r#"scope="repository:{PUBLIC}:pull,push""#)),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "no error for an anonymous caller: {challenge}");
}

#[tokio::test]
async fn a_pull_only_token_gets_insufficient_scope_on_push() {
    let hub = hub_with_repos().await;
    let token =
        hub.token(&Cred::admin(), &[repo_scope(PUBLIC, "pull")]).await.expect("pull-only token");
    let reply =
        hub.send(hub.v2(Method::POST, &format!("/v2/{PUBLIC}/blobs/uploads/"), Some(&token))).await;
    reply.expect_status(401, "push with a pull-only token");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(
        challenge.contains(&format!(r#"scope="repository:{PUBLIC}:pull,push""#)),
        "{challenge}"
    );
}

// ---- helpers ----

/// A hub with `acme` (private by default), `acme/private-app:v1` and the public
/// `acme/public-app:v1`.
async fn hub_with_repos() -> Hub {
    let hub = Hub::start();
    let admin = Cred::admin();
    hub.api(
        &admin,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "acme", "default_visibility": "private"})),
    )
    .await
    .expect_status(201, "create acme");
    for repo in [PRIVATE, PUBLIC] {
        let token = hub.token(&admin, &[repo_scope(repo, "pull,push")]).await.expect("admin token");
        hub.push_image(Some(&token), repo, TAG).await.expect("admin pushes");
    }
    hub.api(
        &admin,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/public-app",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "make public-app public");
    hub
}

/// [`hub_with_repos`] and the admin's pull token for the private repository.
async fn hub_and_pull_token() -> (Hub, String) {
    let hub = hub_with_repos().await;
    let token =
        hub.token(&Cred::admin(), &[repo_scope(PRIVATE, "pull")]).await.expect("admin pull token");
    (hub, token)
}

/// Creates `alice` with `alice/app:v1` (pushed by the admin); returns her password login.
async fn alice_with_app(hub: &Hub) -> Cred {
    hub.create_user("alice", "alice-Secret-1").await;
    let token = hub
        .token(&Cred::admin(), &[repo_scope("alice/app", "pull,push")])
        .await
        .expect("admin token");
    hub.push_image(Some(&token), "alice/app", TAG).await.expect("admin pushes alice/app");
    Cred::basic("alice", "alice-Secret-1")
}

async fn get_manifest(hub: &Hub, repo: &str, token: Option<&str>) -> Reply {
    hub.send(
        hub.v2(Method::GET, &format!("/v2/{repo}/manifests/{TAG}"), token)
            .header("accept", OCI_MANIFEST),
    )
    .await
}

/// The token pulls the private manifest.
async fn assert_accepted(hub: &Hub, token: &str, what: &str) {
    get_manifest(hub, PRIVATE, Some(token)).await.expect_status(200, what);
}

/// The token is refused on the private manifest with a 401 and a Bearer challenge.
async fn assert_rejected(hub: &Hub, token: &str, what: &str) {
    let reply = get_manifest(hub, PRIVATE, Some(token)).await;
    reply.expect_status(401, what);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm="), "{what}: challenge {challenge:?}");
}

/// `GET /token` with any scopes, the reply whatever it is.
async fn get_token(hub: &Hub, cred: &Cred, scopes: &[&str]) -> Reply {
    let mut query = vec![("service", "imagehub")];
    query.extend(scopes.iter().map(|s| ("scope", *s)));
    let request = hub.client.get(hub.url("/token")).query(&query);
    let request = match cred {
        Cred::Anonymous => request,
        Cred::Basic(user, secret) => request.basic_auth(user, Some(secret)),
    };
    hub.send(request).await
}

/// `POST /token` with the OAuth2 password grant.
async fn password_grant(
    hub: &Hub,
    user: &str,
    password: &str,
    scope: &str,
    offline: bool,
) -> Reply {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
        ("service", "imagehub"),
        ("scope", scope),
        ("client_id", "test"),
    ];
    if offline {
        form.push(("access_type", "offline"));
    }
    hub.send(hub.client.post(hub.url("/token")).form(&form)).await
}

/// A JWT's claims, decoded without checking anything.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url payload"))
        .expect("JSON payload")
}

fn jwt_header(token: &str) -> Header {
    jsonwebtoken::decode_header(token).expect("JWT header")
}

/// The actions the token's `access` claim grants on `repo` (none if it has no entry).
fn granted(token: &str, repo: &str) -> Vec<String> {
    let claims = payload(token);
    let entries = claims["access"].as_array().expect("access claim");
    let Some(entry) = entries.iter().find(|e| e["type"] == "repository" && e["name"] == repo)
    else {
        return Vec::new();
    };
    entry["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a.as_str().expect("action").to_string())
        .collect()
}

/// `token`'s claims after `edit`, signed with the server's own key (read from its data
/// directory) under the same `kid`.
fn resign_with_server_key(hub: &Hub, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let pem = std::fs::read(hub.server().data_dir().join("token-signing-key.pem"))
        .expect("read the server's signing key");
    let mut claims = payload(token);
    edit(&mut claims);
    sign_es256(&pem, jwt_header(token).kid, &claims)
}

fn sign_es256(pem: &[u8], kid: Option<String>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(pem).expect("EC PEM key"))
        .expect("sign")
}

/// `GET /v2/` as a reverse proxy forwards it from `https://hub.example.org`.
fn forwarded(hub: &Hub) -> reqwest::RequestBuilder {
    hub.client
        .get(hub.url("/v2/"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "hub.example.org")
}

/// The realm of a 401's Bearer challenge.
fn realm(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    let challenge = reply.header("www-authenticate").expect("challenge");
    let rest = challenge
        .strip_prefix(r#"Bearer realm=""#)
        .unwrap_or_else(|| panic!("not a Bearer challenge: {challenge}"));
    rest.split('"').next().unwrap_or_default().to_string()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}
