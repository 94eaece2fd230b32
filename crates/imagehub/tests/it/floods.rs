//! Callers cannot fill the disk: anonymous DataPack posts store nothing, stored DataPacks
//! are bounded in number, and upload sessions are capped per user and per repository
//! with a 429 that says when to retry, leaving nothing behind.

use reqwest::Method;
use serde_json::json;

use crate::support::hub::{Cred, Hub, repo_scope};
use crate::support::stored::blob_store;

#[tokio::test]
async fn anonymous_datapack_floods_store_nothing_and_stored_ones_are_bounded() {
    let hub = Hub::start_with(|c| c.datapacks.max_kept = 5);
    hub.create_user("alice", "alice-Secret-1").await;
    let alice = Cred::basic("alice", "alice-Secret-1");
    let spec = |i: usize| json!({"type": "base", "names": [format!("flood/image{i}:v1")]});

    for i in 0..50 {
        let reply =
            hub.api(&Cred::Anonymous, Method::POST, "/api/v1/datapacks", Some(spec(i))).await;
        reply.expect_status(200, "an anonymous DataPack is answered");
        assert_eq!(reply.json()["unknown"], json!([format!("flood/image{i}:v1")]));
        let name = reply.json()["name"].as_str().expect("name").to_string();
        hub.api(&Cred::Anonymous, Method::GET, &format!("/api/v1/datapacks/{name}"), None)
            .await
            .expect_status(404, "but not stored");
    }
    let apply = "apiVersion: imagehub.sealos.io/v1\nkind: DataPack\nspec:\n  type: base\n  names: [flood/x:v1]\n";
    let reply = hub
        .send(
            hub.client
                .post(hub.url("/api/v1/apply"))
                .header("content-type", "application/yaml")
                .body(apply),
        )
        .await;
    reply.expect_status(401, "an anonymous apply of a DataPack");

    let mut names = Vec::new();
    for i in 0..8 {
        let reply = hub.api(&alice, Method::POST, "/api/v1/datapacks", Some(spec(i))).await;
        reply.expect_status(201, "a user's DataPack is stored");
        names.push(reply.json()["name"].as_str().expect("name").to_string());
    }
    let mut kept = 0;
    for name in &names {
        kept += usize::from(
            hub.api(&alice, Method::GET, &format!("/api/v1/datapacks/{name}"), None).await.status
                == 200,
        );
    }
    assert_eq!(kept, 5, "datapacks.max_kept bounds what is stored");
    let last = names.last().expect("names");
    hub.api(&alice, Method::GET, &format!("/api/v1/datapacks/{last}"), None)
        .await
        .expect_status(200, "the newest is kept");
}

/// The uploads the server's blob store holds, and how many it would hold for `sessions`
/// open upload sessions that have received nothing: a file each on the filesystem,
/// nothing in a bucket until bytes arrive.
async fn uploads_kept(hub: &Hub, sessions: usize) -> (usize, usize) {
    let store = blob_store(hub.server()).await;
    let names = store.upload_names().await.expect("list the uploads");
    (names.len(), if store.keeps_empty_uploads() { sessions } else { 0 })
}

#[tokio::test]
async fn upload_sessions_are_capped_per_user_and_per_repository() {
    let hub = Hub::start_with(|c| {
        c.uploads.max_sessions_per_user = 5;
        c.uploads.max_sessions_per_repository = 3;
    });
    for user in ["alice", "bob"] {
        hub.create_user(user, &format!("{user}-Secret-1")).await;
    }
    let olga = Cred::admin();
    let start = |repo: &'static str, cred: Cred| {
        let hub = &hub;
        async move {
            let token = hub.token(&cred, &[repo_scope(repo, "pull,push")]).await.expect("token");
            hub.send(hub.v2(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), Some(&token)))
                .await
        }
    };
    let alice = Cred::basic("alice", "alice-Secret-1");
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let reply = start("alice/x", alice.clone()).await;
        reply.expect_status(202, "a session within the caps");
        sessions.push(reply.header("location").expect("location"));
    }
    let full = start("alice/x", alice.clone()).await;
    full.expect_status(429, "a fourth session in one repository");
    assert_eq!(full.json()["errors"][0]["code"], "TOOMANYREQUESTS");
    assert_eq!(full.header("retry-after").as_deref(), Some("60"));
    for _ in 0..2 {
        start("alice/y", alice.clone()).await.expect_status(202, "sessions in another repository");
    }
    let full = start("alice/z", alice.clone()).await;
    full.expect_status(429, "a sixth session of one user");
    assert!(
        full.json()["errors"][0]["message"].as_str().is_some_and(|m| m.contains("by this user")),
        "{}",
        full.text()
    );
    // The admin has a cap of their own; the repository's is shared.
    start("alice/x", olga.clone()).await.expect_status(429, "the repository is full for everyone");
    start("bob/x", Cred::basic("bob", "bob-Secret-1"))
        .await
        .expect_status(202, "another user, another repository");
    let (kept, six_sessions) = uploads_kept(&hub, 6).await;
    assert_eq!(kept, six_sessions, "refused sessions leave nothing behind");

    // A cancelled session makes room.
    let token = hub.token(&alice, &[repo_scope("alice/x", "pull,push")]).await.expect("token");
    let cancel = hub.client.delete(hub.url(&sessions[0])).bearer_auth(&token);
    hub.send(cancel).await.expect_status(204, "cancel a session");
    start("alice/x", alice.clone()).await.expect_status(202, "room again after a cancel");
}
