//! Blob reads beyond the conformance suite: HEAD and GET headers, `Range` requests (206,
//! 416) and sha512 digests.

use reqwest::Method;

use crate::support::registry::{
    Registry, parse_raw_response, random_bytes, raw_exchange, sha256_digest, sha512_digest,
};

const REPO: &str = "blobs/test";

async fn with_blob(len: usize) -> (Registry, Vec<u8>, String) {
    let reg = Registry::start();
    let data = random_bytes(len, 0xB1);
    let digest = reg.push_blob(REPO, &data).await;
    (reg, data, digest)
}

#[tokio::test]
async fn blob_head_gives_length_and_digest_without_body() {
    let (reg, data, digest) = with_blob(100).await;
    let request = format!(
        "HEAD /v2/{REPO}/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        reg.server().host()
    );
    let raw = raw_exchange(reg.server(), request.as_bytes()).await;
    let (status, headers, body) = parse_raw_response(&raw);
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(status, 200, "HEAD of an existing blob: {:?}", String::from_utf8_lossy(&raw));
    assert_eq!(header("content-length"), Some(data.len().to_string()), "Content-Length of HEAD");
    assert_eq!(header("docker-content-digest"), Some(digest), "Docker-Content-Digest of HEAD");
    assert!(body.is_empty(), "HEAD sends no body, got {} bytes", body.len());
}

#[tokio::test]
async fn blob_get_carries_digest_and_length() {
    let (reg, data, digest) = with_blob(100).await;
    let reply = reg.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
    reply.expect_status_in(&[200], "GET of an existing blob");
    assert_eq!(reply.body, data);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(digest));
    assert_eq!(reply.header("Content-Length"), Some(data.len().to_string()));
}

async fn ranged(reg: &Registry, digest: &str, range: &str) -> crate::support::registry::Reply {
    let req =
        reg.request(Method::GET, &format!("/v2/{REPO}/blobs/{digest}")).header("Range", range);
    reg.send(req).await
}

#[tokio::test]
async fn blob_range_request_gets_206_with_content_range() {
    let (reg, data, digest) = with_blob(100).await;
    let reply = ranged(&reg, &digest, "bytes=10-19").await;
    reply.expect_status_in(&[206], "GET with Range: bytes=10-19");
    assert_eq!(reply.header("Content-Range").as_deref(), Some("bytes 10-19/100"));
    assert_eq!(reply.header("Content-Length").as_deref(), Some("10"));
    assert_eq!(reply.body, &data[10..20]);
}

#[tokio::test]
async fn blob_open_ended_range_gets_the_tail() {
    let (reg, data, digest) = with_blob(100).await;
    let reply = ranged(&reg, &digest, "bytes=90-").await;
    reply.expect_status_in(&[206], "GET with Range: bytes=90-");
    assert_eq!(reply.header("Content-Range").as_deref(), Some("bytes 90-99/100"));
    assert_eq!(reply.body, &data[90..]);
}

#[tokio::test]
async fn blob_suffix_range_gets_the_last_bytes() {
    let (reg, data, digest) = with_blob(100).await;
    let reply = ranged(&reg, &digest, "bytes=-5").await;
    reply.expect_status_in(&[206], "GET with Range: bytes=-5");
    assert_eq!(reply.header("Content-Range").as_deref(), Some("bytes 95-99/100"));
    assert_eq!(reply.body, &data[95..]);
}

#[tokio::test]
async fn blob_unsatisfiable_range_gets_416() {
    let (reg, _data, digest) = with_blob(100).await;
    let reply = ranged(&reg, &digest, "bytes=200-300").await;
    reply.expect_status_in(&[416], "GET with a range past the end");
}

#[tokio::test]
async fn blob_range_past_the_end_is_clamped_and_the_unit_is_case_insensitive() {
    let (reg, data, digest) = with_blob(100).await;
    for range in ["bytes=50-18446744073709551615", "Bytes=50-1000", "BYTES=50-"] {
        let reply = ranged(&reg, &digest, range).await;
        reply.expect_status_in(&[206], &format!("GET with Range: {range}"));
        assert_eq!(reply.header("Content-Range").as_deref(), Some("bytes 50-99/100"), "{range}");
        assert_eq!(reply.body, &data[50..], "{range}");
    }
}

/// A single POST with a sha512 digest stores the blob under that digest (or, if the
/// registry does not take single-POST uploads, the 202 session accepts it).
#[tokio::test]
async fn blob_with_sha512_digest_is_accepted_and_served() {
    let reg = Registry::start();
    let data = random_bytes(300, 0x512);
    let digest = sha512_digest(&data);
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", digest.as_str())])
        .header("Content-Type", "application/octet-stream")
        .body(data.clone());
    let posted = reg.send(req).await;
    posted.expect_status_in(&[201, 202], "single POST with a sha512 digest");
    if posted.status == 202 {
        let reply = reg.put_upload(&posted.location(), &digest, &data).await;
        reply.expect_status_in(&[201], "PUT with a sha512 digest");
    }
    let path = format!("/v2/{REPO}/blobs/{digest}");
    let reply = reg.get(&path).await;
    reply.expect_status_in(&[200], "GET by sha512 digest");
    assert_eq!(reply.body, data);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(digest.clone()));
    let head = reg.head(&path).await;
    head.expect_status_in(&[200], "HEAD by sha512 digest");
    assert_eq!(head.header("Content-Length"), Some(data.len().to_string()));
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest));
}

#[tokio::test]
async fn blob_single_post_with_sha256_digest_is_201_and_served() {
    let reg = Registry::start();
    let data = random_bytes(64, 0x256);
    let digest = sha256_digest(&data);
    let req = reg
        .request(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .query(&[("digest", digest.as_str())])
        .header("Content-Type", "application/octet-stream")
        .body(data.clone());
    let reply = reg.send(req).await;
    reply.expect_status_in(&[201, 202], "single POST with a digest");
    if reply.status == 201 {
        let fetched = reg.get(&reply.location()).await;
        fetched.expect_status_in(&[200], "GET the Location of the created blob");
        assert_eq!(fetched.body, data);
    }
}
