//! Conformance workflow "Push": streamed, monolithic (POST+PUT and single POST) and chunked
//! blob uploads, cross-repository mounts and their fallback, manifest uploads, teardown.

use reqwest::Method;

use super::fixtures::{ChunkedBlob, Data, NONEXISTENT_MANIFEST, Slot, dummy_digest};
use crate::support::registry::{OCI_MANIFEST, Registry, Reply, location_path, sha256_digest};

const REPO: &str = "conformance/push";
const CROSS_REPO: &str = "conformance/crossmount";

fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

// ---- Blob upload, streamed ----

/// POST, then one PATCH carrying the whole blob without `Content-Range`.
async fn streamed_patch(reg: &Registry, data: &[u8]) -> Reply {
    let reply = reg.post_upload(REPO).await;
    let location = reply.location();
    let req = reg
        .request(Method::PATCH, &location)
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec());
    reg.send(req).await
}

/// The streamed upload of blob A, closed with a body-less PUT; asserts each step.
async fn streamed_upload_of_blob_a(reg: &Registry, data: &Data) {
    let patched = streamed_patch(reg, &data.blob_a).await;
    patched.expect_status_in(&[202], "streamed PATCH");
    let reply = reg.put_upload(&patched.location(), &sha256_digest(&data.blob_a), &[]).await;
    reply.expect_status_in(&[201], "closing PUT of the streamed upload");
    reply.location();
}

#[tokio::test]
async fn push_streamed_patch_with_whole_blob_is_202() {
    let reg = Registry::start();
    let data = Data::new();
    let reply = streamed_patch(&reg, &data.blob_a).await;
    reply.expect_status_in(&[202], "PATCH with the blob in the body");
}

#[tokio::test]
async fn push_streamed_closing_put_with_digest_is_201_with_location() {
    let reg = Registry::start();
    let data = Data::new();
    streamed_upload_of_blob_a(&reg, &data).await;
    let reply = reg.get(&blob_path(REPO, &sha256_digest(&data.blob_a))).await;
    reply.expect_status_in(&[200], "GET the streamed blob");
    assert_eq!(reply.body, data.blob_a);
}

// ---- Blob upload, monolithic ----

async fn single_post(reg: &Registry, blob: &[u8]) -> Reply {
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", sha256_digest(blob))])
        .header("Content-Type", "application/octet-stream")
        .body(blob.to_vec());
    reg.send(req).await
}

/// POST for a session, then PUT of the whole blob with its digest; asserts 201 + Location.
async fn post_then_put(reg: &Registry, blob: &[u8]) {
    let location = reg.begin_upload(REPO).await;
    let reply = reg.put_upload(&location, &sha256_digest(blob), blob).await;
    reply.expect_status_in(&[201], "PUT of a whole blob to the session");
    reply.location();
}

#[tokio::test]
async fn push_get_nonexistent_blob_is_404() {
    let reg = Registry::start();
    reg.get(&blob_path(REPO, &dummy_digest()))
        .await
        .expect_status_in(&[404], "GET nonexistent blob");
}

#[tokio::test]
async fn push_single_post_with_digest_and_blob_is_201_or_202() {
    let reg = Registry::start();
    let data = Data::new();
    let reply = single_post(&reg, data.config(Slot::Push)).await;
    reply.expect_status_in(&[201, 202], "POST with digest and blob");
    reply.location();
}

#[tokio::test]
async fn push_blob_after_single_post_exists_only_if_201() {
    let reg = Registry::start();
    let data = Data::new();
    let blob = data.config(Slot::Push);
    let posted = single_post(&reg, blob).await;
    posted.expect_status_in(&[201, 202], "POST with digest and blob");
    let reply = reg.get(&blob_path(REPO, &sha256_digest(blob))).await;
    if posted.status == 202 {
        reply.expect_status_in(&[404], "GET blob after a single POST answered 202");
    } else {
        reply.expect_status_in(&[200], "GET blob after a single POST answered 201");
        assert_eq!(reply.body, blob);
    }
}

#[tokio::test]
async fn push_post_yields_upload_session_202() {
    let reg = Registry::start();
    let reply = reg.post_upload(REPO).await;
    reply.expect_status_in(&[202], "POST /blobs/uploads/");
    reply.location();
}

#[tokio::test]
async fn push_put_of_blob_to_session_is_201_with_location() {
    let reg = Registry::start();
    let data = Data::new();
    post_then_put(&reg, data.config(Slot::Push)).await;
}

#[tokio::test]
async fn push_get_blob_after_put_is_200() {
    let reg = Registry::start();
    let data = Data::new();
    post_then_put(&reg, data.config(Slot::Push)).await;
    let reply = reg.get(&blob_path(REPO, &sha256_digest(data.config(Slot::Push)))).await;
    reply.expect_status_in(&[200], "GET existing blob");
    assert_eq!(reply.body, data.config(Slot::Push));
}

#[tokio::test]
async fn push_put_of_layer_blob_is_201_with_location() {
    let reg = Registry::start();
    let data = Data::new();
    post_then_put(&reg, &data.layer).await;
}

#[tokio::test]
async fn push_get_layer_after_put_is_200() {
    let reg = Registry::start();
    let data = Data::new();
    post_then_put(&reg, &data.layer).await;
    let reply = reg.get(&blob_path(REPO, &sha256_digest(&data.layer))).await;
    reply.expect_status_in(&[200], "GET existing layer");
    assert_eq!(reply.body, data.layer);
}

// ---- Blob upload, chunked ----

/// A session opened with `Content-Length: 0`, and a blob sized for its minimum chunk length.
struct ChunkedSession {
    location: String,
    blob: ChunkedBlob,
}

async fn open_chunked(reg: &Registry) -> ChunkedSession {
    let reply = reg.post_upload(REPO).await;
    reply.expect_status_in(&[202], "POST opening a chunked upload");
    let min = reply.header("OCI-Chunk-Min-Length").map(|v| {
        v.trim()
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("OCI-Chunk-Min-Length is an integer: {v:?}"))
    });
    ChunkedSession { location: reply.location(), blob: ChunkedBlob::for_min_chunk(min) }
}

/// Opens a session and uploads the first chunk, asserting 202 and the returned `Range`.
async fn after_first_chunk(reg: &Registry) -> (ChunkedSession, Reply) {
    let session = open_chunked(reg).await;
    let reply = reg.patch_chunk(&session.location, 0, session.blob.first()).await;
    reply.expect_status_in(&[202], "PATCH of the first chunk");
    assert_eq!(
        reply.header("Range"),
        Some(session.blob.first_range()),
        "Range after the first chunk"
    );
    (session, reply)
}

#[tokio::test]
async fn push_chunk_uploaded_out_of_order_is_416() {
    let reg = Registry::start();
    let session = open_chunked(&reg).await;
    let reply = reg.patch_chunk(&session.location, session.blob.split, session.blob.second()).await;
    reply.expect_status_in(&[416], "PATCH of the second chunk before the first");
}

#[tokio::test]
async fn push_first_chunk_is_202_with_range() {
    let reg = Registry::start();
    let (_session, reply) = after_first_chunk(&reg).await;
    reply.location();
}

#[tokio::test]
async fn push_retried_first_chunk_is_416() {
    let reg = Registry::start();
    let (session, _) = after_first_chunk(&reg).await;
    // Retry at the location from the POST, as a client that lost the PATCH answer would.
    let reply = reg.patch_chunk(&session.location, 0, session.blob.first()).await;
    reply.expect_status_in(&[416], "retry of the first chunk");
}

#[tokio::test]
async fn push_status_of_stale_upload_is_204_with_range_and_location() {
    let reg = Registry::start();
    let (session, _) = after_first_chunk(&reg).await;
    let _ = reg.patch_chunk(&session.location, 0, session.blob.first()).await;
    let reply = reg.get(&session.location).await;
    reply.expect_status_in(&[204], "GET of the upload session");
    reply.location();
    assert_eq!(
        reply.header("Range"),
        Some(session.blob.first_range()),
        "Range of the upload status"
    );
}

/// First chunk, a rejected retry, a status GET, then the second chunk at the status Location.
async fn after_second_chunk(reg: &Registry) -> (ChunkedSession, Reply) {
    let (session, _) = after_first_chunk(reg).await;
    let retry = reg.patch_chunk(&session.location, 0, session.blob.first()).await;
    retry.expect_status_in(&[416], "retry of the first chunk");
    let status = reg.get(&session.location).await;
    status.expect_status_in(&[204], "GET of the upload session");
    let reply =
        reg.patch_chunk(&status.location(), session.blob.split, session.blob.second()).await;
    (session, reply)
}

#[tokio::test]
async fn push_second_chunk_is_202_with_full_range_and_location() {
    let reg = Registry::start();
    let (session, reply) = after_second_chunk(&reg).await;
    reply.expect_status_in(&[202], "PATCH of the second chunk");
    let expected = format!("0-{}", session.blob.data.len() - 1);
    assert_eq!(reply.header("Range"), Some(expected), "Range after the second chunk");
    reply.location();
}

#[tokio::test]
async fn push_closing_put_of_chunked_upload_is_201_with_location() {
    let reg = Registry::start();
    let (session, patched) = after_second_chunk(&reg).await;
    patched.expect_status_in(&[202], "PATCH of the second chunk");
    let reply = reg.put_upload(&patched.location(), &session.blob.digest(), &[]).await;
    reply.expect_status_in(&[201], "closing PUT with the digest");
    reply.location();
    let fetched = reg.get(&blob_path(REPO, &session.blob.digest())).await;
    fetched.expect_status_in(&[200], "GET the chunked blob");
    assert_eq!(fetched.body, session.blob.data, "the chunks were joined in order");
}

// ---- Cross-repository blob mount ----

async fn mount(reg: &Registry, digest: &str, from: Option<&str>) -> Reply {
    let mut req = reg
        .request(Method::POST, &format!("/v2/{CROSS_REPO}/blobs/uploads/"))
        .query(&[("mount", digest)]);
    if let Some(from) = from {
        req = req.query(&[("from", from)]);
    }
    reg.send(req.header("Content-Length", "0").body(Vec::new())).await
}

#[tokio::test]
async fn push_mount_of_unknown_blob_without_from_yields_upload_session() {
    let reg = Registry::start();
    let reply = mount(&reg, &dummy_digest(), None).await;
    reply.expect_status_in(&[202], "mount of a nonexistent blob without `from`");
    reply.location();
}

#[tokio::test]
async fn push_mount_from_other_repo_is_201_or_202() {
    let reg = Registry::start();
    let data = Data::new();
    streamed_upload_of_blob_a(&reg, &data).await;
    let reply = mount(&reg, &sha256_digest(&data.blob_a), Some(REPO)).await;
    reply.expect_status_in(&[201, 202], "mount of another repository's blob");
}

#[tokio::test]
async fn push_mounted_blob_is_readable_in_target_repo() {
    let reg = Registry::start();
    let data = Data::new();
    streamed_upload_of_blob_a(&reg, &data).await;
    let digest = sha256_digest(&data.blob_a);
    let reply = mount(&reg, &digest, Some(REPO)).await;
    reply.expect_status_in(&[201, 202], "mount of another repository's blob");
    if reply.status == 201 {
        let location = reply.location();
        assert_eq!(
            location_path(&location),
            blob_path(CROSS_REPO, &digest),
            "Location of the mounted blob"
        );
        let fetched = reg.get(&location).await;
        fetched.expect_status_in(&[200], "GET of the mounted blob");
        assert_eq!(fetched.body, data.blob_a);
    }
}

#[tokio::test]
async fn push_mount_answered_202_points_at_an_upload_session() {
    let reg = Registry::start();
    let data = Data::new();
    streamed_upload_of_blob_a(&reg, &data).await;
    let reply = mount(&reg, &sha256_digest(&data.blob_a), Some(REPO)).await;
    reply.expect_status_in(&[201, 202], "mount of another repository's blob");
    if reply.status == 202 {
        let prefix = format!("/v2/{CROSS_REPO}/blobs/uploads/");
        let path = location_path(&reply.location());
        assert!(path.starts_with(&prefix), "fallback Location {path:?} starts with {prefix:?}");
    }
}

/// Mounting without `from` a blob the registry holds elsewhere: the registry MAY find it
/// (201, blob readable) or MAY open an upload session instead (202).
#[tokio::test]
async fn push_mount_without_from_of_known_blob_is_201_or_202() {
    let reg = Registry::start();
    let data = Data::new();
    streamed_upload_of_blob_a(&reg, &data).await;
    let digest = sha256_digest(&data.blob_a);
    let reply = mount(&reg, &digest, None).await;
    reply.expect_status_in(&[201, 202], "mount of a known blob without `from`");
    if reply.status == 201 {
        reg.get(&blob_path(CROSS_REPO, &digest))
            .await
            .expect_status_in(&[200], "GET of the mounted blob");
    } else {
        let path = location_path(&reply.location());
        assert!(
            path.starts_with(&format!("/v2/{CROSS_REPO}/blobs/uploads/")),
            "upload session: {path}"
        );
    }
}

/// A blob the source repository does not hold cannot be mounted: the registry falls back
/// to a regular upload session (202 + Location) which then accepts the blob.
#[tokio::test]
async fn push_mount_of_blob_absent_from_source_falls_back_to_upload() {
    let reg = Registry::start();
    let data = Data::new();
    reg.push_blob(REPO, &data.layer).await; // the source repository exists, without blob A
    let digest = sha256_digest(&data.blob_a);
    let reply = mount(&reg, &digest, Some(REPO)).await;
    reply.expect_status_in(&[202], "mount of a blob the source does not hold");
    let put = reg.put_upload(&reply.location(), &digest, &data.blob_a).await;
    put.expect_status_in(&[201], "PUT to the fallback upload session");
    let fetched = reg.get(&blob_path(CROSS_REPO, &digest)).await;
    fetched.expect_status_in(&[200], "GET of the uploaded blob");
    assert_eq!(fetched.body, data.blob_a);
}

// ---- Manifest upload ----

async fn push_blobs_for_manifest(reg: &Registry, data: &Data) {
    post_then_put(reg, data.config(Slot::Push)).await;
    post_then_put(reg, &data.layer).await;
}

/// Pushes the push-workflow manifest under tags test0..test3, asserting 201 + Location.
async fn push_manifest_under_tags(reg: &Registry, data: &Data) {
    for i in 0..4 {
        let reply = reg
            .put_manifest(REPO, &format!("test{i}"), OCI_MANIFEST, data.manifest(Slot::Push))
            .await;
        reply.expect_status_in(&[201], "PUT manifest by tag");
        reply.location();
    }
}

#[tokio::test]
async fn push_get_nonexistent_manifest_is_404() {
    let reg = Registry::start();
    reg.get_manifest(REPO, NONEXISTENT_MANIFEST)
        .await
        .expect_status_in(&[404], "GET nonexistent manifest");
}

#[tokio::test]
async fn push_manifest_upload_under_several_tags_is_201() {
    let reg = Registry::start();
    let data = Data::new();
    push_blobs_for_manifest(&reg, &data).await;
    push_manifest_under_tags(&reg, &data).await;
}

#[tokio::test]
async fn push_manifest_without_layers_is_201() {
    let reg = Registry::start();
    let data = Data::new();
    push_blobs_for_manifest(&reg, &data).await;
    let reply =
        reg.put_manifest(REPO, "emptylayer", OCI_MANIFEST, &data.empty_layer_manifest).await;
    reply.expect_status_in(&[201], "PUT manifest with no layers");
    reply.location();
}

#[tokio::test]
async fn push_get_pushed_manifest_by_digest_is_200() {
    let reg = Registry::start();
    let data = Data::new();
    push_blobs_for_manifest(&reg, &data).await;
    push_manifest_under_tags(&reg, &data).await;
    let reply = reg.get_manifest(REPO, &data.manifest_digest(Slot::Push)).await;
    reply.expect_status_in(&[200], "GET manifest by digest");
    assert_eq!(reply.body, data.manifest(Slot::Push));
}

/// The upstream teardown: the manifests (202), then the config and layer (202 or 404).
#[tokio::test]
async fn push_teardown_deletes_manifests_then_blobs() {
    let reg = Registry::start();
    let data = Data::new();
    push_blobs_for_manifest(&reg, &data).await;
    push_manifest_under_tags(&reg, &data).await;
    let reply =
        reg.put_manifest(REPO, "emptylayer", OCI_MANIFEST, &data.empty_layer_manifest).await;
    reply.expect_status_in(&[201], "PUT manifest with no layers");

    for manifest in [data.manifest(Slot::Push), &data.empty_layer_manifest[..]] {
        let path = format!("/v2/{REPO}/manifests/{}", sha256_digest(manifest));
        reg.delete(&path).await.expect_status_in(&[202], "DELETE manifest created in tests");
    }
    for blob in [data.config(Slot::Push), &data.layer[..]] {
        let reply = reg.delete(&blob_path(REPO, &sha256_digest(blob))).await;
        reply.expect_status_in(&[202, 404], "DELETE blob created in tests");
    }
}
