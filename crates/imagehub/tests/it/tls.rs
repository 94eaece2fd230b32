//! HTTPS: with `server.tls_cert` and `server.tls_key` the port speaks TLS only, and the
//! registry API works over it end to end; the web UI's session cookie is Secure there.

use std::time::Duration;

use imagehub_testkit::TestServer;

use crate::support::registry::{Registry, random_bytes};

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files into a
/// temporary directory; returns the directory (kept alive by the caller) and the cert PEM.
fn self_signed() -> (tempfile::TempDir, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified =
        rcgen::generate_simple_self_signed(names).expect("generate a self-signed certificate");
    let cert_pem = certified.cert.pem();
    let dir = tempfile::tempdir().expect("create temp dir for TLS files");
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).expect("write cert.pem");
    std::fs::write(dir.path().join("key.pem"), certified.signing_key.serialize_pem())
        .expect("write key.pem");
    (dir, cert_pem)
}

fn start_tls_server() -> (TestServer, tempfile::TempDir, String) {
    let (dir, cert_pem) = self_signed();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = TestServer::start_with(|c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
        c.auth.enabled = false;
    });
    (server, dir, cert_pem)
}

/// A client that trusts only the test certificate, pointed at `https://localhost:PORT`.
fn https_registry(server: &TestServer, cert_pem: &str) -> Registry {
    let mut reg = Registry::at(&format!("https://localhost:{}", server.addr().port()));
    reg.client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("parse test certificate"),
        )
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build HTTPS client");
    reg
}

#[tokio::test]
async fn version_check_and_blob_push_pull_work_over_https() {
    let (server, _tls_files, cert_pem) = start_tls_server();
    let reg = https_registry(&server, &cert_pem);

    reg.get("/v2/").await.expect_status_in(&[200], "GET /v2/ over HTTPS");

    let data = random_bytes(70_000, 3);
    let digest = reg.push_blob("t/tls", &data).await;
    let blob = reg.get(&format!("/v2/t/tls/blobs/{digest}")).await;
    blob.expect_status_in(&[200], "GET of the pushed blob over HTTPS");
    assert_eq!(blob.body, data, "the blob pulled over HTTPS is the one pushed");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_not_served() {
    let (server, _tls_files, _) = start_tls_server();
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("build client");
    // Usually an error: the request is not a ClientHello, so the handshake fails and the
    // connection closes (after a TLS alert no HTTP client can parse).
    if let Ok(reply) = client.get(format!("{}/v2/", server.url())).send().await {
        assert_ne!(reply.status(), 200, "plain HTTP on the TLS port was answered: {reply:?}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https() {
    let (dir, cert_pem) = self_signed();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = TestServer::start_with(|c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
        c.auth.enabled = true;
    });
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("parse test certificate"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build HTTPS client");
    let url = format!("https://localhost:{}/login", server.addr().port());
    let form = [("username", "admin"), ("password", imagehub_testkit::ADMIN_PASSWORD)];
    let reply = client.post(&url).form(&form).send().await.expect("log in over HTTPS");
    assert_eq!(reply.status(), 303, "logged in");
    let cookie = reply.headers()["set-cookie"].to_str().expect("ASCII cookie").to_string();
    for flag in ["Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(flag), "{cookie:?} lacks {flag}");
    }
}

/// Imports from a registry with a self-signed certificate: listed as insecure, it is
/// reached over HTTPS without verifying the certificate; listed as secure, the
/// certificate is checked and the import fails saying why.
#[tokio::test]
async fn an_insecure_registry_is_imported_from_over_unverified_tls() {
    use crate::support::hub::Hub;
    use reqwest::Method;
    use serde_json::json;

    let (upstream, _tls_files, cert_pem) = start_tls_server();
    let reg = https_registry(&upstream, &cert_pem);
    let (_, digest) = crate::support::registry::push_image(&reg, "team/app", "v1", "tls").await;
    let host = format!("localhost:{}", upstream.addr().port());
    let source = json!({"source_url": format!("{host}/team/app:v1")});
    for (insecure, expected) in [(true, "succeeded"), (false, "failed")] {
        let listed = host.clone();
        let hub = Hub::start_with(move |c| {
            let settings =
                imagehub_server::config::ImportRegistryConfig { mirror: String::new(), insecure };
            c.import.registries.insert(listed, settings);
        });
        let olga = hub.olga_with_public_acme().await;
        let started = hub
            .api(&olga, Method::POST, "/api/v1/orgs/acme/images/import", Some(source.clone()))
            .await;
        let location = started.expect_status(202, "queued").header("location").expect("url");
        let job = hub.api(&olga, Method::GET, &format!("{location}?wait=30"), None).await.json();
        assert_eq!(job["state"], expected, "insecure = {insecure}: {job}");
        match insecure {
            true => assert_eq!(job["digest"].as_str(), Some(digest.as_str())),
            false => {
                assert!(job["reason"].as_str().is_some_and(|r| r.contains("certificate")), "{job}")
            }
        }
    }
}
