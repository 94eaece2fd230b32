//! Concurrent pushes: many clients pushing the same blobs, manifest and tag at once all
//! succeed and leave one consistent state.

use std::sync::Arc;

use crate::support::registry::{
    OCI_MANIFEST, Registry, image_config, image_manifest, random_bytes, sha256_digest, string_list,
};

const REPO: &str = "concurrency/test";
const TASKS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_same_blob_and_tag_all_succeed() {
    let reg = Arc::new(Registry::start());
    let config = Arc::new(image_config("concurrent"));
    let layer = Arc::new(random_bytes(64 * 1024, 0xC0C0));
    let manifest = Arc::new(image_manifest(&config, &[&layer]));

    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let (reg, config, layer, manifest) =
            (reg.clone(), config.clone(), layer.clone(), manifest.clone());
        tasks.push(tokio::spawn(async move {
            // Half the tasks upload the layer in two chunks, half in one PUT.
            if i % 2 == 0 {
                let location = reg.begin_upload(REPO).await;
                let half = layer.len() / 2;
                let patched = reg.patch_chunk(&location, 0, &layer[..half]).await;
                patched.expect_status_in(&[202], "PATCH of the first half");
                let patched = reg.patch_chunk(&patched.location(), half, &layer[half..]).await;
                patched.expect_status_in(&[202], "PATCH of the second half");
                let reply = reg.put_upload(&patched.location(), &sha256_digest(&layer), &[]).await;
                reply.expect_status_in(&[201], "closing PUT of the layer");
            } else {
                reg.push_blob(REPO, &layer).await;
            }
            reg.push_blob(REPO, &config).await;
            reg.push_manifest(REPO, "latest", OCI_MANIFEST, &manifest).await
        }));
    }
    let digest = sha256_digest(&manifest);
    for task in tasks {
        assert_eq!(task.await.expect("push task completes"), digest);
    }

    let reply = reg.get_manifest(REPO, "latest").await;
    reply.expect_status_in(&[200], "GET of the tag after concurrent pushes");
    assert_eq!(reply.body, *manifest);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(digest.clone()));
    for blob in [&*config, &*layer] {
        let reply = reg.get(&format!("/v2/{REPO}/blobs/{}", sha256_digest(blob))).await;
        reply.expect_status_in(&[200], "GET of a blob pushed concurrently");
        assert_eq!(reply.body, *blob);
    }
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "tags list after concurrent pushes");
    assert_eq!(string_list(&reply.json(), "tags"), ["latest"]);
    let reply = reg.get("/v2/_catalog").await;
    reply.expect_status_in(&[200], "catalog after concurrent pushes");
    assert_eq!(string_list(&reply.json(), "repositories"), [REPO]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_distinct_tags_are_all_listed() {
    let reg = Arc::new(Registry::start());
    let config = Arc::new(image_config("distinct-tags"));
    reg.push_blob(REPO, &config).await;
    let manifest = Arc::new(image_manifest(&config, &[]));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let (reg, manifest) = (reg.clone(), manifest.clone());
        tasks.push(tokio::spawn(async move {
            reg.push_manifest(REPO, &format!("t{i:02}"), OCI_MANIFEST, &manifest).await;
        }));
    }
    for task in tasks {
        task.await.expect("push task completes");
    }
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "tags list after concurrent tagging");
    let expected: Vec<String> = (0..TASKS).map(|i| format!("t{i:02}")).collect();
    assert_eq!(string_list(&reply.json(), "tags"), expected);
}
