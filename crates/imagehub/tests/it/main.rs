//! The one integration-test binary: every test starts a real imagehub server on an
//! ephemeral port (`imagehub_testkit::TestServer`) and talks to it over HTTP.

#[tokio::test]
async fn v2_answers_with_api_version() {
    let server = imagehub_testkit::TestServer::start();
    let response = reqwest::get(format!("{}/v2/", server.url())).await.expect("GET /v2/");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["docker-distribution-api-version"], "registry/2.0");
}
