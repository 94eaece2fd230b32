//! Conformance workflow "Pull": setup pushes, HEAD/GET of blobs and manifests (present and
//! absent, by digest and by tag), the error-body check, and the teardown deletes.

use super::fixtures::{DEFAULT_TAG, Data, NONEXISTENT_MANIFEST, Slot, dummy_digest};
use crate::support::registry::{OCI_MANIFEST, Registry, SPEC_ERROR_CODES, sha256_digest};

const REPO: &str = "conformance/pull";

/// The upstream "Setup" steps: two config blobs and a layer, the first manifest under a tag
/// and the second by digest. Each step must answer 2xx.
async fn setup(reg: &Registry, data: &Data) {
    for blob in [data.config(Slot::Pull0), data.config(Slot::Pull1), &data.layer[..]] {
        let location = reg.begin_upload(REPO).await;
        let reply = reg.put_upload(&location, &sha256_digest(blob), blob).await;
        reply.expect_status_in(&[200, 201, 202, 204], "setup: populate registry with test blob");
    }
    let reply = reg.put_manifest(REPO, DEFAULT_TAG, OCI_MANIFEST, data.manifest(Slot::Pull0)).await;
    reply.expect_status_in(&[200, 201, 202, 204], "setup: populate registry with tagged manifest");
    let digest = data.manifest_digest(Slot::Pull1);
    let reply = reg.put_manifest(REPO, &digest, OCI_MANIFEST, data.manifest(Slot::Pull1)).await;
    reply.expect_status_in(
        &[200, 201, 202, 204],
        "setup: populate registry with manifest by digest",
    );
}

async fn ready() -> (Registry, Data) {
    let reg = Registry::start();
    let data = Data::new();
    setup(&reg, &data).await;
    (reg, data)
}

fn blob_path(digest: &str) -> String {
    format!("/v2/{REPO}/blobs/{digest}")
}

/// If present, `Docker-Content-Digest` must name the expected content.
fn check_optional_digest(reply: &crate::support::registry::Reply, expected: &str) {
    if let Some(found) = reply.header("Docker-Content-Digest") {
        assert_eq!(found, expected, "Docker-Content-Digest; {}", reply.describe());
    }
}

#[tokio::test]
async fn pull_setup_populates_blobs_layer_and_manifests() {
    let (reg, data) = ready().await;
    // The setup asserted each push; the tagged manifest is now reachable by its tag.
    let reply = reg.get_manifest(REPO, DEFAULT_TAG).await;
    reply.expect_status_in(&[200], "GET the manifest pushed by tag in setup");
    assert_eq!(reply.body, data.manifest(Slot::Pull0));
}

#[tokio::test]
async fn pull_head_nonexistent_blob_is_404() {
    let (reg, _data) = ready().await;
    reg.head(&blob_path(&dummy_digest())).await.expect_status_in(&[404], "HEAD nonexistent blob");
}

#[tokio::test]
async fn pull_head_existing_blob_is_200() {
    let (reg, data) = ready().await;
    let digest = sha256_digest(data.config(Slot::Pull0));
    let reply = reg.head(&blob_path(&digest)).await;
    reply.expect_status_in(&[200], "HEAD existing blob");
    check_optional_digest(&reply, &digest);
}

#[tokio::test]
async fn pull_get_nonexistent_blob_is_404() {
    let (reg, _data) = ready().await;
    reg.get(&blob_path(&dummy_digest())).await.expect_status_in(&[404], "GET nonexistent blob");
}

#[tokio::test]
async fn pull_get_existing_blob_is_200() {
    let (reg, data) = ready().await;
    let digest = sha256_digest(data.config(Slot::Pull0));
    let reply = reg.get(&blob_path(&digest)).await;
    reply.expect_status_in(&[200], "GET existing blob");
    assert_eq!(reply.body, data.config(Slot::Pull0), "blob GET returns the pushed bytes");
}

#[tokio::test]
async fn pull_head_nonexistent_manifest_is_404() {
    let (reg, _data) = ready().await;
    let reply = reg.head_manifest(REPO, NONEXISTENT_MANIFEST).await;
    reply.expect_status_in(&[404], "HEAD nonexistent manifest");
}

#[tokio::test]
async fn pull_head_tagged_manifest_by_digest_is_200() {
    let (reg, data) = ready().await;
    let digest = data.manifest_digest(Slot::Pull0);
    let reply = reg.head_manifest(REPO, &digest).await;
    reply.expect_status_in(&[200], "HEAD manifest[0] by digest");
    check_optional_digest(&reply, &digest);
}

#[tokio::test]
async fn pull_head_untagged_manifest_by_digest_is_200() {
    let (reg, data) = ready().await;
    let digest = data.manifest_digest(Slot::Pull1);
    let reply = reg.head_manifest(REPO, &digest).await;
    reply.expect_status_in(&[200], "HEAD manifest[1] by digest");
    check_optional_digest(&reply, &digest);
}

#[tokio::test]
async fn pull_head_manifest_by_tag_is_200() {
    let (reg, data) = ready().await;
    let reply = reg.head_manifest(REPO, DEFAULT_TAG).await;
    reply.expect_status_in(&[200], "HEAD manifest by tag");
    check_optional_digest(&reply, &data.manifest_digest(Slot::Pull0));
}

#[tokio::test]
async fn pull_get_nonexistent_manifest_is_404() {
    let (reg, _data) = ready().await;
    let reply = reg.get_manifest(REPO, NONEXISTENT_MANIFEST).await;
    reply.expect_status_in(&[404], "GET nonexistent manifest");
}

#[tokio::test]
async fn pull_get_tagged_manifest_by_digest_is_200() {
    let (reg, data) = ready().await;
    let reply = reg.get_manifest(REPO, &data.manifest_digest(Slot::Pull0)).await;
    reply.expect_status_in(&[200], "GET manifest[0] by digest");
    assert_eq!(reply.body, data.manifest(Slot::Pull0));
}

#[tokio::test]
async fn pull_get_untagged_manifest_by_digest_is_200() {
    let (reg, data) = ready().await;
    let reply = reg.get_manifest(REPO, &data.manifest_digest(Slot::Pull1)).await;
    reply.expect_status_in(&[200], "GET manifest[1] by digest");
    assert_eq!(reply.body, data.manifest(Slot::Pull1));
}

#[tokio::test]
async fn pull_get_manifest_by_tag_is_200() {
    let (reg, data) = ready().await;
    let reply = reg.get_manifest(REPO, DEFAULT_TAG).await;
    reply.expect_status_in(&[200], "GET manifest by tag");
    assert_eq!(reply.body, data.manifest(Slot::Pull0));
}

/// A malformed digest reference answers 404, or 400 with a spec error code in JSON.
#[tokio::test]
async fn pull_malformed_digest_reference_gets_404_or_400_with_oci_error_body() {
    let (reg, _data) = ready().await;
    let req = reg
        .request(reqwest::Method::GET, &format!("/v2/{REPO}/manifests/sha256:totallywrong"))
        .header("Content-Type", OCI_MANIFEST)
        .body(b"blablabla".to_vec());
    let reply = reg.send(req).await;
    reply.expect_status_in(&[400, 404], "GET manifest with a malformed digest");
    if reply.status == 400 {
        reply.expect_oci_error(&[400], SPEC_ERROR_CODES, "400 for a malformed digest");
    }
}

/// The upstream teardown: manifests are deleted first (202), then the blobs (202, or 404 if
/// the registry already dropped them with the manifests).
#[tokio::test]
async fn pull_teardown_deletes_manifests_then_blobs() {
    let (reg, data) = ready().await;
    for slot in [Slot::Pull0, Slot::Pull1] {
        let path = format!("/v2/{REPO}/manifests/{}", data.manifest_digest(slot));
        reg.delete(&path).await.expect_status_in(&[202], "DELETE manifest created in setup");
    }
    for blob in [data.config(Slot::Pull0), data.config(Slot::Pull1), &data.layer[..]] {
        let reply = reg.delete(&blob_path(&sha256_digest(blob))).await;
        reply.expect_status_in(&[202, 404], "DELETE blob created in setup");
    }
}
