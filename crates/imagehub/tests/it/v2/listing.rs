//! Tags list and `_catalog` beyond the conformance suite: empty lists are `[]`, order,
//! `n` and `last`, and `Link: <...>; rel="next"` pagination.

use reqwest::Method;
use serde_json::json;

use crate::support::registry::{
    OCI_MANIFEST, Registry, Reply, image_config, image_manifest, location_path, next_link,
    push_image, query_params, string_list,
};

const REPO: &str = "listing/test";

/// Pushes one image and tags it with each of `tags`.
async fn with_tags(tags: &[&str]) -> Registry {
    let reg = Registry::start();
    let config = image_config("listing");
    reg.push_blob(REPO, &config).await;
    let manifest = image_manifest(&config, &[]);
    for tag in tags {
        reg.push_manifest(REPO, tag, OCI_MANIFEST, &manifest).await;
    }
    reg
}

async fn catalog(reg: &Registry, n: Option<usize>, last: Option<&str>) -> Reply {
    let mut req = reg.request(Method::GET, "/v2/_catalog");
    if let Some(n) = n {
        req = req.query(&[("n", n.to_string())]);
    }
    if let Some(last) = last {
        req = req.query(&[("last", last)]);
    }
    reg.send(req).await
}

/// Checks a `Link` of the form `</path?n=<n>&last=<last>>; rel="next"`; returns its target.
fn check_next_link(reply: &Reply, path: &str, n: usize, last: &str) -> String {
    let target = next_link(reply)
        .unwrap_or_else(|| panic!("a Link with rel=\"next\"; {}", reply.describe()));
    let target_path = location_path(&target);
    assert!(target_path.starts_with(&format!("{path}?")), "Link target {target:?} is {path}?...");
    let params = query_params(&target);
    let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get("n"), Some(n.to_string()), "n in Link {target:?}");
    assert_eq!(get("last").as_deref(), Some(last), "last in Link {target:?}");
    target
}

#[tokio::test]
async fn catalog_of_fresh_server_is_empty_array() {
    let reg = Registry::start();
    let reply = catalog(&reg, None, None).await;
    reply.expect_status_in(&[200], "GET /v2/_catalog on a fresh server");
    assert_eq!(reply.json(), json!({ "repositories": [] }), "{}", reply.describe());
    assert!(next_link(&reply).is_none(), "no Link on an empty catalog");
}

#[tokio::test]
async fn tags_list_of_repo_without_tags_is_empty_array() {
    let reg = Registry::start();
    let config = image_config("untagged");
    reg.push_blob(REPO, &config).await;
    let manifest = image_manifest(&config, &[]);
    reg.push_manifest(
        REPO,
        &crate::support::registry::sha256_digest(&manifest),
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "GET tags list of a repository with no tags");
    assert_eq!(reply.json(), json!({ "name": REPO, "tags": [] }), "{}", reply.describe());
}

#[tokio::test]
async fn tags_list_after_deleting_the_only_tag_is_empty_array() {
    let reg = with_tags(&["only"]).await;
    reg.delete(&format!("/v2/{REPO}/manifests/only"))
        .await
        .expect_status_in(&[202], "DELETE of the tag");
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "GET tags list after deleting the only tag");
    assert_eq!(reply.json(), json!({ "name": REPO, "tags": [] }), "{}", reply.describe());
}

#[tokio::test]
async fn tags_list_is_sorted_and_names_the_repository() {
    let reg = with_tags(&["v10", "beta", "v2", "alpha", "latest", "1.0"]).await;
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "GET tags list");
    let body = reply.json();
    assert_eq!(body["name"].as_str(), Some(REPO));
    assert_eq!(string_list(&body, "tags"), ["1.0", "alpha", "beta", "latest", "v10", "v2"]);
    assert!(next_link(&reply).is_none(), "no Link when everything is returned");
}

#[tokio::test]
async fn tags_list_paginates_with_n_last_and_link() {
    let reg = with_tags(&["e", "c", "a", "d", "b"]).await;
    let path = format!("/v2/{REPO}/tags/list");

    let first = reg.tags_list(REPO, Some(2), None).await;
    first.expect_status_in(&[200], "first page");
    assert_eq!(string_list(&first.json(), "tags"), ["a", "b"]);
    let next = check_next_link(&first, &path, 2, "b");

    let second = reg.get(&next).await;
    second.expect_status_in(&[200], "second page, from the Link");
    assert_eq!(string_list(&second.json(), "tags"), ["c", "d"]);
    let next = check_next_link(&second, &path, 2, "d");

    let third = reg.get(&next).await;
    third.expect_status_in(&[200], "last page, from the Link");
    assert_eq!(string_list(&third.json(), "tags"), ["e"]);
    assert!(next_link(&third).is_none(), "no Link on the last page; {}", third.describe());
}

#[tokio::test]
async fn tags_list_last_alone_lists_everything_after_it() {
    let reg = with_tags(&["a", "b", "c", "d"]).await;
    let reply = reg.tags_list(REPO, None, Some("b")).await;
    reply.expect_status_in(&[200], "tags list with last only");
    assert_eq!(string_list(&reply.json(), "tags"), ["c", "d"]);
}

#[tokio::test]
async fn tags_list_with_n_zero_is_empty_without_link() {
    let reg = with_tags(&["a", "b"]).await;
    let reply = reg.tags_list(REPO, Some(0), None).await;
    reply.expect_status_in(&[200], "tags list with n=0");
    assert_eq!(string_list(&reply.json(), "tags"), Vec::<String>::new());
    assert!(next_link(&reply).is_none(), "no Link when n=0; {}", reply.describe());
}

#[tokio::test]
async fn tags_list_with_n_covering_all_has_no_link() {
    let reg = with_tags(&["a", "b", "c"]).await;
    for n in [3, 4, 100] {
        let reply = reg.tags_list(REPO, Some(n), None).await;
        reply.expect_status_in(&[200], "tags list with n covering every tag");
        assert_eq!(string_list(&reply.json(), "tags"), ["a", "b", "c"]);
        assert!(next_link(&reply).is_none(), "no Link with n={n}; {}", reply.describe());
    }
}

async fn with_repos(repos: &[&str]) -> Registry {
    let reg = Registry::start();
    for repo in repos {
        push_image(&reg, repo, "latest", repo).await;
    }
    reg
}

#[tokio::test]
async fn catalog_lists_repositories_sorted() {
    let reg = with_repos(&["zeta", "alpha/two", "alpha", "mid/deep/name"]).await;
    let reply = catalog(&reg, None, None).await;
    reply.expect_status_in(&[200], "GET /v2/_catalog");
    assert_eq!(
        string_list(&reply.json(), "repositories"),
        ["alpha", "alpha/two", "mid/deep/name", "zeta"]
    );
    assert!(next_link(&reply).is_none());
}

#[tokio::test]
async fn catalog_paginates_with_n_last_and_link() {
    let reg = with_repos(&["c", "a", "b"]).await;

    let first = catalog(&reg, Some(2), None).await;
    first.expect_status_in(&[200], "first catalog page");
    assert_eq!(string_list(&first.json(), "repositories"), ["a", "b"]);
    let next = check_next_link(&first, "/v2/_catalog", 2, "b");

    let second = reg.get(&next).await;
    second.expect_status_in(&[200], "second catalog page, from the Link");
    assert_eq!(string_list(&second.json(), "repositories"), ["c"]);
    assert!(next_link(&second).is_none(), "no Link on the last page; {}", second.describe());

    let after = catalog(&reg, Some(1), Some("a")).await;
    after.expect_status_in(&[200], "catalog with n and last");
    assert_eq!(string_list(&after.json(), "repositories"), ["b"]);
    check_next_link(&after, "/v2/_catalog", 1, "b");
}

#[tokio::test]
async fn catalog_with_n_zero_is_empty_without_link() {
    let reg = with_repos(&["a"]).await;
    let reply = catalog(&reg, Some(0), None).await;
    reply.expect_status_in(&[200], "catalog with n=0");
    assert_eq!(string_list(&reply.json(), "repositories"), Vec::<String>::new());
    assert!(next_link(&reply).is_none());
}

#[tokio::test]
async fn tags_list_follows_every_tag_change_after_being_listed() {
    let reg = Registry::start();
    let repo = "listing/changes";
    let (manifest, digest) = push_image(&reg, repo, "one", "changes").await;
    let tags = |reply: &Reply| string_list(&reply.json(), "tags");
    assert_eq!(tags(&reg.tags_list(repo, None, None).await), ["one"]);

    reg.push_manifest(repo, "two", OCI_MANIFEST, &manifest).await;
    assert_eq!(tags(&reg.tags_list(repo, None, None).await), ["one", "two"]);
    assert_eq!(tags(&reg.tags_list(repo, Some(1), Some("one")).await), ["two"]);

    reg.delete(&format!("/v2/{repo}/manifests/one"))
        .await
        .expect_status_in(&[202], "delete tag one");
    assert_eq!(tags(&reg.tags_list(repo, None, None).await), ["two"]);

    reg.delete(&format!("/v2/{repo}/manifests/{digest}"))
        .await
        .expect_status_in(&[202], "delete by digest");
    assert!(tags(&reg.tags_list(repo, None, None).await).is_empty());
}
