//! The hub API on an open registry (`auth.enabled = false`): what `/v2` lets anyone do,
//! the API lets anyone do too; the account routes say that accounts are off.

use reqwest::Method;
use serde_json::json;

use crate::support::hub::{Cred, Hub};

fn open_hub() -> Hub {
    Hub::start_with(|c| c.auth.enabled = false)
}

#[tokio::test]
async fn images_search_and_edits_work_without_accounts() {
    let hub = open_hub();
    let readme = "---\nkeywords: [cache]\ndescription: An open cache\n---\n# Cache";
    hub.push_readme_image(None, "team/cache", "v1", readme)
        .await
        .expect("anonymous push to an open registry");
    hub.api(&Cred::Anonymous, Method::POST, "/api/v1/admin/index", None)
        .await
        .expect_status(200, "run the indexing queue");

    let image = hub
        .api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/team/repos/cache/images/v1", None)
        .await;
    image.expect_status(200, "image");
    assert_eq!(image.json()["details"]["description"], "An open cache");

    let found = hub.api(&Cred::Anonymous, Method::GET, "/api/v1/search?q=cache", None).await;
    found.expect_status(200, "search");
    assert_eq!(found.json()["results"][0]["name"], "team/cache");

    let edit = json!({"description": "Edited"});
    hub.api(&Cred::Anonymous, Method::PATCH, "/api/v1/orgs/team/repos/cache/images/v1", Some(edit))
        .await
        .expect_status(200, "edit");
    let image = hub
        .api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/team/repos/cache/images/v1", None)
        .await;
    assert_eq!(image.json()["details"]["description"], "Edited");

    let repos = hub.api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/team/repos", None).await;
    repos.expect_status(200, "repositories");
    assert_eq!(repos.json()["repositories"][0]["name"], "team/cache", "{}", repos.text());
}

#[tokio::test]
async fn account_routes_say_accounts_are_off() {
    let hub = open_hub();
    for (method, path) in [
        (Method::GET, "/api/v1/user"),
        (Method::POST, "/api/v1/orgs"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/orgs/team"),
    ] {
        let reply = hub.api(&Cred::Anonymous, method, path, None).await;
        reply.expect_status(404, path);
        let message = reply.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("auth.enabled = false"), "{path}: {message}");
    }
    let apply = "apiVersion: imagehub.sealos.io/v1\nkind: Organization\nspec:\n  name: team\n";
    let reply = hub
        .send(
            hub.v2(Method::POST, "/api/v1/apply", None)
                .header("content-type", "application/yaml")
                .body(apply),
        )
        .await;
    reply.expect_status(400, "an Organization without accounts");
}
