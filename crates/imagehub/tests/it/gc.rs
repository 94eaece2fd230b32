//! Garbage collection (`imagehub gc`) next to a running server: what nothing references
//! goes, shared layers and everything younger than the grace period stay, and pushes
//! racing the collector succeed.

use crate::process::run_cli;
use crate::support::registry::{
    OCI_INDEX, OCI_MANIFEST, Registry, descriptor, image_config, image_index, image_manifest,
    random_bytes, sha256_digest,
};
use crate::support::stored::{blob_store, holds_blob};

fn gc(reg: &Registry, extra: &[&str]) -> String {
    let dir = reg.server().data_dir().to_str().expect("utf-8 temp dir").to_owned();
    let mut args = vec!["gc", "--data-dir", &dir];
    args.extend_from_slice(extra);
    run_cli(&args)
}

async fn stored(reg: &Registry, digest: &str) -> bool {
    holds_blob(reg.server(), digest).await
}

async fn status(reg: &Registry, path: &str) -> u16 {
    reg.get(path).await.status.as_u16()
}

#[tokio::test]
async fn gc_removes_an_untagged_image_and_keeps_shared_layers() {
    let reg = Registry::start();
    let repo = "gc/app";
    let (shared, only_a, only_b) =
        (random_bytes(4096, 1), random_bytes(4096, 2), random_bytes(4096, 3));
    let (config_a, config_b) = (image_config("a"), image_config("b"));
    for blob in [&shared, &only_a, &only_b, &config_a, &config_b] {
        reg.push_blob(repo, blob).await;
    }
    let manifest_a = image_manifest(&config_a, &[&shared, &only_a]);
    let manifest_b = image_manifest(&config_b, &[&shared, &only_b]);
    let digest_a = reg.push_manifest(repo, "a", OCI_MANIFEST, &manifest_a).await;
    reg.push_manifest(repo, "b", OCI_MANIFEST, &manifest_b).await;
    reg.delete(&format!("/v2/{repo}/manifests/a")).await.expect_status_in(&[202], "untag a");

    let dry = gc(&reg, &["--grace-period-secs", "0", "--dry-run"]);
    assert!(dry.contains("would remove 1 manifests"), "{dry}");
    assert!(dry.contains("would remove 2 blobs"), "{dry}");
    assert_eq!(
        status(&reg, &format!("/v2/{repo}/manifests/{digest_a}")).await,
        200,
        "a dry run removes nothing"
    );
    assert!(stored(&reg, &sha256_digest(&only_a)).await);

    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 1 manifests"), "{report}");
    assert!(report.contains("removed 2 blobs"), "{report}");
    assert_eq!(status(&reg, &format!("/v2/{repo}/manifests/{digest_a}")).await, 404);
    for gone in [&only_a, &config_a] {
        assert_eq!(status(&reg, &format!("/v2/{repo}/blobs/{}", sha256_digest(gone))).await, 404);
        assert!(!stored(&reg, &sha256_digest(gone)).await);
    }
    for kept in [&shared, &only_b, &config_b] {
        let reply = reg.get(&format!("/v2/{repo}/blobs/{}", sha256_digest(kept))).await;
        reply.expect_status_in(&[200], "a blob image b uses survives GC");
        assert_eq!(&reply.body, kept);
    }
    let reply = reg.get_manifest(repo, "b").await;
    reply.expect_status_in(&[200], "image b survives GC");
    assert_eq!(reply.body, manifest_b);
}

#[tokio::test]
async fn gc_keeps_everything_younger_than_the_grace_period() {
    let reg = Registry::start();
    let repo = "gc/young";
    let (config, layer, loose) =
        (image_config("young"), random_bytes(2048, 4), random_bytes(2048, 5));
    for blob in [&config, &layer, &loose] {
        reg.push_blob(repo, blob).await;
    }
    let manifest = image_manifest(&config, &[&layer]);
    let digest = sha256_digest(&manifest);
    reg.push_manifest(repo, &digest, OCI_MANIFEST, &manifest).await;

    let report = gc(&reg, &[]);
    assert!(report.contains("removed 0 manifests"), "{report}");
    assert!(report.contains("removed 0 blobs"), "{report}");
    assert_eq!(status(&reg, &format!("/v2/{repo}/manifests/{digest}")).await, 200);
    assert_eq!(status(&reg, &format!("/v2/{repo}/blobs/{}", sha256_digest(&loose))).await, 200);
}

#[tokio::test]
async fn gc_keeps_index_children_and_removes_them_with_the_index() {
    let reg = Registry::start();
    let repo = "gc/multi";
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (config, layer) =
            (image_config(arch), random_bytes(1024, arch.as_bytes()[1] as u64 + 40));
        reg.push_blob(repo, &config).await;
        reg.push_blob(repo, &layer).await;
        let manifest = image_manifest(&config, &[&layer]);
        reg.push_manifest(repo, &sha256_digest(&manifest), OCI_MANIFEST, &manifest).await;
        children.push(manifest);
    }
    let index = image_index(&[&children[0], &children[1]]);
    reg.push_manifest(repo, "multi", OCI_INDEX, &index).await;

    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 0 manifests"), "children of a tagged index stay: {report}");

    reg.delete(&format!("/v2/{repo}/manifests/multi"))
        .await
        .expect_status_in(&[202], "untag the index");
    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 3 manifests"), "the index, then its children: {report}");
    assert!(report.contains("removed 4 blobs"), "{report}");
    for child in &children {
        assert_eq!(
            status(&reg, &format!("/v2/{repo}/manifests/{}", sha256_digest(child))).await,
            404
        );
    }
}

#[tokio::test]
async fn gc_keeps_a_referrer_while_its_subject_lives() {
    let reg = Registry::start();
    let repo = "gc/signed";
    let (config, layer) = (image_config("signed"), random_bytes(1024, 77));
    reg.push_blob(repo, &config).await;
    reg.push_blob(repo, &layer).await;
    let image = image_manifest(&config, &[&layer]);
    let image_digest = reg.push_manifest(repo, "v1", OCI_MANIFEST, &image).await;
    let empty = b"{}".to_vec();
    let signature = random_bytes(256, 78);
    reg.push_blob(repo, &empty).await;
    reg.push_blob(repo, &signature).await;
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty),
        "layers": [descriptor("application/vnd.example.signature.v1", &signature)],
        "subject": descriptor(OCI_MANIFEST, &image),
    }))
    .expect("serialise referrer");
    let referrer_digest = sha256_digest(&referrer);
    reg.push_manifest(repo, &referrer_digest, OCI_MANIFEST, &referrer).await;

    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 0 manifests"), "a live subject keeps its referrer: {report}");
    let referrers = reg.get(&format!("/v2/{repo}/referrers/{image_digest}")).await;
    assert_eq!(referrers.json()["manifests"].as_array().map(Vec::len), Some(1));

    reg.delete(&format!("/v2/{repo}/manifests/{image_digest}"))
        .await
        .expect_status_in(&[202], "delete the image");
    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 1 manifests"), "the referrer goes with its subject: {report}");
    assert_eq!(status(&reg, &format!("/v2/{repo}/manifests/{referrer_digest}")).await, 404);
}

#[tokio::test]
async fn gc_removes_blob_files_the_database_never_recorded() {
    let reg = Registry::start();
    // What a crash between an upload's rename and its commit leaves behind.
    let orphan = random_bytes(1000, 99);
    let digest = sha256_digest(&orphan);
    let bytes = futures_util::stream::iter([Ok::<_, std::io::Error>(orphan.clone().into())]);
    blob_store(reg.server())
        .await
        .put_blob(&digest.parse().expect("digest"), bytes, None)
        .await
        .expect("store the orphan blob");

    let report = gc(&reg, &["--grace-period-secs", "0"]);
    assert!(report.contains("removed 1 orphaned blob files (1000 bytes)"), "{report}");
    assert!(!stored(&reg, &digest).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_the_collector_succeed() {
    let reg = std::sync::Arc::new(Registry::start());
    let dir = reg.server().data_dir().to_str().expect("utf-8 temp dir").to_owned();
    let collector = std::thread::spawn(move || {
        for _ in 0..5 {
            run_cli(&["gc", "--data-dir", &dir]);
        }
    });
    let mut pushes = Vec::new();
    for i in 0..16u64 {
        let reg = reg.clone();
        pushes.push(tokio::spawn(async move {
            let (config, layer) =
                (image_config(&format!("race-{i}")), random_bytes(8192, 1000 + i));
            reg.push_blob("gc/race", &config).await;
            reg.push_blob("gc/race", &layer).await;
            let manifest = image_manifest(&config, &[&layer]);
            reg.push_manifest("gc/race", &format!("t{i}"), OCI_MANIFEST, &manifest).await;
            (i, manifest, layer)
        }));
    }
    let mut pushed = Vec::new();
    for push in pushes {
        pushed.push(push.await.expect("push task succeeds"));
    }
    collector.join().expect("collector runs");
    for (i, manifest, layer) in pushed {
        let reply = reg.get_manifest("gc/race", &format!("t{i}")).await;
        reply.expect_status_in(&[200], "a manifest pushed during GC");
        assert_eq!(reply.body, manifest);
        let reply = reg.get(&format!("/v2/gc/race/blobs/{}", sha256_digest(&layer))).await;
        reply.expect_status_in(&[200], "a layer pushed during GC");
        assert_eq!(reply.body, layer);
    }
}
