//! Importing from the web UI over plain HTTP: a source is checked (its platforms and
//! size) before it is imported, the job list shows the outcome, sync rules are made
//! there, and only members reach the pages and only pushers change anything.

use reqwest::Method;
use serde_json::Value;

use crate::imports::push_index;
use crate::support::distribution::Distribution;
use crate::support::hub::Hub;
use crate::support::registry::Registry;
use crate::support::reply::Reply;
use crate::web::{csrf_of, log_in, no_redirects, page_as, session_cookie};

async fn post(hub: &Hub, cookie: &str, path: &str, form: &[(&str, &str)]) -> Reply {
    hub.send(no_redirects().post(hub.url(path)).header("cookie", cookie).form(form)).await
}

#[tokio::test]
async fn a_source_is_checked_then_imported_with_the_platforms_chosen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    push_index(&Registry::at(&upstream.url()), "team/multi", "v2").await;
    let host = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;
    let cookie = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    let page = page_as(&hub, &cookie, "/o/acme/import").await.expect_status(200, "the form").text();
    let csrf = csrf_of(&page);
    let source = format!("{}/team/multi:v2", upstream.host);

    let check = [("csrf", csrf.as_str()), ("intent", "check"), ("source", source.as_str())];
    let checked =
        post(&hub, &cookie, "/o/acme/import", &check).await.expect_status(200, "checked").text();
    assert!(
        checked.contains("value=\"linux/amd64\" checked")
            && checked.contains("value=\"linux/arm64\" checked"),
        "{checked}"
    );
    assert!(checked.contains("sha256:"), "the digest: {checked}");
    let missing = [
        ("csrf", csrf.as_str()),
        ("intent", "check"),
        ("source", &format!("{}/team/multi:nosuch", upstream.host)),
    ];
    let refused = post(&hub, &cookie, "/o/acme/import", &missing)
        .await
        .expect_status(400, "no such tag")
        .text();
    assert!(refused.contains("not found upstream"), "{refused}");

    let import = [
        ("csrf", csrf.as_str()),
        ("intent", "import"),
        ("source", source.as_str()),
        ("offered", "linux/amd64"),
        ("offered", "linux/arm64"),
        ("platform", "linux/arm64"),
    ];
    let queued = post(&hub, &cookie, "/o/acme/import", &import).await;
    queued.expect_status(303, "queued");
    assert_eq!(queued.header("location").as_deref(), Some("/o/acme/imports"));
    let jobs = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/imports", None).await.json();
    let url = jobs["jobs"][0]["url"].as_str().expect("a job").to_string();
    let job: Value = hub.api(&olga, Method::GET, &format!("{url}?wait=60"), None).await.json();
    assert_eq!(
        (job["state"].as_str(), job["platforms"][0].as_str()),
        (Some("succeeded"), Some("linux/arm64")),
        "{job}"
    );
    let list =
        page_as(&hub, &cookie, "/o/acme/imports").await.expect_status(200, "the jobs").text();
    assert!(list.contains("state-succeeded") && list.contains("acme/multi:v2"), "{list}");
    assert!(!list.contains("data-live-imports"), "nothing left running: no refresh");

    let rule = [
        ("csrf", csrf.as_str()),
        ("intent", "rule"),
        ("upstream", &format!("{}/team/multi", upstream.host)),
        ("include", "^v"),
        ("every_minutes", "60"),
    ];
    post(&hub, &cookie, "/o/acme/imports", &rule).await.expect_status(303, "a rule");
    let list = page_as(&hub, &cookie, "/o/acme/imports").await.text();
    assert!(list.contains("include ^v") && list.contains("every 60 min"), "{list}");
    let bad =
        [("csrf", csrf.as_str()), ("intent", "rule"), ("upstream", "nginx"), ("include", "(")];
    let refused =
        post(&hub, &cookie, "/o/acme/imports", &bad).await.expect_status(400, "a bad regex").text();
    assert!(refused.contains("include:"), "{refused}");
}

#[tokio::test]
async fn only_members_reach_the_import_pages_and_only_with_their_session() {
    let hub = Hub::start();
    hub.olga_with_public_acme().await;
    hub.create_user("mallory", "mallory-password-1").await;
    let mallory = session_cookie(&log_in(&hub, "mallory", "mallory-password-1").await);
    let olga = session_cookie(&log_in(&hub, "olga", "olga-password-1").await);
    page_as(&hub, &mallory, "/o/acme/import").await.expect_status(404, "an outsider");
    page_as(&hub, &mallory, "/o/acme/imports").await.expect_status(404, "an outsider");
    let csrf = csrf_of(&page_as(&hub, &mallory, "/").await.text());
    let form = [("csrf", csrf.as_str()), ("intent", "import"), ("source", "nginx")];
    post(&hub, &mallory, "/o/acme/import", &form).await.expect_status(404, "an outsider's import");
    let forged = [("csrf", "forged"), ("intent", "import"), ("source", "nginx")];
    post(&hub, &olga, "/o/acme/import", &forged).await.expect_status(403, "a forged form");
    let anonymous = hub.send(no_redirects().get(hub.url("/o/acme/imports"))).await;
    anonymous.expect_status(303, "to the login");
    let page = page_as(&hub, &olga, "/o/acme").await.text();
    assert!(page.contains("href=\"/o/acme/import\""), "members find the import page");
}
