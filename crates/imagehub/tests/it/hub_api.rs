//! Editing image details, giving a README at push, and repositories following their
//! images, through `/api/v1/orgs/{org}/repos/...`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::hub::{Cred, Hub, repo_scope};

const README: &str = "---\ndescription: from the image\nkeywords: [image]\n---\n# In the image";

/// `acme` (private by default) with `olga` owning it and `vic` a viewer, and
/// `acme/app:v1` pushed with a README and labels-free config.
async fn setup() -> (Hub, Cred, Cred) {
    let hub = Hub::start();
    hub.create_user("olga", "olga-Secret-1").await;
    hub.create_user("vic", "vic-Secret-12").await;
    let olga = Cred::basic("olga", "olga-Secret-1");
    hub.api(&olga, Method::POST, "/api/v1/orgs", Some(json!({"name": "acme"})))
        .await
        .expect_status(201, "org");
    hub.api(&olga, Method::PUT, "/api/v1/orgs/acme/members/vic", Some(json!({"role": "viewer"})))
        .await
        .expect_status(200, "viewer");
    hub.push_with_readme(&olga, "acme/app", "v1", README).await;
    (hub, olga, Cred::basic("vic", "vic-Secret-12"))
}

async fn image(hub: &Hub, cred: &Cred, reference: &str) -> Value {
    let reply = hub
        .api(cred, Method::GET, &format!("/api/v1/orgs/acme/repos/app/images/{reference}"), None)
        .await;
    reply.expect_status(200, "image");
    reply.json()
}

#[tokio::test]
async fn edits_beat_a_readme_given_at_push_which_beats_the_image_readme() {
    let (hub, olga, _) = setup().await;
    assert_eq!(image(&hub, &olga, "v1").await["details"]["description"], "from the image");

    let reply = hub
        .send(
            hub.client
                .put(hub.url("/api/v1/orgs/acme/repos/app/images/v1/readme"))
                .basic_auth("olga", Some("olga-Secret-1"))
                .header("content-type", "text/markdown")
                .body("---\ndescription: given at push\nicon: https://example.org/i.png\n---\n# Given"),
        )
        .await;
    reply.expect_status(200, "PUT readme");
    let v = image(&hub, &olga, "v1").await;
    assert_eq!(v["details"]["description"], "given at push");
    assert_eq!(v["details"]["docs"], "# Given");
    assert_eq!(
        v["details"]["keywords"],
        json!(["image"]),
        "fields the pushed README lacks come from the image"
    );

    let edit = json!({"description": "edited", "keywords": ["edited", "db"]});
    hub.api(&olga, Method::PATCH, "/api/v1/orgs/acme/repos/app/images/v1", Some(edit))
        .await
        .expect_status(200, "edit");
    let v = image(&hub, &olga, "v1").await;
    assert_eq!(v["details"]["description"], "edited");
    assert_eq!(v["details"]["keywords"], json!(["edited", "db"]));
    assert_eq!(v["details"]["icon"], "https://example.org/i.png");
    assert_eq!(v["detail_sources"], json!(["edit", "push_readme", "image_readme"]));

    // null: no longer edited, the next source shows through.
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app/images/v1",
        Some(json!({"description": null})),
    )
    .await
    .expect_status(200, "unedit");
    let v = image(&hub, &olga, "v1").await;
    assert_eq!(v["details"]["description"], "given at push");
    assert_eq!(v["details"]["keywords"], json!(["edited", "db"]));

    // Search sees the edit.
    let found = hub.api(&Cred::admin(), Method::GET, "/api/v1/search?q=edited", None).await;
    assert_eq!(found.json()["results"][0]["name"], "acme/app");
}

#[tokio::test]
async fn invalid_edits_are_refused_naming_the_field() {
    let (hub, olga, vic) = setup().await;
    for (body, needle, field) in [
        (json!({"icon": "javascript:alert(1)"}), "icon", json!("icon")),
        (json!({"url": "ftp://x"}), "url", json!("url")),
        (
            json!({"keywords": (0..30).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
            "keywords",
            json!("keywords"),
        ),
        (json!({"colour": "red"}), "colour", json!("colour")),
        (json!({"keywords": "not a list"}), "invalid details", Value::Null),
    ] {
        let reply = hub
            .api(&olga, Method::PATCH, "/api/v1/orgs/acme/repos/app/images/v1", Some(body.clone()))
            .await;
        reply.expect_status(400, &format!("{body}"));
        let error = &reply.json()["errors"][0];
        let message = error["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(needle), "{message:?} should name {needle}");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
    }
    let reply = hub
        .api(
            &vic,
            Method::PATCH,
            "/api/v1/orgs/acme/repos/app/images/v1",
            Some(json!({"description": "x"})),
        )
        .await;
    reply.expect_status(403, "a viewer edits");
    hub.create_user("eve", "eve-Secret-12").await;
    hub.api(
        &Cred::basic("eve", "eve-Secret-12"),
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app/images/v1",
        Some(json!({"description": "x"})),
    )
    .await
    .expect_status(403, "an outsider's edit is refused as one to a missing repository is");
    let missing = hub
        .api(
            &olga,
            Method::PATCH,
            "/api/v1/orgs/acme/repos/app/images/v9",
            Some(json!({"description": "x"})),
        )
        .await;
    missing.expect_status(404, "no such tag");
    assert_eq!(
        missing.json()["errors"][0]["detail"],
        json!({"repository": "acme/app", "reference": "v9"})
    );
}

#[tokio::test]
async fn repositories_appear_and_disappear_with_their_images() {
    let (hub, olga, vic) = setup().await;
    hub.push_with_readme(&olga, "acme/app", "v2", "").await;
    let repos = hub.api(&vic, Method::GET, "/api/v1/orgs/acme/repos", None).await;
    repos.expect_status(200, "list repositories");
    let list = repos.json()["repositories"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "acme/app");
    assert_eq!(list[0]["visibility"], "private");
    assert_eq!(list[0]["images"], 2);
    assert_eq!(list[0]["latest"]["tag"], "v2", "the most recently pushed image is the latest");
    hub.api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/acme/repos", None)
        .await
        .expect_status(200, "anonymous");
    hub.push_with_readme(&olga, "acme/app", "a0", "").await;
    let by_name = hub
        .api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images?sort=name&per_page=2", None)
        .await
        .json();
    let tags: Vec<&str> = by_name["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["tag"].as_str().unwrap_or(""))
        .collect();
    assert_eq!((tags, by_name["total"].as_u64()), (vec!["a0", "v1"], Some(3)));
    let page2 = hub
        .api(
            &olga,
            Method::GET,
            "/api/v1/orgs/acme/repos/app/images?sort=name&per_page=2&page=2",
            None,
        )
        .await
        .json();
    assert_eq!(page2["images"][0]["tag"], "v2");
    let by_push =
        hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images", None).await.json();
    assert_eq!(by_push["images"][0]["tag"], "a0", "most recent first by default");
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images?sort=size", None)
        .await
        .expect_status(400, "an unknown sort");
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme/repos/app/images/a0", None)
        .await
        .expect_status(204, "delete a0");
    let a0 = by_push["images"][0]["digest"].as_str().expect("digest").to_string();
    hub.api(&olga, Method::DELETE, &format!("/api/v1/orgs/acme/repos/app/images/{a0}"), None)
        .await
        .expect_status(204, "delete a0's manifest");
    let anonymous = hub.api(&Cred::Anonymous, Method::GET, "/api/v1/orgs/acme/repos", None).await;
    assert_eq!(
        anonymous.json()["repositories"],
        json!([]),
        "a private repository is not listed to anonymous"
    );

    // Owners describe a repository; viewers read it.
    let described = hub
        .api(
            &olga,
            Method::PATCH,
            "/api/v1/orgs/acme/repos/app",
            Some(json!({"description": "The app"})),
        )
        .await;
    described.expect_status(200, "describe");
    assert_eq!(described.json()["description"], "The app");
    assert_eq!(
        hub.api(&vic, Method::GET, "/api/v1/orgs/acme/repos/app", None).await.json()["description"],
        "The app"
    );
    hub.api(&vic, Method::PATCH, "/api/v1/orgs/acme/repos/app", Some(json!({"description": "x"})))
        .await
        .expect_status(403, "a viewer describes");
    hub.api(&olga, Method::PATCH, "/api/v1/orgs/acme/repos/app", Some(json!({})))
        .await
        .expect_status(400, "nothing to change");
    let cleared = hub
        .api(
            &olga,
            Method::PATCH,
            "/api/v1/orgs/acme/repos/app",
            Some(json!({"description": null})),
        )
        .await;
    assert_eq!(cleared.json()["description"], Value::Null);

    // Deleting an image needs delete; deleting the last one empties the repository.
    hub.api(&vic, Method::DELETE, "/api/v1/orgs/acme/repos/app/images/v2", None)
        .await
        .expect_status(403, "a viewer deletes");
    let v2 = image(&hub, &olga, "v2").await["digest"].as_str().expect("digest").to_string();
    hub.api(&olga, Method::DELETE, "/api/v1/orgs/acme/repos/app/images/v2", None)
        .await
        .expect_status(204, "delete a tag");
    // The manifest stays, an image without a tag, until it is deleted too.
    let images = hub
        .api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images", None)
        .await
        .json()["images"]
        .clone();
    let listed: Vec<(Value, Value)> = images
        .as_array()
        .expect("images")
        .iter()
        .map(|i| (i["tag"].clone(), i["digest"].clone()))
        .collect();
    assert!(listed.contains(&(Value::Null, json!(v2))), "{listed:?}");
    let v1 = image(&hub, &olga, "v1").await["digest"].as_str().expect("digest").to_string();
    for digest in [v1, v2] {
        hub.api(
            &olga,
            Method::DELETE,
            &format!("/api/v1/orgs/acme/repos/app/images/{digest}"),
            None,
        )
        .await
        .expect_status(204, "delete a manifest");
    }
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app", None)
        .await
        .expect_status(404, "an empty repository");
    let list = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos", None).await;
    assert_eq!(list.json()["repositories"], json!([]));
}

#[tokio::test]
async fn deleting_a_repository_deletes_its_tags_and_manifests() {
    let (hub, olga, _) = setup().await;
    hub.push_with_readme(&olga, "acme/app", "v2", "").await;
    hub.api(&Cred::admin(), Method::DELETE, "/api/v1/orgs/acme/repos/app", None)
        .await
        .expect_status(204, "delete the repository");
    hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app", None)
        .await
        .expect_status(404, "gone from the API");
    let token = hub.token(&olga, &[repo_scope("acme/app", "pull")]).await.expect("token");
    let tags = hub.send(hub.v2(Method::GET, "/v2/acme/app/tags/list", Some(&token))).await;
    assert_eq!(tags.status, StatusCode::NOT_FOUND, "gone from the registry: {}", tags.text());
    let found = hub.api(&Cred::admin(), Method::GET, "/api/v1/search?q=app", None).await;
    assert_eq!(found.json()["total"], 0, "gone from search");
    hub.api(&Cred::admin(), Method::DELETE, "/api/v1/orgs/acme/repos/app", None)
        .await
        .expect_status(404, "twice");
    // The repository can be pushed again.
    hub.push_with_readme(&olga, "acme/app", "v3", README).await;
    assert_eq!(image(&hub, &olga, "v3").await["details"]["description"], "from the image");
}

#[tokio::test]
async fn pulls_are_counted_per_image_and_repository_and_survive_a_restart() {
    let (hub, olga, _) = setup().await;
    let digest = image(&hub, &olga, "v1").await["digest"].as_str().expect("digest").to_string();
    let token = hub.token(&olga, &[repo_scope("acme/app", "pull")]).await.expect("token");
    let accept = "application/vnd.oci.image.manifest.v1+json";
    for reference in ["v1", "v1", "v1", digest.as_str()] {
        hub.send(
            hub.v2(Method::GET, &format!("/v2/acme/app/manifests/{reference}"), Some(&token))
                .header("accept", accept),
        )
        .await
        .expect_status(200, "pull");
    }
    hub.send(
        hub.v2(Method::HEAD, "/v2/acme/app/manifests/v1", Some(&token)).header("accept", accept),
    )
    .await
    .expect_status(200, "a HEAD is not a pull");
    assert_eq!(image(&hub, &olga, "v1").await["pull_count"], 4);
    assert_eq!(
        hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app", None).await.json()["pull_count"],
        4
    );
    let listed_pulls = |list: Value| -> Vec<(Value, Value)> {
        let images = list["images"].as_array().expect("images").clone();
        images.into_iter().map(|i| (i["tag"].clone(), i["pull_count"].clone())).collect()
    };
    let list = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images", None).await;
    assert!(listed_pulls(list.json()).contains(&(json!("v1"), json!(4))), "pending, listed");
    let hub = hub.restart();
    assert_eq!(image(&hub, &olga, "v1").await["pull_count"], 4, "saved at shutdown");
    let list = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images", None).await;
    assert!(listed_pulls(list.json()).contains(&(json!("v1"), json!(4))), "stored, listed");
    let found = hub.api(&olga, Method::GET, "/api/v1/search?q=app", None).await;
    assert_eq!(found.json()["results"][0]["pull_count"], 4);
}

#[tokio::test]
async fn a_datapack_aggregates_images_and_is_cached_by_etag() {
    let (hub, olga, _) = setup().await;
    hub.push_with_readme(&olga, "acme/app", "v2", "").await;
    let spec = json!({"type": "detail", "names": ["acme/app:v2", "acme/app:v1", "acme/nope:1", "acme/app:v1"]});
    let created = hub.api(&olga, Method::POST, "/api/v1/datapacks", Some(spec)).await;
    created.expect_status(201, "create");
    let body = created.json();
    let name = body["name"].as_str().expect("name").to_string();
    assert!(name.starts_with("dp-"));
    let images: Vec<&str> = body["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(images, ["acme/app:v1", "acme/app:v2"], "deduplicated and sorted");
    assert_eq!(body["unknown"], json!(["acme/nope:1"]));
    assert_eq!(body["images"][0]["details"]["description"], "from the image");
    let etag = created.header("etag").expect("ETag");

    // The same spec in another order is the same DataPack, served again by name.
    let again = hub
        .api(
            &olga,
            Method::POST,
            "/api/v1/datapacks",
            Some(json!({"type": "detail", "names": ["acme/nope:1", "acme/app:v1", "acme/app:v2"]})),
        )
        .await;
    assert_eq!(again.json()["name"], name.as_str());
    let got = hub.api(&olga, Method::GET, &format!("/api/v1/datapacks/{name}"), None).await;
    got.expect_status(200, "get");
    assert_eq!(got.header("etag").as_deref(), Some(etag.as_str()));
    let cached = hub
        .send(
            hub.client
                .get(hub.url(&format!("/api/v1/datapacks/{name}")))
                .basic_auth("olga", Some("olga-Secret-1"))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);

    // A change to an image in it changes the result and its ETag.
    hub.api(
        &olga,
        Method::PATCH,
        "/api/v1/orgs/acme/repos/app/images/v1",
        Some(json!({"description": "changed"})),
    )
    .await
    .expect_status(200, "edit");
    let fresh = hub
        .send(
            hub.client
                .get(hub.url(&format!("/api/v1/datapacks/{name}")))
                .basic_auth("olga", Some("olga-Secret-1"))
                .header("if-none-match", &etag),
        )
        .await;
    fresh.expect_status(200, "recomputed");
    assert_ne!(fresh.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(fresh.json()["images"][0]["details"]["description"], "changed");

    // Nobody sees through a DataPack what they may not pull.
    let anonymous =
        hub.api(&Cred::Anonymous, Method::GET, &format!("/api/v1/datapacks/{name}"), None).await;
    anonymous.expect_status(200, "anonymous");
    assert_eq!(anonymous.json()["images"], json!([]));
    assert_eq!(anonymous.json()["unknown"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn bad_datapack_specs_are_refused() {
    let (hub, olga, _) = setup().await;
    for (spec, needle) in [
        (json!({"type": "base", "names": ["Bad/Name:1"]}), "Bad/Name"),
        (json!({"type": "base", "names": []}), "names"),
        (json!({"type": "everything", "names": ["acme/app:v1"]}), "type"),
        (json!({"type": "base", "names": ["acme/app:v1"], "extra": 1}), "extra"),
    ] {
        let reply = hub.api(&olga, Method::POST, "/api/v1/datapacks", Some(spec.clone())).await;
        reply.expect_status(400, &spec.to_string());
        let message = reply.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(needle), "{message:?} should mention {needle}");
    }
    hub.api(&olga, Method::GET, "/api/v1/datapacks/dp-unknown", None)
        .await
        .expect_status(404, "unknown DataPack");
}

const APPLY: &str = "---
apiVersion: imagehub.sealos.io/v1
kind: Organization
metadata:
  name: tools
spec:
  name: tools
  description: Tools we ship
  default_visibility: public
---
apiVersion: imagehub.sealos.io/v1
kind: Image
metadata:
  name: acme.app.v1
  namespace: sealos-imagehub
spec:
  name: acme/app:v1
  detail:
    url: https://www.example.org
    keywords: [ app, tool ]
    description: Applied description
    icon: https://www.example.org/icon.png
    docs: Applied docs
    ID: ignored
    arch: ignored
---
apiVersion: imagehub.sealos.io/v1
kind: Image
spec:
  name: acme/app:v9
  detail:
    description: Waiting for its tag
---
apiVersion: imagehub.sealos.io/v1
kind: DataPack
metadata:
  name: datapack-detail-sample
spec:
  type: detail
  names:
    - acme/app:v1
";

async fn apply(hub: &Hub, cred: &Cred, yaml: &str) -> crate::support::hub::Reply {
    hub.send(
        hub.client
            .post(hub.url("/api/v1/apply"))
            .basic_auth(basic_user(cred), Some(basic_password(cred)))
            .header("content-type", "application/yaml")
            .body(yaml.to_string()),
    )
    .await
}

fn basic_user(cred: &Cred) -> String {
    match cred {
        Cred::Basic(user, _) => user.clone(),
        Cred::Anonymous => String::new(),
    }
}

fn basic_password(cred: &Cred) -> String {
    match cred {
        Cred::Basic(_, password) => password.clone(),
        Cred::Anonymous => String::new(),
    }
}

#[tokio::test]
async fn applying_the_seed_manifests_creates_and_updates_and_export_round_trips() {
    let (hub, olga, _) = setup().await;
    let reply = apply(&hub, &olga, APPLY).await;
    reply.expect_status(200, "apply");
    let results: Vec<(String, String)> = reply.json()["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_string(),
                r["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(results[0], ("Organization".to_string(), "created".to_string()));
    assert_eq!(results[1], ("Image".to_string(), "configured".to_string()));

    let v = image(&hub, &olga, "v1").await;
    assert_eq!(v["details"]["description"], "Applied description");
    assert_eq!(v["details"]["keywords"], json!(["app", "tool"]));
    assert_eq!(v["detail_sources"][0], "edit");
    let org = hub.api(&olga, Method::GET, "/api/v1/orgs/tools", None).await;
    assert_eq!(org.json()["default_visibility"], "public");

    // Details for a tag not pushed yet wait for it.
    hub.push_with_readme(&olga, "acme/app", "v9", README).await;
    assert_eq!(image(&hub, &olga, "v9").await["details"]["description"], "Waiting for its tag");

    // Export, then apply the export: nothing changes.
    let exported = hub.api(&olga, Method::GET, "/api/v1/export?kind=Image&org=acme", None).await;
    exported.expect_status(200, "export");
    let yaml = exported.text();
    assert!(yaml.contains("name: acme.app.v1") && yaml.contains("Applied description"), "{yaml}");
    let again = apply(&hub, &olga, &yaml).await;
    again.expect_status(200, "apply the export");
    let all_unchanged = again.json()["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .all(|r| r["result"] == "unchanged");
    assert!(all_unchanged, "{}", again.text());
    let orgs = hub
        .api(&olga, Method::GET, "/api/v1/export?kind=Organization&org=tools", None)
        .await
        .text();
    let again = apply(&hub, &olga, &orgs).await;
    assert_eq!(again.json()["applied"][0]["result"], "unchanged", "{orgs}");
}

#[tokio::test]
async fn invalid_manifests_are_refused_naming_the_field_and_nothing_is_applied() {
    let (hub, olga, vic) = setup().await;
    for (yaml, needle, field) in [
        (
            "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app\n",
            "spec.name",
            json!("spec.name"),
        ),
        (
            "apiVersion: imagehub.sealos.io/v1\nkind: Image\nmetadata:\n  name: wrong\nspec:\n  name: acme/app:v1\n",
            "metadata.name",
            json!("metadata.name"),
        ),
        (
            "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app:v1\n  detail:\n    url: www.mysql.com\n",
            "spec.detail.url",
            json!("spec.detail.url"),
        ),
        (
            "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app:v1\n  detail:\n    colour: red\n",
            "colour",
            json!("spec.detail.colour"),
        ),
        (
            "apiVersion: other/v1\nkind: Image\nspec:\n  name: acme/app:v1\n",
            "apiVersion",
            json!("apiVersion"),
        ),
        ("apiVersion: imagehub.sealos.io/v1\nkind: Widget\nspec: {}\n", "Widget", json!("kind")),
        ("apiVersion: imagehub.sealos.io/v1\nkind: [broken\n", "YAML", Value::Null),
    ] {
        let reply = apply(&hub, &olga, yaml).await;
        reply.expect_status(400, yaml);
        let error = &reply.json()["errors"][0];
        let message = error["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(needle), "{message:?} should name {needle}");
        assert_eq!(error["detail"]["field"], field, "{yaml}: {error}");
        assert_eq!(error["detail"]["document"], 1, "{yaml}: {error}");
    }
    // A bad second document: the first is not applied either.
    let mixed = "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app:v1\n  detail:\n    description: should not stick\n---\napiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: nope\n";
    apply(&hub, &olga, mixed).await.expect_status(400, "mixed");
    assert_eq!(image(&hub, &olga, "v1").await["details"]["description"], "from the image");
    // A viewer may not set details.
    let viewer = "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app:v1\n  detail:\n    description: x\n";
    apply(&hub, &vic, viewer).await.expect_status(403, "a viewer applies");
}

#[tokio::test]
async fn an_apply_refused_by_a_later_document_applies_nothing() {
    let (hub, olga, vic) = setup().await;
    hub.api(
        &olga,
        Method::PUT,
        "/api/v1/orgs/acme/members/vic",
        Some(json!({"role": "developer"})),
    )
    .await
    .expect_status(200, "developer");
    // vic may edit acme/app:v1 and create an organization, but not change acme/app's
    // visibility (owners only): the whole apply is refused, the first two included.
    let batch = "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: acme/app:v1\n  detail:\n    description: should not stick\n---\n\
                 apiVersion: imagehub.sealos.io/v1\nkind: Organization\nspec:\n  name: vics-org\n---\n\
                 apiVersion: imagehub.sealos.io/v1\nkind: Repository\nspec:\n  name: acme/app\n  visibility: public\n";
    let reply = apply(&hub, &vic, batch).await;
    reply.expect_status(403, "a developer changes visibility in an apply");
    assert_eq!(reply.json()["errors"][0]["detail"]["document"], 3, "{}", reply.text());
    assert_eq!(image(&hub, &olga, "v1").await["details"]["description"], "from the image");
    hub.api(&Cred::admin(), Method::GET, "/api/v1/orgs/vics-org", None)
        .await
        .expect_status(404, "the organization was not created");
    // An organization whose name is a user's is refused before anything is applied too.
    let taken = batch
        .replace("name: vics-org", "name: olga")
        .replace("visibility: public", "visibility: private");
    let reply = apply(&hub, &olga, &taken).await;
    reply.expect_status(409, "an organization named like a user");
    assert_eq!(image(&hub, &olga, "v1").await["details"]["description"], "from the image");
}
