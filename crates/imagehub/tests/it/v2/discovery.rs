//! Conformance workflow "Content Discovery": tag listing (order, `n`, `last`) and the
//! referrers API (empty answer, full list with annotations, `artifactType` filtering with
//! `OCI-Filters-Applied`, referrers of a subject never pushed), with setup and teardown.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use super::fixtures::{
    ANNOTATION_KEY, ARTIFACT_TYPE_A, ARTIFACT_TYPE_B, ARTIFACT_TYPE_INDEX, DEFAULT_TAG, Data,
    EMPTY_JSON_DIGEST, Slot, dummy_digest,
};
use crate::support::registry::{
    OCI_INDEX, OCI_MANIFEST, Registry, Reply, sha256_digest, string_list,
};

const REPO: &str = "conformance/discovery";
const OK: &[u16] = &[200, 201, 202, 204];

async fn put_blob(reg: &Registry, blob: &[u8], what: &str) {
    let location = reg.begin_upload(REPO).await;
    reg.put_upload(&location, &sha256_digest(blob), blob).await.expect_status_in(OK, what);
}

/// PUT of an artifact by its digest; it must answer 2xx with `OCI-Subject: <subject>`.
async fn put_referrer(reg: &Registry, body: &[u8], media_type: &str, subject: &str, what: &str) {
    let reply = reg.put_manifest(REPO, &sha256_digest(body), media_type, body).await;
    reply.expect_status_in(OK, what);
    assert_eq!(
        reply.header("OCI-Subject").as_deref(),
        Some(subject),
        "{what}: OCI-Subject; {}",
        reply.describe()
    );
}

/// Upstream setup, first part: a config, the layer and eight tags (test0..3, TEST0..3).
async fn setup_tags(reg: &Registry, data: &Data) {
    put_blob(reg, data.config(Slot::Discovery), "setup: populate registry with test blob").await;
    put_blob(reg, &data.layer, "setup: populate registry with test layer").await;
    for i in 0..4 {
        for tag in [format!("test{i}"), format!("TEST{i}")] {
            let reply =
                reg.put_manifest(REPO, &tag, OCI_MANIFEST, data.manifest(Slot::Discovery)).await;
            reply.expect_status_in(OK, "setup: populate registry with test tags");
        }
    }
}

/// Upstream setup, second part: referrers pushed before their subject exists, the subject
/// (tagged `tagtest0`), referrers pushed after it, and one referrer of a missing subject.
async fn setup_referrers(reg: &Registry, data: &Data) {
    assert_eq!(sha256_digest(&data.empty_json), EMPTY_JSON_DIGEST, "digest of the empty JSON blob");
    let subject = data.manifest_digest(Slot::Subject);
    put_blob(reg, &data.empty_json, "setup: empty JSON blob").await;
    put_blob(reg, &data.ref_blob_a, "setup: reference blob A").await;
    put_referrer(
        reg,
        &data.refs_a_config,
        OCI_MANIFEST,
        &subject,
        "setup: artifact A (config type)",
    )
    .await;
    put_referrer(
        reg,
        &data.refs_a_layer,
        OCI_MANIFEST,
        &subject,
        "setup: artifact A (artifactType)",
    )
    .await;
    put_referrer(reg, &data.refs_index, OCI_INDEX, &subject, "setup: index artifact").await;

    put_blob(reg, data.config(Slot::Subject), "setup: subject config").await;
    put_blob(reg, &data.layer, "setup: subject layer").await;
    let reply =
        reg.put_manifest(REPO, DEFAULT_TAG, OCI_MANIFEST, data.manifest(Slot::Subject)).await;
    reply.expect_status_in(OK, "setup: subject manifest");

    put_blob(reg, &data.ref_blob_b, "setup: reference blob B").await;
    put_referrer(
        reg,
        &data.refs_b_config,
        OCI_MANIFEST,
        &subject,
        "setup: artifact B (config type)",
    )
    .await;
    put_referrer(
        reg,
        &data.refs_b_layer,
        OCI_MANIFEST,
        &subject,
        "setup: artifact B (artifactType)",
    )
    .await;
    let missing = data.manifest_digest(Slot::MissingSubject);
    put_referrer(
        reg,
        &data.refs_c_layer,
        OCI_MANIFEST,
        &missing,
        "setup: artifact of a missing subject",
    )
    .await;
}

async fn ready() -> (Registry, Data) {
    let reg = Registry::start();
    let data = Data::new();
    setup_tags(&reg, &data).await;
    setup_referrers(&reg, &data).await;
    (reg, data)
}

async fn all_tags(reg: &Registry) -> Vec<String> {
    let reply = reg.tags_list(REPO, None, None).await;
    reply.expect_status_in(&[200], "GET tags list");
    string_list(&reply.json(), "tags")
}

fn is_lexical_or_asciibetical(tags: &[String]) -> bool {
    let mut lexical = tags.to_vec();
    lexical.sort_by_key(|t| t.to_lowercase());
    let mut ascii = tags.to_vec();
    ascii.sort();
    tags == lexical.as_slice() || tags == ascii.as_slice()
}

async fn referrers(reg: &Registry, digest: &str, artifact_type: Option<&str>) -> Reply {
    let mut req = reg.request(Method::GET, &format!("/v2/{REPO}/referrers/{digest}"));
    if let Some(artifact_type) = artifact_type {
        req = req.query(&[("artifactType", artifact_type)]);
    }
    reg.send(req).await
}

/// Checks status and `Content-Type`, and returns the `manifests` of the image index.
fn referrer_descriptors(reply: &Reply, what: &str) -> Vec<Value> {
    reply.expect_status_in(&[200], what);
    assert_eq!(reply.header("Content-Type").as_deref(), Some(OCI_INDEX), "{what}: Content-Type");
    let index = reply.json();
    index
        .get("manifests")
        .and_then(Value::as_array)
        .unwrap_or_else(|| {
            panic!("{what}: the image index has a \"manifests\" array; {}", reply.describe())
        })
        .clone()
}

fn digest_of(descriptor: &Value) -> String {
    descriptor["digest"].as_str().expect("descriptor has a digest").to_string()
}

/// Each descriptor carries exactly the one annotation of the manifest it describes.
fn check_annotations(descriptors: &[Value], data: &Data) {
    let expected = data.expected_referrer_annotations();
    for desc in descriptors {
        let digest = digest_of(desc);
        let annotations =
            desc["annotations"].as_object().unwrap_or_else(|| panic!("annotations of {desc}"));
        assert_eq!(annotations.len(), 1, "one annotation on {desc}");
        let want = expected.iter().find(|(d, _)| *d == digest).map(|(_, v)| *v);
        assert_eq!(annotations[ANNOTATION_KEY].as_str(), want, "annotation value of {desc}");
    }
}

#[tokio::test]
async fn discovery_setup_populates_blobs_and_tags() {
    let reg = Registry::start();
    let data = Data::new();
    setup_tags(&reg, &data).await;
    assert_eq!(all_tags(&reg).await.len(), 8, "the eight tags pushed in setup");
}

#[tokio::test]
async fn discovery_setup_pushes_referrers_answered_with_oci_subject() {
    let (reg, data) = ready().await;
    let reply = reg.get_manifest(REPO, &sha256_digest(&data.refs_index)).await;
    reply.expect_status_in(&[200], "GET of the index artifact");
    assert_eq!(reply.body, data.refs_index);
}

#[tokio::test]
async fn discovery_tags_list_is_200_and_sorted() {
    let (reg, _data) = ready().await;
    let tags = all_tags(&reg).await;
    assert_eq!(tags.len(), 9, "test0..3, TEST0..3 and {DEFAULT_TAG}: {tags:?}");
    assert!(is_lexical_or_asciibetical(&tags), "tags are in lexical or ASCII order: {tags:?}");
}

#[tokio::test]
async fn discovery_tags_list_is_limited_by_n() {
    let (reg, _data) = ready().await;
    let n = all_tags(&reg).await.len() / 2;
    let reply = reg.tags_list(REPO, Some(n), None).await;
    reply.expect_status_in(&[200], "GET tags list with n");
    assert_eq!(string_list(&reply.json(), "tags").len(), n, "n={n} limits the list");
}

#[tokio::test]
async fn discovery_tags_list_starts_after_last() {
    let (reg, _data) = ready().await;
    let n = all_tags(&reg).await.len() / 2;
    let first = reg.tags_list(REPO, Some(n), None).await;
    first.expect_status_in(&[200], "GET tags list with n");
    let first_page = string_list(&first.json(), "tags");
    let last = first_page[n - 1].clone();
    let reply = reg.tags_list(REPO, Some(n), Some(&last)).await;
    reply.expect_status_in(&[200], "GET tags list with n and last");
    let page = string_list(&reply.json(), "tags");
    assert!(page.len() <= n, "at most n={n} tags: {page:?}");
    assert!(!page.contains(&last), "the page after {last:?} excludes it: {page:?}");
}

#[tokio::test]
async fn discovery_referrers_of_unknown_digest_is_empty_index() {
    let (reg, _data) = ready().await;
    let reply = referrers(&reg, &dummy_digest(), None).await;
    let descriptors = referrer_descriptors(&reply, "referrers of an unknown digest");
    assert!(descriptors.is_empty(), "no referrers: {descriptors:?}");
}

#[tokio::test]
async fn discovery_referrers_of_subject_lists_all_five_with_annotations() {
    let (reg, data) = ready().await;
    let reply = referrers(&reg, &data.manifest_digest(Slot::Subject), None).await;
    let descriptors = referrer_descriptors(&reply, "referrers of the subject");
    assert_eq!(descriptors.len(), 5, "five referrers: {descriptors:?}");
    let found: BTreeSet<String> = descriptors.iter().map(digest_of).collect();
    let expected: BTreeSet<String> =
        data.expected_referrer_annotations().into_iter().map(|(d, _)| d).collect();
    assert_eq!(found, expected, "the five referrers, once each");
    check_annotations(&descriptors, &data);
}

#[tokio::test]
async fn discovery_referrers_filtered_by_artifact_type() {
    let (reg, data) = ready().await;
    let reply = referrers(&reg, &data.manifest_digest(Slot::Subject), Some(ARTIFACT_TYPE_A)).await;
    let descriptors = referrer_descriptors(&reply, "referrers filtered by artifactType");
    assert_eq!(
        reply.header("OCI-Filters-Applied").as_deref(),
        Some("artifactType"),
        "the filter is applied and reported; {}",
        reply.describe()
    );
    assert_eq!(descriptors.len(), 2, "two referrers of type A: {descriptors:?}");
    let found: BTreeSet<String> = descriptors.iter().map(digest_of).collect();
    let expected: BTreeSet<String> =
        [sha256_digest(&data.refs_a_config), sha256_digest(&data.refs_a_layer)]
            .into_iter()
            .collect();
    assert_eq!(found, expected);
    check_annotations(&descriptors, &data);
}

#[tokio::test]
async fn discovery_referrers_of_missing_subject_lists_its_referrer() {
    let (reg, data) = ready().await;
    let reply = referrers(&reg, &data.manifest_digest(Slot::MissingSubject), None).await;
    let descriptors = referrer_descriptors(&reply, "referrers of a subject never pushed");
    assert_eq!(descriptors.len(), 1, "one referrer: {descriptors:?}");
    assert_eq!(digest_of(&descriptors[0]), sha256_digest(&data.refs_c_layer));
}

/// Descriptors carry `artifactType` (the manifest's, else its config media type; an index's
/// own), the media type and size of the referrer.
#[tokio::test]
async fn discovery_referrer_descriptors_carry_artifact_type_media_type_and_size() {
    let (reg, data) = ready().await;
    let reply = referrers(&reg, &data.manifest_digest(Slot::Subject), None).await;
    let descriptors = referrer_descriptors(&reply, "referrers of the subject");
    let expected = [
        (&data.refs_a_config, OCI_MANIFEST, ARTIFACT_TYPE_A),
        (&data.refs_a_layer, OCI_MANIFEST, ARTIFACT_TYPE_A),
        (&data.refs_b_config, OCI_MANIFEST, ARTIFACT_TYPE_B),
        (&data.refs_b_layer, OCI_MANIFEST, ARTIFACT_TYPE_B),
        (&data.refs_index, OCI_INDEX, ARTIFACT_TYPE_INDEX),
    ];
    for (body, media_type, artifact_type) in expected {
        let digest = sha256_digest(body);
        let desc = descriptors
            .iter()
            .find(|d| digest_of(d) == digest)
            .unwrap_or_else(|| panic!("referrer {digest} listed in {descriptors:?}"));
        assert_eq!(desc["mediaType"].as_str(), Some(media_type), "mediaType of {desc}");
        assert_eq!(desc["artifactType"].as_str(), Some(artifact_type), "artifactType of {desc}");
        assert_eq!(desc["size"].as_u64(), Some(body.len() as u64), "size of {desc}");
    }
}

/// The upstream teardown: every manifest by digest (202, or 404 when already gone), then
/// the blobs (202, or 404 when already gone).
#[tokio::test]
async fn discovery_teardown_deletes_manifests_then_blobs() {
    let (reg, data) = ready().await;
    let manifests = [
        &data.refs_index[..],
        data.manifest(Slot::Discovery),
        data.manifest(Slot::Subject),
        &data.refs_a_config,
        &data.refs_a_layer,
        &data.refs_b_config,
        &data.refs_b_layer,
        &data.refs_c_layer,
    ];
    for manifest in manifests {
        let path = format!("/v2/{REPO}/manifests/{}", sha256_digest(manifest));
        reg.delete(&path).await.expect_status_in(&[202, 404], "DELETE manifest created in setup");
    }
    let blobs = [
        data.config(Slot::Discovery),
        &data.layer[..],
        data.config(Slot::Subject),
        &data.ref_blob_a,
        &data.ref_blob_b,
        &data.empty_json,
    ];
    for blob in blobs {
        let path = format!("/v2/{REPO}/blobs/{}", sha256_digest(blob));
        reg.delete(&path).await.expect_status_in(&[202, 404], "DELETE blob created in setup");
    }
    reg.get_manifest(REPO, DEFAULT_TAG)
        .await
        .expect_status_in(&[404], "the subject's tag is gone with it");
}
