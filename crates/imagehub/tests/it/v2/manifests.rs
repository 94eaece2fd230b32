//! Manifest round trips beyond the conformance suite: exact bytes and headers, Docker
//! schema 2 manifests and manifest lists, OCI indexes, sha512 references, `subject`
//! handling (`OCI-Subject`) and a large manifest within the spec's minimum.

use reqwest::Method;
use serde_json::json;

use crate::support::registry::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
    Registry, Reply, annotated_manifest, descriptor, image_config, image_index, push_image,
    random_bytes, sha256_digest, sha512_digest,
};

const REPO: &str = "manifests/test";

/// GET with `Accept: <media_type>`.
async fn get_as(reg: &Registry, reference: &str, media_type: &str) -> Reply {
    let req = reg
        .request(Method::GET, &format!("/v2/{REPO}/manifests/{reference}"))
        .header("Accept", media_type);
    reg.send(req).await
}

/// The exact bytes, `Content-Type`, `Docker-Content-Digest` and `Content-Length`.
fn check_served(reply: &Reply, body: &[u8], media_type: &str, digest: &str) {
    reply.expect_status_in(&[200], "GET of a pushed manifest");
    assert_eq!(reply.body, body, "the exact bytes pushed");
    assert_eq!(
        reply.header("Content-Type").as_deref(),
        Some(media_type),
        "Content-Type; {}",
        reply.describe()
    );
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest),
        "Docker-Content-Digest"
    );
    assert_eq!(reply.header("Content-Length"), Some(body.len().to_string()), "Content-Length");
}

#[tokio::test]
async fn manifest_get_returns_exact_bytes_and_headers() {
    let reg = Registry::start();
    let (body, digest) = push_image(&reg, REPO, "v1", "exact-bytes").await;
    check_served(&get_as(&reg, "v1", OCI_MANIFEST).await, &body, OCI_MANIFEST, &digest);
    check_served(&get_as(&reg, &digest, OCI_MANIFEST).await, &body, OCI_MANIFEST, &digest);
}

#[tokio::test]
async fn manifest_head_gives_headers_of_get() {
    let reg = Registry::start();
    let (body, digest) = push_image(&reg, REPO, "v1", "head").await;
    let reply = reg.head_manifest(REPO, "v1").await;
    reply.expect_status_in(&[200], "HEAD of a manifest");
    assert_eq!(reply.header("Content-Type").as_deref(), Some(OCI_MANIFEST));
    assert_eq!(reply.header("Docker-Content-Digest"), Some(digest));
    assert_eq!(reply.header("Content-Length"), Some(body.len().to_string()));
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn manifest_put_answers_digest_and_pullable_location() {
    let reg = Registry::start();
    let config = image_config("put-headers");
    reg.push_blob(REPO, &config).await;
    let body =
        annotated_manifest(&config, &[], json!({ "note": "whitespace and key order are kept" }));
    let reply = reg.put_manifest(REPO, "v1", OCI_MANIFEST, &body).await;
    reply.expect_status_in(&[201], "PUT of a manifest");
    let digest = sha256_digest(&body);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(digest.clone()));
    let fetched =
        reg.send(reg.request(Method::GET, &reply.location()).header("Accept", OCI_MANIFEST)).await;
    check_served(&fetched, &body, OCI_MANIFEST, &digest);
}

#[tokio::test]
async fn docker_schema2_manifest_round_trips() {
    let reg = Registry::start();
    let config = image_config("docker-config");
    let layer = random_bytes(80, 0xD0C);
    reg.push_blob(REPO, &config).await;
    reg.push_blob(REPO, &layer).await;
    let body = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": [descriptor(DOCKER_LAYER, &layer)],
    }))
    .expect("serialize");
    let digest = reg.push_manifest(REPO, "docker", DOCKER_MANIFEST, &body).await;
    check_served(&get_as(&reg, "docker", DOCKER_MANIFEST).await, &body, DOCKER_MANIFEST, &digest);
    check_served(&get_as(&reg, &digest, DOCKER_MANIFEST).await, &body, DOCKER_MANIFEST, &digest);
}

#[tokio::test]
async fn docker_manifest_list_round_trips() {
    let reg = Registry::start();
    let config = image_config("docker-list");
    let layer = random_bytes(80, 0x11);
    reg.push_blob(REPO, &config).await;
    reg.push_blob(REPO, &layer).await;
    let child = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": [descriptor(DOCKER_LAYER, &layer)],
    }))
    .expect("serialize");
    let child_digest =
        reg.push_manifest(REPO, &sha256_digest(&child), DOCKER_MANIFEST, &child).await;
    let mut entry = descriptor(DOCKER_MANIFEST, &child);
    entry["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    let list = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [entry],
    }))
    .expect("serialize");
    let digest = reg.push_manifest(REPO, "list", DOCKER_MANIFEST_LIST, &list).await;
    check_served(
        &get_as(&reg, "list", DOCKER_MANIFEST_LIST).await,
        &list,
        DOCKER_MANIFEST_LIST,
        &digest,
    );
    check_served(
        &get_as(&reg, &child_digest, DOCKER_MANIFEST).await,
        &child,
        DOCKER_MANIFEST,
        &child_digest,
    );
}

#[tokio::test]
async fn oci_index_round_trips() {
    let reg = Registry::start();
    let (child, _) = push_image(&reg, REPO, "child", "index-child").await;
    let index = image_index(&[&child]);
    let digest = reg.push_manifest(REPO, "index", OCI_INDEX, &index).await;
    check_served(&get_as(&reg, "index", OCI_INDEX).await, &index, OCI_INDEX, &digest);
}

#[tokio::test]
async fn manifest_pushed_by_sha512_digest_is_stored_under_it() {
    let reg = Registry::start();
    let config = image_config("sha512-manifest");
    reg.push_blob(REPO, &config).await;
    let body = annotated_manifest(&config, &[], json!({ "digest": "sha512" }));
    let digest = sha512_digest(&body);
    let reply = reg.put_manifest(REPO, &digest, OCI_MANIFEST, &body).await;
    reply.expect_status_in(&[201], "PUT of a manifest by sha512 digest");
    assert_eq!(
        reply.header("Docker-Content-Digest"),
        Some(digest.clone()),
        "the sha512 digest is answered"
    );
    check_served(&get_as(&reg, &digest, OCI_MANIFEST).await, &body, OCI_MANIFEST, &digest);
    let head = reg.head_manifest(REPO, &digest).await;
    head.expect_status_in(&[200], "HEAD by sha512 digest");
}

#[tokio::test]
async fn manifest_by_tag_with_sha512_blobs_round_trips() {
    let reg = Registry::start();
    let config = image_config("sha512-config");
    let config_digest = sha512_digest(&config);
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", config_digest.as_str())])
        .header("Content-Type", "application/octet-stream")
        .body(config.clone());
    let posted = reg.send(req).await;
    posted.expect_status_in(&[201, 202], "single POST of a sha512 blob");
    if posted.status == 202 {
        let reply = reg.put_upload(&posted.location(), &config_digest, &config).await;
        reply.expect_status_in(&[201], "PUT of a sha512 blob");
    }
    let body = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [],
    }))
    .expect("serialize");
    let digest = reg.push_manifest(REPO, "sha512", OCI_MANIFEST, &body).await;
    check_served(&get_as(&reg, "sha512", OCI_MANIFEST).await, &body, OCI_MANIFEST, &digest);
}

#[tokio::test]
async fn manifest_with_subject_answers_oci_subject() {
    let reg = Registry::start();
    let (subject, subject_digest) = push_image(&reg, REPO, "v1", "subject").await;
    let empty = b"{}".to_vec();
    reg.push_blob(REPO, &empty).await;
    let artifact = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", &empty)],
        "subject": descriptor(OCI_MANIFEST, &subject),
    }))
    .expect("serialize");
    let reply = reg.put_manifest(REPO, &sha256_digest(&artifact), OCI_MANIFEST, &artifact).await;
    reply.expect_status_in(&[201], "PUT of a manifest with a subject");
    assert_eq!(reply.header("OCI-Subject"), Some(subject_digest));
}

#[tokio::test]
async fn manifest_with_missing_subject_is_accepted() {
    let reg = Registry::start();
    let empty = b"{}".to_vec();
    reg.push_blob(REPO, &empty).await;
    let never_pushed = b"{\"schemaVersion\":2,\"note\":\"never pushed\"}".to_vec();
    let artifact = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", &empty)],
        "subject": descriptor(OCI_MANIFEST, &never_pushed),
    }))
    .expect("serialize");
    let reply = reg.put_manifest(REPO, "note", OCI_MANIFEST, &artifact).await;
    reply.expect_status_in(&[201], "PUT of a manifest whose subject does not exist");
    assert_eq!(reply.header("OCI-Subject"), Some(sha256_digest(&never_pushed)));
    reg.get_manifest(REPO, "note").await.expect_status_in(&[200], "GET of the accepted manifest");
}

/// Registries should accept manifests of at least 4 megabytes.
#[tokio::test]
async fn manifest_of_four_megabytes_is_accepted() {
    let reg = Registry::start();
    let config = image_config("big");
    reg.push_blob(REPO, &config).await;
    let skeleton = annotated_manifest(&config, &[], json!({ "pad": "" }));
    let pad = "p".repeat(4_000_000 - skeleton.len());
    let body = annotated_manifest(&config, &[], json!({ "pad": pad }));
    assert_eq!(body.len(), 4_000_000);
    let digest = reg.push_manifest(REPO, "big", OCI_MANIFEST, &body).await;
    check_served(&get_as(&reg, "big", OCI_MANIFEST).await, &body, OCI_MANIFEST, &digest);
}

#[tokio::test]
async fn manifest_tag_moves_to_the_latest_push() {
    let reg = Registry::start();
    let (first, first_digest) = push_image(&reg, REPO, "moving", "first").await;
    let (second, second_digest) = push_image(&reg, REPO, "moving", "second").await;
    assert_ne!(first, second);
    check_served(
        &get_as(&reg, "moving", OCI_MANIFEST).await,
        &second,
        OCI_MANIFEST,
        &second_digest,
    );
    check_served(
        &get_as(&reg, &first_digest, OCI_MANIFEST).await,
        &first,
        OCI_MANIFEST,
        &first_digest,
    );
}
