//! Conformance workflow "Content Management": deleting a tag, a manifest by digest and
//! blobs, and what GET and the tags list answer afterwards.

use super::fixtures::{DEFAULT_TAG, Data, Slot};
use crate::support::registry::{OCI_MANIFEST, Registry, sha256_digest};

const REPO: &str = "conformance/management";
const OK: &[u16] = &[200, 201, 202, 204];

/// Upstream setup: the config and layer, the manifest under `tagtest0`; returns the
/// number of tags before anything is deleted.
async fn setup(reg: &Registry, data: &Data) -> usize {
    for blob in [data.config(Slot::Management), &data.layer[..]] {
        let location = reg.begin_upload(REPO).await;
        let reply = reg.put_upload(&location, &sha256_digest(blob), blob).await;
        reply.expect_status_in(OK, "setup: populate registry with test blob");
    }
    let reply =
        reg.put_manifest(REPO, DEFAULT_TAG, OCI_MANIFEST, data.manifest(Slot::Management)).await;
    reply.expect_status_in(OK, "setup: populate registry with test tag");
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "setup: count tags before deleting");
    reply.json()["tags"].as_array().map_or(0, Vec::len)
}

async fn ready() -> (Registry, Data, usize) {
    let reg = Registry::start();
    let data = Data::new();
    let tags = setup(&reg, &data).await;
    (reg, data, tags)
}

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

fn blob_path(blob: &[u8]) -> String {
    format!("/v2/{REPO}/blobs/{}", sha256_digest(blob))
}

async fn delete_tag(reg: &Registry) {
    reg.delete(&manifest_path(DEFAULT_TAG)).await.expect_status_in(&[202], "DELETE of a tag");
}

/// Deletes the tag, then the manifest by digest (202, or 404 had the tag delete taken the
/// manifest with it).
async fn delete_tag_and_manifest(reg: &Registry, data: &Data) {
    delete_tag(reg).await;
    let reply = reg.delete(&manifest_path(&data.manifest_digest(Slot::Management))).await;
    reply.expect_status_in(&[202, 404], "DELETE of the manifest by digest after its tag");
}

#[tokio::test]
async fn management_setup_populates_blobs_and_tag() {
    let (_reg, _data, tags) = ready().await;
    assert_eq!(tags, 1, "one tag before anything is deleted");
}

#[tokio::test]
async fn management_delete_tag_is_202() {
    let (reg, _data, _tags) = ready().await;
    delete_tag(&reg).await;
}

#[tokio::test]
async fn management_delete_manifest_by_digest_after_tag_is_202_or_404() {
    let (reg, data, _tags) = ready().await;
    delete_tag_and_manifest(&reg, &data).await;
}

#[tokio::test]
async fn management_get_deleted_manifest_is_404() {
    let (reg, data, _tags) = ready().await;
    delete_tag_and_manifest(&reg, &data).await;
    let reply = reg.get_manifest(REPO, &data.manifest_digest(Slot::Management)).await;
    reply.expect_status_in(&[404], "GET of the deleted manifest");
}

/// The tags list has one tag fewer: 200 with an empty list, or 404 as nothing is left.
#[tokio::test]
async fn management_tags_list_reflects_deletion() {
    let (reg, data, tags) = ready().await;
    delete_tag_and_manifest(&reg, &data).await;
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200, 404], "GET tags list after the deletes");
    if reply.status == 200 {
        let left = reply.json()["tags"].as_array().map_or(0, Vec::len);
        assert_eq!(left, tags - 1, "one tag fewer; {}", reply.describe());
    } else {
        assert_eq!(tags - 1, 0, "404 only when no tag is left");
    }
}

#[tokio::test]
async fn management_delete_blobs_is_202() {
    let (reg, data, _tags) = ready().await;
    delete_tag_and_manifest(&reg, &data).await;
    for blob in [data.config(Slot::Management), &data.layer[..]] {
        reg.delete(&blob_path(blob)).await.expect_status_in(&[202], "DELETE of a blob");
    }
}

#[tokio::test]
async fn management_get_deleted_blob_is_404() {
    let (reg, data, _tags) = ready().await;
    delete_tag_and_manifest(&reg, &data).await;
    let config = data.config(Slot::Management);
    reg.delete(&blob_path(config)).await.expect_status_in(&[202], "DELETE of the config blob");
    reg.get(&blob_path(config)).await.expect_status_in(&[404], "GET of the deleted blob");
}

/// Deleting a tag removes only the tag: the manifest stays reachable by digest.
#[tokio::test]
async fn management_delete_tag_removes_only_the_tag() {
    let (reg, data, _tags) = ready().await;
    delete_tag(&reg).await;
    reg.get_manifest(REPO, DEFAULT_TAG).await.expect_status_in(&[404], "GET of the deleted tag");
    let reply = reg.get_manifest(REPO, &data.manifest_digest(Slot::Management)).await;
    reply.expect_status_in(&[200], "GET of the manifest by digest after its tag was deleted");
    assert_eq!(reply.body, data.manifest(Slot::Management));
}

/// Deleting a manifest by digest takes every tag pointing at it.
#[tokio::test]
async fn management_delete_manifest_by_digest_removes_its_tags() {
    let (reg, data, _tags) = ready().await;
    let digest = data.manifest_digest(Slot::Management);
    let reply =
        reg.put_manifest(REPO, "second", OCI_MANIFEST, data.manifest(Slot::Management)).await;
    reply.expect_status_in(&[201], "PUT a second tag");
    reg.delete(&manifest_path(&digest))
        .await
        .expect_status_in(&[202], "DELETE of the manifest by digest");
    reg.get_manifest(REPO, &digest).await.expect_status_in(&[404], "GET by digest after delete");
    reg.get_manifest(REPO, DEFAULT_TAG)
        .await
        .expect_status_in(&[404], "GET by first tag after delete");
    reg.get_manifest(REPO, "second")
        .await
        .expect_status_in(&[404], "GET by second tag after delete");
}

/// Deleting a blob that does not exist answers 404.
#[tokio::test]
async fn management_delete_of_unknown_blob_is_404() {
    let (reg, _data, _tags) = ready().await;
    let path = format!("/v2/{REPO}/blobs/{}", sha256_digest(b"never pushed"));
    reg.delete(&path).await.expect_status_in(&[404], "DELETE of an unknown blob");
}
