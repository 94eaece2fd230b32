//! Restarts: an upload started before a graceful restart or a SIGKILL can be finished
//! afterwards, and every push acknowledged before a SIGKILL can be pulled after it.

use std::sync::Arc;

use imagehub_testkit::TestServer;
use reqwest::Client;

use crate::process::ServerProcess;
use crate::support::registry::{
    OCI_MANIFEST, Registry, image_config, image_manifest, location_path, random_bytes,
    sha256_digest,
};

/// Uploads the first part of `data` and returns the session's path.
async fn start_partial_upload(reg: &Registry, repo: &str, data: &[u8], first: usize) -> String {
    let location = reg.begin_upload(repo).await;
    let reply = reg.patch_chunk(&location, 0, &data[..first]).await;
    reply.expect_status_in(&[202], "PATCH of the first chunk");
    location_path(&reply.location())
}

/// Checks the session kept exactly `first` bytes, sends the rest and pulls the blob back.
async fn finish_upload(reg: &Registry, repo: &str, location: &str, data: &[u8], first: usize) {
    let status = reg.get(location).await;
    status.expect_status_in(&[204], "upload status after the restart");
    assert_eq!(status.header("Range"), Some(format!("0-{}", first - 1)));
    let reply = reg.patch_chunk(location, first, &data[first..]).await;
    reply.expect_status_in(&[202], "PATCH of the rest after the restart");
    let reply = reg.put_upload(&reply.location(), &sha256_digest(data), &[]).await;
    reply.expect_status_in(&[201], "closing PUT after the restart");
    let blob = reg.get(&format!("/v2/{repo}/blobs/{}", sha256_digest(data))).await;
    blob.expect_status_in(&[200], "the finished blob");
    assert_eq!(blob.body, data);
}

#[tokio::test]
async fn upload_started_before_a_graceful_restart_can_be_finished() {
    let data = random_bytes(300_000, 11);
    let server = TestServer::start();
    let location =
        start_partial_upload(&Registry::at(&server.url()), "restart/graceful", &data, 100_000)
            .await;
    let data_dir = server.stop();

    let server = TestServer::start_in(data_dir, |_| {});
    finish_upload(&Registry::at(&server.url()), "restart/graceful", &location, &data, 100_000)
        .await;
}

/// One push the server acknowledged: a tag, its manifest and its layer.
struct Acked {
    tag: String,
    manifest: Vec<u8>,
    layer: Vec<u8>,
}

/// Pushes one image without panicking on connection errors (the server is about to die).
async fn try_push_image(client: &Client, base: &str, tag: &str, seed: u64) -> Option<Acked> {
    let (config, layer) = (image_config(tag), random_bytes(32 * 1024, seed));
    for blob in [&config, &layer] {
        let url = format!("{base}/v2/crash/app/blobs/uploads/?digest={}", sha256_digest(blob));
        let reply = client.post(url).body(blob.clone()).send().await.ok()?;
        if reply.status() != 201 {
            return None;
        }
    }
    let manifest = image_manifest(&config, &[&layer]);
    let reply = client
        .put(format!("{base}/v2/crash/app/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .ok()?;
    (reply.status() == 201).then(|| Acked { tag: tag.to_owned(), manifest, layer })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_sigkill_and_uploads_resume() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let server = ServerProcess::start(data_dir.path());
    let base = server.url().to_owned();

    let partial = random_bytes(200_000, 21);
    let location =
        start_partial_upload(&Registry::at(&base), "crash/upload", &partial, 50_000).await;

    // Eight clients push images until the server dies under them.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let client = Arc::new(Client::new());
    let mut pushers = Vec::new();
    for worker in 0..8u64 {
        let (client, base, acked_tx) = (client.clone(), base.clone(), acked_tx.clone());
        pushers.push(tokio::spawn(async move {
            for i in 0.. {
                let tag = format!("w{worker}-{i}");
                match try_push_image(&client, &base, &tag, worker * 10_000 + i).await {
                    Some(acked) => {
                        if acked_tx.send(acked).is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        }));
    }
    drop(acked_tx);
    let mut acked = Vec::new();
    while acked.len() < 40 {
        acked.push(acked_rx.recv().await.expect("pushers keep pushing while the server lives"));
    }
    server.kill();
    for pusher in pushers {
        pusher.await.expect("pusher stops when the server is gone");
    }
    while let Ok(late) = acked_rx.try_recv() {
        acked.push(late);
    }

    let server = ServerProcess::start(data_dir.path());
    let reg = Registry::at(server.url());
    for push in &acked {
        let reply = reg.get_manifest("crash/app", &push.tag).await;
        reply.expect_status_in(&[200], &format!("acknowledged manifest {}", push.tag));
        assert_eq!(reply.body, push.manifest);
        assert_eq!(reply.header("Docker-Content-Digest"), Some(sha256_digest(&push.manifest)));
        let blob = reg.get(&format!("/v2/crash/app/blobs/{}", sha256_digest(&push.layer))).await;
        blob.expect_status_in(&[200], "acknowledged layer");
        assert_eq!(sha256_digest(&blob.body), sha256_digest(&push.layer));
    }
    finish_upload(&reg, "crash/upload", &location, &partial, 50_000).await;
    server.terminate();
}
