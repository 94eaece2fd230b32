//! Upload sessions beyond the conformance suite: status (204, `Range`, `Docker-Upload-UUID`),
//! cancellation, a PATCH at the wrong offset, and the final chunk sent with the PUT.

use reqwest::Method;

use crate::support::registry::{Registry, random_bytes, sha256_digest};

const REPO: &str = "uploads/test";

#[tokio::test]
async fn upload_status_is_204_with_range_location_and_uuid() {
    let reg = Registry::start();
    let data = random_bytes(30, 0x5747);
    let location = reg.begin_upload(REPO).await;
    let patched = reg.patch_chunk(&location, 0, &data).await;
    patched.expect_status_in(&[202], "PATCH of 30 bytes");
    let reply = reg.get(&patched.location()).await;
    reply.expect_status_in(&[204], "GET of the upload session");
    assert_eq!(reply.header("Range").as_deref(), Some("0-29"), "Range after 30 bytes");
    assert!(
        reply.header("Docker-Upload-UUID").is_some_and(|u| !u.is_empty()),
        "Docker-Upload-UUID; {}",
        reply.describe()
    );
    reply.location();
    assert!(reply.body.is_empty(), "204 has no body");
}

#[tokio::test]
async fn upload_status_reflects_each_chunk() {
    let reg = Registry::start();
    let data = random_bytes(25, 0xC4);
    let mut location = reg.begin_upload(REPO).await;
    for (start, end) in [(0, 10), (10, 20), (20, 25)] {
        let reply = reg.patch_chunk(&location, start, &data[start..end]).await;
        reply.expect_status_in(&[202], "PATCH of a chunk");
        assert_eq!(reply.header("Range"), Some(format!("0-{}", end - 1)), "Range after a chunk");
        location = reply.location();
        let status = reg.get(&location).await;
        status.expect_status_in(&[204], "GET of the upload session");
        assert_eq!(status.header("Range"), Some(format!("0-{}", end - 1)), "Range of the status");
    }
    let reply = reg.put_upload(&location, &sha256_digest(&data), &[]).await;
    reply.expect_status_in(&[201], "closing PUT");
    let fetched = reg.get(&format!("/v2/{REPO}/blobs/{}", sha256_digest(&data))).await;
    assert_eq!(fetched.body, data);
}

#[tokio::test]
async fn upload_cancelled_with_delete_is_then_unknown() {
    let reg = Registry::start();
    let location = reg.begin_upload(REPO).await;
    let patched = reg.patch_chunk(&location, 0, b"some bytes").await;
    patched.expect_status_in(&[202], "PATCH before cancelling");
    let location = patched.location();
    let req = reg.request(Method::DELETE, &location).header("Content-Length", "0");
    let reply = reg.send(req).await;
    reply.expect_status_in(&[204], "DELETE of the upload session");
    let reply = reg.get(&location).await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "GET of a cancelled upload");
    let reply = reg.patch_chunk(&location, 10, b"more").await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "PATCH of a cancelled upload");
}

#[tokio::test]
async fn upload_patch_at_wrong_offset_is_416_with_current_range() {
    let reg = Registry::start();
    let data = random_bytes(20, 0x416);
    let location = reg.begin_upload(REPO).await;
    let patched = reg.patch_chunk(&location, 0, &data[..10]).await;
    patched.expect_status_in(&[202], "PATCH of the first 10 bytes");
    let location = patched.location();

    let reply = reg.patch_chunk(&location, 5, &data[5..15]).await;
    reply.expect_status_in(&[416], "PATCH starting at 5 when 10 bytes are stored");
    assert_eq!(
        reply.header("Range").as_deref(),
        Some("0-9"),
        "416 reports the stored range; {}",
        reply.describe()
    );

    let reply = reg.patch_chunk(&location, 12, &data[12..20]).await;
    reply.expect_status_in(&[416], "PATCH leaving a gap");

    // The session is intact: the right offset still works.
    let reply = reg.patch_chunk(&location, 10, &data[10..]).await;
    reply.expect_status_in(&[202], "PATCH at the right offset after 416s");
    let reply = reg.put_upload(&reply.location(), &sha256_digest(&data), &[]).await;
    reply.expect_status_in(&[201], "closing PUT");
}

#[tokio::test]
async fn upload_final_chunk_sent_with_closing_put() {
    let reg = Registry::start();
    let data = random_bytes(40, 0xF1);
    let location = reg.begin_upload(REPO).await;
    let patched = reg.patch_chunk(&location, 0, &data[..25]).await;
    patched.expect_status_in(&[202], "PATCH of the first chunk");
    let req = reg
        .request(Method::PUT, &patched.location())
        .query(&[("digest", sha256_digest(&data))])
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", "25-39")
        .body(data[25..].to_vec());
    let reply = reg.send(req).await;
    reply.expect_status_in(&[201], "closing PUT carrying the final chunk");
    let fetched = reg.get(&reply.location()).await;
    fetched.expect_status_in(&[200], "GET of the blob");
    assert_eq!(fetched.body, data);
}

#[tokio::test]
async fn upload_session_is_gone_after_completion() {
    let reg = Registry::start();
    let data = random_bytes(16, 0xD0);
    let location = reg.begin_upload(REPO).await;
    reg.put_upload(&location, &sha256_digest(&data), &data)
        .await
        .expect_status_in(&[201], "PUT of the blob");
    let reply = reg.get(&location).await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "GET of a completed upload session");
}
