//! Error cases: malformed and mismatched digests, invalid and unknown repository names,
//! oversized, mistyped, malformed and dangling manifests, unknown uploads, and the shape of
//! every error body (`{"errors":[{"code","message"}]}` as `application/json`).

use reqwest::Method;
use serde_json::json;

use crate::support::registry::{
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Registry, annotated_manifest, descriptor,
    image_config, image_manifest, push_image, random_bytes, raw_exchange_expecting_continue,
    sha256_digest,
};

const REPO: &str = "errors/test";

/// Digests that are syntactically wrong (or, for sha256, not 64 lowercase hex digits).
fn malformed_digests() -> Vec<String> {
    vec![
        "sha256:xyz".to_string(),
        format!("sha256:{}", "a".repeat(63)),
        format!("sha256:{}", "a".repeat(65)),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "g".repeat(64)),
        "notadigest".to_string(),
        format!("sha512:{}", "a".repeat(64)),
    ]
}

/// A repository that exists, holding one image.
async fn with_repo() -> Registry {
    let reg = Registry::start();
    push_image(&reg, REPO, "latest", "errors").await;
    reg
}

#[tokio::test]
async fn blob_get_with_malformed_digest_is_400_digest_invalid() {
    let reg = with_repo().await;
    for digest in malformed_digests() {
        let reply = reg.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
        reply.expect_oci_error(&[400], &["DIGEST_INVALID"], &format!("GET blob {digest}"));
    }
}

#[tokio::test]
async fn blob_head_with_malformed_digest_is_400() {
    let reg = with_repo().await;
    for digest in malformed_digests() {
        let reply = reg.head(&format!("/v2/{REPO}/blobs/{digest}")).await;
        reply.expect_status_in(&[400], &format!("HEAD blob {digest}"));
    }
}

#[tokio::test]
async fn blob_delete_with_malformed_digest_is_400_digest_invalid() {
    let reg = with_repo().await;
    let reply = reg.delete(&format!("/v2/{REPO}/blobs/sha256:xyz")).await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "DELETE blob sha256:xyz");
}

#[tokio::test]
async fn upload_put_with_malformed_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let data = random_bytes(32, 1);
    for digest in malformed_digests() {
        let location = reg.begin_upload(REPO).await;
        let reply = reg.put_upload(&location, &digest, &data).await;
        reply.expect_oci_error(
            &[400],
            &["DIGEST_INVALID"],
            &format!("PUT upload with digest {digest}"),
        );
    }
}

#[tokio::test]
async fn upload_put_with_unsupported_algorithm_is_400_digest_invalid() {
    let reg = Registry::start();
    let location = reg.begin_upload(REPO).await;
    let reply = reg.put_upload(&location, "md5:d41d8cd98f00b204e9800998ecf8427e", b"").await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "PUT upload with an md5 digest");
}

#[tokio::test]
async fn single_post_with_malformed_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", "sha256:xyz")])
        .header("Content-Type", "application/octet-stream")
        .body(b"some bytes".to_vec());
    let reply = reg.send(req).await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "single POST with digest sha256:xyz");
}

#[tokio::test]
async fn upload_put_with_mismatched_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let data = random_bytes(50, 2);
    let claimed = sha256_digest(b"other content");
    let location = reg.begin_upload(REPO).await;
    let reply = reg.put_upload(&location, &claimed, &data).await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "PUT upload whose digest does not match");
    for digest in [claimed, sha256_digest(&data)] {
        let reply = reg.head(&format!("/v2/{REPO}/blobs/{digest}")).await;
        reply.expect_status_in(&[404], "no blob is stored after a digest mismatch");
    }
}

#[tokio::test]
async fn chunked_upload_closed_with_mismatched_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let data = random_bytes(50, 3);
    let location = reg.begin_upload(REPO).await;
    let patched = reg.patch_chunk(&location, 0, &data).await;
    patched.expect_status_in(&[202], "PATCH of the data");
    let reply = reg.put_upload(&patched.location(), &sha256_digest(b"not this"), &[]).await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "closing PUT whose digest does not match");
}

#[tokio::test]
async fn single_post_with_mismatched_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", sha256_digest(b"other content"))])
        .header("Content-Type", "application/octet-stream")
        .body(b"some bytes".to_vec());
    let reply = reg.send(req).await;
    if reply.status != 202 {
        // 202 means the registry ignored the single-POST digest and opened a session.
        reply.expect_oci_error(
            &[400],
            &["DIGEST_INVALID"],
            "single POST whose digest does not match",
        );
    }
}

#[tokio::test]
async fn uppercase_repository_name_is_400_name_invalid() {
    let reg = Registry::start();
    let reply = reg.get("/v2/UPPER/tags/list").await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "GET /v2/UPPER/tags/list");
    let reply = reg.get_manifest("Mixed/Case", "latest").await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "GET /v2/Mixed/Case/manifests/latest");
}

#[tokio::test]
async fn repository_name_with_double_dot_is_400_name_invalid() {
    let reg = Registry::start();
    let reply = reg.get_manifest("a..b", "latest").await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "GET /v2/a..b/manifests/latest");
}

#[tokio::test]
async fn malformed_repository_names_are_400_name_invalid_on_every_route() {
    let reg = Registry::start();
    for name in ["-lead", "trail-", "a__.b", "x/Y", "a/.b"] {
        let reply = reg.get(&format!("/v2/{name}/tags/list")).await;
        reply.expect_oci_error(&[400], &["NAME_INVALID"], &format!("tags list of {name:?}"));
    }
    let reply = reg.post_upload("BAD").await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "POST upload to BAD");
    let reply = reg.put_manifest("BAD", "latest", OCI_MANIFEST, &image_manifest(b"{}", &[])).await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "PUT manifest to BAD");
    let reply = reg.get(&format!("/v2/BAD/blobs/{}", sha256_digest(b"x"))).await;
    reply.expect_oci_error(&[400], &["NAME_INVALID"], "GET blob in BAD");
}

#[tokio::test]
async fn tags_list_of_unknown_repository_is_404_name_unknown() {
    let reg = Registry::start();
    let reply = reg.tags_list("no/such/repo", None, None).await;
    reply.expect_oci_error(&[404], &["NAME_UNKNOWN"], "tags list of an unknown repository");
}

#[tokio::test]
async fn manifest_over_4_mib_is_413() {
    let reg = Registry::start();
    let config = image_config("too-big");
    reg.push_blob(REPO, &config).await;
    let body = annotated_manifest(&config, &[], json!({ "pad": "p".repeat(4 * 1024 * 1024) }));
    assert!(body.len() > 4 * 1024 * 1024);
    // `Expect: 100-continue` lets the server refuse before the body is sent, so the answer
    // can be read whatever the server does with the unread body.
    let head = format!(
        "PUT /v2/{REPO}/manifests/big HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        reg.server().host(),
        body.len()
    );
    let reply = raw_exchange_expecting_continue(reg.server(), &head, &body).await;
    reply.expect_oci_error(
        &[413],
        &["SIZE_INVALID", "MANIFEST_INVALID"],
        "PUT of a manifest over 4 MiB",
    );
    reg.get_manifest(REPO, "big")
        .await
        .expect_status_in(&[404], "the oversized manifest was not stored");
}

/// A client that streams the whole oversized body without waiting (as most HTTP clients
/// do) must still be able to read the 413: the server has to read or drain the body, or
/// close lingeringly (RFC 9112 section 9.6), rather than reset the connection under it.
#[tokio::test]
async fn manifest_over_4_mib_is_413_for_a_client_streaming_the_body() {
    let reg = Registry::start();
    let config = image_config("too-big-streamed");
    reg.push_blob(REPO, &config).await;
    let body = annotated_manifest(&config, &[], json!({ "pad": "p".repeat(4 * 1024 * 1024) }));
    let reply = reg.put_manifest(REPO, "big", OCI_MANIFEST, &body).await;
    reply.expect_oci_error(
        &[413],
        &["SIZE_INVALID", "MANIFEST_INVALID"],
        "PUT of a manifest over 4 MiB",
    );
}

#[tokio::test]
async fn manifest_with_unsupported_content_type_is_rejected() {
    let reg = Registry::start();
    let config = image_config("unknown-type");
    reg.push_blob(REPO, &config).await;
    let body = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/x-unknown",
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [],
    }))
    .expect("serialize");
    let reply = reg.put_manifest(REPO, "unknown", "application/x-unknown", &body).await;
    reply.expect_oci_error(&[400, 415], &["MANIFEST_INVALID"], "PUT of a manifest of unknown type");
}

#[tokio::test]
async fn manifest_body_that_is_not_json_is_400_manifest_invalid() {
    let reg = Registry::start();
    for body in [&b"blablabla"[..], b"", b"{\"schemaVersion\": 2,", b"[1, 2, 3]"] {
        let reply = reg.put_manifest(REPO, "garbage", OCI_MANIFEST, body).await;
        let what = format!("PUT of manifest body {:?}", String::from_utf8_lossy(body));
        reply.expect_oci_error(&[400], &["MANIFEST_INVALID"], &what);
    }
}

#[tokio::test]
async fn manifest_media_type_disagreeing_with_content_type_is_400_manifest_invalid() {
    let reg = Registry::start();
    let config = image_config("disagree");
    reg.push_blob(REPO, &config).await;
    let body = image_manifest(&config, &[]);
    let reply = reg.put_manifest(REPO, "disagree", OCI_INDEX, &body).await;
    reply.expect_oci_error(&[400], &["MANIFEST_INVALID"], "image manifest sent as an index");
}

#[tokio::test]
async fn manifest_missing_required_fields_is_400_manifest_invalid() {
    let reg = Registry::start();
    let bodies = [
        json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [] }),
        json!({ "schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"{}"), "layers": [] }),
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX }),
    ];
    for body in bodies {
        let media_type = body["mediaType"].as_str().expect("has mediaType").to_string();
        let bytes = serde_json::to_vec(&body).expect("serialize");
        let reply = reg.put_manifest(REPO, "incomplete", &media_type, &bytes).await;
        reply.expect_oci_error(&[400], &["MANIFEST_INVALID"], &format!("PUT of {body}"));
    }
}

#[tokio::test]
async fn push_manifest_with_unknown_layer_is_rejected() {
    let reg = Registry::start();
    let config = image_config("unknown-layer");
    reg.push_blob(REPO, &config).await;
    let missing_layer = random_bytes(40, 4);
    let body = image_manifest(&config, &[&missing_layer]);
    let reply = reg.put_manifest(REPO, "dangling", OCI_MANIFEST, &body).await;
    reply.expect_oci_error(
        &[400, 404],
        &["MANIFEST_BLOB_UNKNOWN"],
        "manifest with an unknown layer",
    );
    reg.get_manifest(REPO, "dangling")
        .await
        .expect_status_in(&[404], "the rejected manifest was not stored");
}

#[tokio::test]
async fn push_manifest_with_unknown_config_is_rejected() {
    let reg = Registry::start();
    let layer = random_bytes(40, 5);
    reg.push_blob(REPO, &layer).await;
    let body = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &image_config("never pushed")),
        "layers": [descriptor(OCI_LAYER, &layer)],
    }))
    .expect("serialize");
    let reply = reg.put_manifest(REPO, "dangling", OCI_MANIFEST, &body).await;
    reply.expect_oci_error(
        &[400, 404],
        &["MANIFEST_BLOB_UNKNOWN"],
        "manifest with an unknown config",
    );
}

#[tokio::test]
async fn index_referencing_unknown_manifest_is_rejected() {
    let reg = Registry::start();
    let (known, _) = push_image(&reg, REPO, "known", "index-known").await;
    let unknown = image_manifest(&image_config("never pushed"), &[]);
    let body = crate::support::registry::image_index(&[&known, &unknown]);
    let reply = reg.put_manifest(REPO, "index", OCI_INDEX, &body).await;
    reply.expect_oci_error(
        &[400, 404],
        &["MANIFEST_BLOB_UNKNOWN"],
        "index with an unknown child manifest",
    );
}

#[tokio::test]
async fn manifest_put_by_digest_not_matching_body_is_400() {
    let reg = Registry::start();
    let (body, _) = push_image(&reg, REPO, "latest", "mismatch").await;
    let wrong = sha256_digest(b"some other manifest");
    let reply = reg.put_manifest(REPO, &wrong, OCI_MANIFEST, &body).await;
    reply.expect_oci_error(
        &[400],
        &["DIGEST_INVALID", "MANIFEST_INVALID"],
        "PUT by a digest the body does not have",
    );
    reg.get_manifest(REPO, &wrong)
        .await
        .expect_status_in(&[404], "nothing stored under the wrong digest");
}

#[tokio::test]
async fn referrers_with_malformed_digest_is_400() {
    let reg = with_repo().await;
    let reply = reg.get(&format!("/v2/{REPO}/referrers/sha256:xyz")).await;
    reply.expect_oci_error(&[400], &["DIGEST_INVALID"], "referrers of sha256:xyz");
}

#[tokio::test]
async fn unknown_upload_session_is_404_blob_upload_unknown() {
    let reg = with_repo().await;
    let location = format!("/v2/{REPO}/blobs/uploads/6f1b1c9e-0c1a-4b8e-9d6e-1f2a3b4c5d6e");
    let reply = reg.get(&location).await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "GET of an unknown upload");
    let reply = reg.patch_chunk(&location, 0, b"data").await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "PATCH of an unknown upload");
    let reply = reg.put_upload(&location, &sha256_digest(b"data"), b"data").await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "PUT of an unknown upload");
    let reply = reg.delete(&location).await;
    reply.expect_oci_error(&[404], &["BLOB_UPLOAD_UNKNOWN"], "DELETE of an unknown upload");
}

/// Each common not-found answers 404 with an OCI JSON error body and the fitting code.
#[tokio::test]
async fn not_found_errors_have_oci_json_bodies() {
    let reg = with_repo().await;
    let missing = sha256_digest(b"missing");
    let reply = reg.get(&format!("/v2/{REPO}/blobs/{missing}")).await;
    reply.expect_oci_error(&[404], &["BLOB_UNKNOWN"], "GET of an unknown blob");
    let reply = reg.delete(&format!("/v2/{REPO}/blobs/{missing}")).await;
    reply.expect_oci_error(&[404], &["BLOB_UNKNOWN"], "DELETE of an unknown blob");
    let reply = reg.get_manifest(REPO, "no-such-tag").await;
    reply.expect_oci_error(&[404], &["MANIFEST_UNKNOWN"], "GET of an unknown tag");
    let reply = reg.get_manifest(REPO, &missing).await;
    reply.expect_oci_error(&[404], &["MANIFEST_UNKNOWN"], "GET of an unknown manifest digest");
    let reply = reg.delete(&format!("/v2/{REPO}/manifests/{missing}")).await;
    reply.expect_oci_error(&[404], &["MANIFEST_UNKNOWN"], "DELETE of an unknown manifest");
    let reply = reg.delete(&format!("/v2/{REPO}/manifests/no-such-tag")).await;
    reply.expect_oci_error(&[404], &["MANIFEST_UNKNOWN"], "DELETE of an unknown tag");
    let reply = reg.get_manifest("no/such/repo", "latest").await;
    reply.expect_oci_error(
        &[404],
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
        "GET of a manifest in an unknown repo",
    );
    let reply = reg.get(&format!("/v2/no/such/repo/blobs/{missing}")).await;
    reply.expect_oci_error(
        &[404],
        &["NAME_UNKNOWN", "BLOB_UNKNOWN"],
        "GET of a blob in an unknown repo",
    );
}

/// No malformed request makes the server fail with a 5xx.
#[tokio::test]
async fn malformed_requests_never_get_5xx() {
    let reg = with_repo().await;
    let targets = [
        (Method::GET, format!("/v2/{REPO}/blobs/sha256:")),
        (Method::GET, format!("/v2/{REPO}/blobs/:")),
        (Method::GET, format!("/v2/{REPO}/manifests/sha256:")),
        (Method::HEAD, format!("/v2/{REPO}/manifests/sha256:zz")),
        (Method::GET, format!("/v2/{REPO}/referrers/notadigest")),
        (Method::GET, format!("/v2/{REPO}/tags/list?n=notanumber")),
        (Method::GET, format!("/v2/{REPO}/tags/list?n=-1")),
        (Method::GET, "/v2/_catalog?n=abc".to_string()),
        (Method::POST, format!("/v2/{REPO}/blobs/uploads/?mount=bogus&from=UPPER")),
        (Method::POST, format!("/v2/{REPO}/blobs/uploads/?digest=")),
    ];
    for (method, target) in targets {
        let reply = reg.send(reg.request(method.clone(), &target).body(Vec::new())).await;
        assert!(
            reply.status.as_u16() < 500,
            "{method} {target} must not fail with 5xx; {}",
            reply.describe()
        );
        if reply.status.as_u16() >= 400 && method != Method::HEAD {
            crate::support::registry::assert_error_body(
                &reply,
                crate::support::registry::SPEC_ERROR_CODES,
                &format!("{method} {target}"),
            );
        }
    }
}

#[tokio::test]
async fn content_range_whose_length_overflows_is_416_and_changes_nothing() {
    let reg = Registry::start();
    let location = reg.begin_upload(REPO).await;
    reg.patch_chunk(&location, 0, b"first").await.expect_status_in(&[202], "a first chunk");
    for range in ["0-18446744073709551615", "5-18446744073709551616", "bytes 5-4/10", "-1"] {
        let reply = reg
            .send(
                reg.request(Method::PATCH, &location)
                    .header("Content-Range", range)
                    .body(b"more".to_vec()),
            )
            .await;
        reply.expect_oci_error(&[416], &["BLOB_UPLOAD_INVALID"], &format!("Content-Range {range}"));
    }
    let status = reg.get(&location).await;
    status.expect_status_in(&[204], "upload status after the refused chunks");
    assert_eq!(
        status.header("Range").as_deref(),
        Some("0-4"),
        "the upload still holds the first chunk only"
    );
}
