//! Search over the catalogue: ranking (name, then keywords, then description and docs),
//! visibility (nobody finds what they may not pull), stable paging, and repositories
//! leaving the index with their last image.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::hub::{Cred, Hub, repo_scope};

async fn search(hub: &Hub, cred: &Cred, query: &str) -> Value {
    let path =
        format!("/api/v1/search?{}", serde_urlencoded_pairs(&[("q", query), ("per_page", "100")]));
    let reply = hub.api(cred, Method::GET, &path, None).await;
    reply.expect_status(200, "search");
    reply.json()
}

fn names(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect()
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20")))
        .collect::<Vec<_>>()
        .join("&")
}

/// A public organization `acme` with repositories that match "redis" in different ways.
async fn catalogue() -> Hub {
    let hub = Hub::start();
    let admin = Cred::admin();
    hub.api(
        &admin,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "acme", "default_visibility": "public"})),
    )
    .await
    .expect_status(201, "org");
    hub.push_with_readme(
        &admin,
        "acme/store",
        "v1",
        "---\ndescription: A Redis-compatible store\n---\nbody",
    )
    .await;
    hub.push_with_readme(
        &admin,
        "acme/cache",
        "v1",
        "---\nkeywords: [redis, cache]\ndescription: A cache\n---\nbody",
    )
    .await;
    hub.push_with_readme(
        &admin,
        "acme/redis-operator",
        "v1",
        "---\ndescription: Runs things\n---\nbody",
    )
    .await;
    hub.push_with_readme(&admin, "acme/redis", "7", "---\nkeywords: [database]\ndescription: In-memory data store\nicon: https://example.org/r.png\n---\n# Redis").await;
    hub.push_with_readme(
        &admin,
        "acme/other",
        "v1",
        "---\ndescription: Nothing in common\n---\nbody",
    )
    .await;
    hub
}

#[tokio::test]
async fn name_matches_beat_keywords_beat_descriptions() {
    let hub = catalogue().await;
    let result = search(&hub, &Cred::Anonymous, "redis").await;
    assert_eq!(names(&result), ["acme/redis", "acme/redis-operator", "acme/cache", "acme/store"]);
    assert_eq!(result["total"], 4);
    let top = &result["results"][0];
    assert_eq!(top["description"], "In-memory data store");
    assert_eq!(top["keywords"], json!(["database"]));
    assert_eq!(top["icon"], "https://example.org/r.png");
    assert_eq!(top["latest_tag"], "7");
    assert_eq!(top["platforms"][0]["architecture"], "amd64");
    // Prefixes match, and the full name ranks its repository first.
    assert_eq!(names(&search(&hub, &Cred::Anonymous, "redi").await)[0], "acme/redis");
    assert_eq!(names(&search(&hub, &Cred::Anonymous, "acme/cache").await)[0], "acme/cache");
}

#[tokio::test]
async fn paging_is_stable() {
    let hub = catalogue().await;
    let mut paged = Vec::new();
    for page in 1..=3 {
        let reply = hub
            .api(
                &Cred::Anonymous,
                Method::GET,
                &format!("/api/v1/search?q=redis&page={page}&per_page=2"),
                None,
            )
            .await;
        reply.expect_status(200, "page");
        assert_eq!(reply.json()["total"], 4);
        paged.extend(names(&reply.json()));
    }
    assert_eq!(paged, names(&search(&hub, &Cred::Anonymous, "redis").await));
}

#[tokio::test]
async fn private_repositories_of_others_never_appear() {
    let hub = catalogue().await;
    hub.create_user("bob", "bob-Secret-123").await;
    let bob = Cred::basic("bob", "bob-Secret-123");
    hub.push_with_readme(&bob, "bob/redis-notes", "v1", "---\nkeywords: [redis]\n---\nprivate")
        .await;
    assert!(
        names(&search(&hub, &bob, "redis").await).contains(&"bob/redis-notes".to_string()),
        "bob finds his own"
    );
    assert!(
        names(&search(&hub, &Cred::admin(), "redis").await)
            .contains(&"bob/redis-notes".to_string()),
        "the admin finds all"
    );
    assert!(
        !names(&search(&hub, &Cred::Anonymous, "redis").await)
            .contains(&"bob/redis-notes".to_string())
    );
    hub.create_user("eve", "eve-Secret-123").await;
    assert!(
        !names(&search(&hub, &Cred::basic("eve", "eve-Secret-123"), "redis").await)
            .contains(&"bob/redis-notes".to_string())
    );
}

#[tokio::test]
async fn a_repository_leaves_the_index_with_its_last_image() {
    let hub = catalogue().await;
    let token = hub
        .token(&Cred::admin(), &[repo_scope("acme/cache", "pull,push,delete")])
        .await
        .expect("token");
    let image =
        hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/acme/repos/cache/images/v1", None).await;
    let digest = image.json()["digest"].as_str().expect("digest").to_string();
    hub.send(hub.v2(Method::DELETE, &format!("/v2/acme/cache/manifests/{digest}"), Some(&token)))
        .await
        .expect_status(202, "delete");
    assert!(
        !names(&search(&hub, &Cred::Anonymous, "redis").await).contains(&"acme/cache".to_string())
    );
}

#[tokio::test]
async fn an_empty_query_is_a_clear_error() {
    let hub = Hub::start();
    let reply = hub.api(&Cred::Anonymous, Method::GET, "/api/v1/search?q=%20", None).await;
    reply.expect_status(400, "empty query");
    assert_eq!(reply.json()["errors"][0]["code"], "INVALID");
    hub.api(&Cred::Anonymous, Method::GET, "/api/v1/search?q=x&page=abc", None)
        .await
        .expect_status(400, "a bad page");
}

#[tokio::test]
async fn visibility_changes_reach_search_at_once() {
    let hub = catalogue().await;
    let admin = Cred::admin();
    let finds_cache = |result: Value| names(&result).contains(&"acme/cache".to_string());
    hub.api(
        &admin,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/cache",
        Some(json!({"visibility": "private"})),
    )
    .await
    .expect_status(200, "private");
    assert!(
        !finds_cache(search(&hub, &Cred::Anonymous, "redis").await),
        "a private repository is not found anonymously"
    );
    assert!(finds_cache(search(&hub, &admin, "redis").await), "the admin still finds it");
    hub.api(
        &admin,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/cache",
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect_status(200, "public");
    assert!(finds_cache(search(&hub, &Cred::Anonymous, "redis").await), "public again");
}

#[tokio::test]
async fn within_a_tier_the_newest_repository_comes_first() {
    let hub = catalogue().await;
    let admin = Cred::admin();
    hub.push_with_readme(&admin, "acme/queue", "v1", "---\nkeywords: [redis]\n---\nbody").await;
    let result = search(&hub, &Cred::Anonymous, "redis").await;
    assert_eq!(
        names(&result),
        ["acme/redis", "acme/redis-operator", "acme/queue", "acme/cache", "acme/store"]
    );
    assert_eq!(result["total"], 5);
}
