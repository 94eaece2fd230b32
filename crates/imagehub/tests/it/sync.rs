//! Scheduled sync rules against CNCF distribution, through a counting proxy: a rule
//! picks the tags its filters select, imports them, and on its next runs pulls only
//! tags whose digest changed (the unchanged ones cost a HEAD, no manifest GET).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::distribution::Distribution;
use crate::support::hub::{Cred, Hub};
use crate::support::proxy::Proxy;
use crate::support::registry::{Registry, push_image};

/// The newest finished run after `after`.
async fn next_run(hub: &Hub, cred: &Cred, rule: &str, after: i64) -> Value {
    let path = format!("{rule}/runs?wait=60&after={after}");
    let runs = hub.api(cred, Method::GET, &path, None).await.expect_status(200, "runs").json();
    let run = runs["runs"][0].clone();
    assert!(
        run["id"].as_i64() > Some(after) && run["state"] != "running",
        "a finished run: {runs}"
    );
    run
}

/// What the run did, as `tag=outcome` in its order.
fn outcomes(run: &Value) -> Vec<String> {
    let tags = run["tags"].as_array().expect("tags");
    tags.iter()
        .map(|t| {
            format!("{}={}", t["tag"].as_str().unwrap_or(""), t["outcome"].as_str().unwrap_or(""))
        })
        .collect()
}

async fn wait_group(hub: &Hub, cred: &Cred, run: &Value) -> Value {
    let group = run["group"].as_str().expect("a group of imports");
    hub.api(cred, Method::GET, &format!("{group}?wait=60"), None)
        .await
        .expect_status(200, "group")
        .json()
}

#[tokio::test]
async fn a_rule_imports_the_selected_tags_and_later_only_changed_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    for tag in ["v1.0.0", "v1.1.0", "v2.0.0-rc1", "latest"] {
        push_image(&registry, "team/app", tag, tag).await;
    }
    let proxy = Proxy::start(&upstream.url()).await;
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;

    let body = json!({"upstream": format!("{}/team/app", proxy.host), "include": "^v", "exclude": "rc", "newest": 2});
    let created = hub.api(&olga, Method::POST, "/api/v1/orgs/acme/sync-rules", Some(body)).await;
    let rule = created.expect_status(201, "a rule").json();
    let url = rule["url"].as_str().expect("url").to_string();
    assert_eq!(
        (rule["target"].as_str(), rule["interval_secs"].as_u64()),
        (Some("acme/app"), Some(3600)),
        "{rule}"
    );

    let first = next_run(&hub, &olga, &url, 0).await;
    assert_eq!(outcomes(&first), ["v1.1.0=queued", "v1.0.0=queued"], "{first}");
    assert_eq!(wait_group(&hub, &olga, &first).await["state"], "succeeded");
    let here = Registry::at(&hub.server().url());
    here.get_manifest("acme/app", "v1.1.0").await.expect_status(200, "imported");
    here.get_manifest("acme/app", "latest").await.expect_status(404, "not selected");

    let gets = proxy.count_prefix("GET", "/v2/team/app/manifests/");
    hub.api(&olga, Method::POST, &format!("{url}/run"), None).await.expect_status(202, "run now");
    let second = next_run(&hub, &olga, &url, first["id"].as_i64().expect("id")).await;
    assert_eq!(outcomes(&second), ["v1.1.0=unchanged", "v1.0.0=unchanged"], "{second}");
    assert!(second["group"].is_null(), "nothing to import: {second}");
    assert_eq!(
        proxy.count_prefix("GET", "/v2/team/app/manifests/"),
        gets,
        "no manifest GET for unchanged tags"
    );

    push_image(&registry, "team/app", "v1.2.0", "v1.2.0").await;
    hub.api(&olga, Method::POST, &format!("{url}/run"), None).await.expect_status(202, "run now");
    let third = next_run(&hub, &olga, &url, second["id"].as_i64().expect("id")).await;
    assert_eq!(outcomes(&third), ["v1.2.0=queued", "v1.1.0=unchanged"], "{third}");
    assert_eq!(wait_group(&hub, &olga, &third).await["state"], "succeeded");
    here.get_manifest("acme/app", "v1.2.0").await.expect_status(200, "the new tag");
}

#[tokio::test]
async fn rules_are_checked_and_kept_to_those_who_may_push() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let host = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;
    let source = format!("{}/team/app", upstream.host);
    let create =
        |body: Value| hub.api(&olga, Method::POST, "/api/v1/orgs/acme/sync-rules", Some(body));

    for (body, field) in [
        (json!({"upstream": format!("{source}:v1")}), "upstream"),
        (json!({"upstream": "Not Valid"}), "upstream"),
        (json!({"upstream": source, "include": "(unclosed"}), "include"),
        (json!({"upstream": source, "semver": "not a range"}), "semver"),
        (json!({"upstream": source, "interval_secs": 10}), "interval_secs"),
        (json!({"upstream": source, "cron": "61 * * * *"}), "cron"),
        (json!({"upstream": source, "cron": "0 3 * * *", "interval_secs": 600}), "cron"),
        (json!({"upstream": source, "newest": 0}), "newest"),
        (json!({"upstream": "127.0.0.1:1/x"}), "upstream"),
    ] {
        let refused = create(body.clone()).await;
        let error = refused.expect_status(400, &body.to_string()).json();
        assert_eq!(error["errors"][0]["detail"]["field"], field, "{body}: {error}");
    }
    let body = json!({"upstream": source, "cron": "0 3 * * *", "auth": {"username": "u", "password": "secret-pw"}, "enabled": false});
    let rule = create(body).await.expect_status(201, "a cron rule").json();
    assert_eq!(
        (rule["cron"].as_str(), rule["has_credentials"].as_bool()),
        (Some("0 3 * * *"), Some(true)),
        "{rule}"
    );
    assert!(!rule.to_string().contains("secret-pw"));
    let url = rule["url"].as_str().expect("url").to_string();

    hub.create_user("viewer", "viewer-password-1").await;
    hub.create_user("mallory", "mallory-password-1").await;
    let role = json!({"role": "viewer"});
    hub.api(&olga, Method::PUT, "/api/v1/orgs/acme/members/viewer", Some(role))
        .await
        .expect_status(200, "viewer");
    let viewer = Cred::basic("viewer", "viewer-password-1");
    let mallory = Cred::basic("mallory", "mallory-password-1");
    let body = json!({"upstream": source});
    hub.api(&viewer, Method::POST, "/api/v1/orgs/acme/sync-rules", Some(body.clone()))
        .await
        .expect_status(403, "a viewer");
    hub.api(&viewer, Method::GET, &url, None).await.expect_status(200, "a member reads it");
    hub.api(&viewer, Method::POST, &format!("{url}/run"), None)
        .await
        .expect_status(403, "but may not run it");
    hub.api(&mallory, Method::GET, &url, None).await.expect_status(404, "an outsider");
    hub.api(&mallory, Method::GET, "/api/v1/orgs/acme/sync-rules", None)
        .await
        .expect_status(404, "an outsider");

    // A change keeps the stored credentials unless new ones are given.
    let change = json!({"upstream": source, "newest": 3, "interval_secs": 600});
    let changed =
        hub.api(&olga, Method::PUT, &url, Some(change)).await.expect_status(200, "changed").json();
    assert_eq!(
        (changed["newest"].as_u64(), changed["has_credentials"].as_bool()),
        (Some(3), Some(true)),
        "{changed}"
    );
    assert!(changed["cron"].is_null());
    hub.api(&olga, Method::DELETE, &url, None).await.expect_status(204, "deleted");
    hub.api(&olga, Method::GET, &url, None).await.expect_status(404, "gone");
}

#[tokio::test]
async fn a_run_pauses_when_the_upstream_rate_limit_falls_below_the_floor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    push_image(&Registry::at(&upstream.url()), "team/app", "v1", "v1").await;
    let proxy = Proxy::start(&upstream.url()).await;
    proxy.rate_limit_remaining(5);
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;
    let body = json!({"upstream": format!("{}/team/app", proxy.host), "rate_limit_floor": 10});
    let rule = hub.api(&olga, Method::POST, "/api/v1/orgs/acme/sync-rules", Some(body)).await;
    let url = rule.expect_status(201, "a rule").json()["url"].as_str().expect("url").to_string();
    let run = next_run(&hub, &olga, &url, 0).await;
    assert_eq!(run["state"], "paused", "{run}");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("allows 5 more pulls, below the floor of 10")),
        "{run}"
    );
    assert!(run["group"].is_null(), "nothing imported: {run}");
    assert_eq!(proxy.count_prefix("GET", "/v2/team/app/manifests/"), 0, "only HEADs");
}
