//! Importing images from another registry (CNCF distribution here, listed as insecure):
//! single images and indexes arrive with their digests, an unchanged image is not pulled
//! again, platforms can be chosen, private upstreams take credentials, failures read
//! plainly, a rate-limited job waits in the queue, a job cut by a crash resumes without
//! downloading again, and only those who may push import.

use reqwest::Method;
use serde_json::{Value, json};

use crate::process::ServerProcess;
use crate::support::distribution::Distribution;
use crate::support::hub::{Cred, Hub, repo_scope};
use crate::support::proxy::Proxy;
use crate::support::registry::{
    OCI_INDEX, OCI_MANIFEST, Registry, descriptor, image_config, image_manifest, push_image,
    random_bytes, sha256_digest,
};
use crate::support::reply::Reply;

/// A hub that may import from `upstream`, with olga owning the public `acme`.
async fn hub_importing_from(upstream: &Distribution) -> (Hub, Cred) {
    let host = upstream.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;
    (hub, olga)
}

async fn import(hub: &Hub, cred: &Cred, body: Value) -> Reply {
    hub.api(cred, Method::POST, "/api/v1/orgs/acme/images/import", Some(body)).await
}

/// Starts an import and waits for its end; the job.
async fn imported(hub: &Hub, cred: &Cred, body: Value) -> Value {
    let started = import(hub, cred, body).await;
    started.expect_status(202, "queued");
    let location = started.header("location").expect("the job's URL");
    assert_eq!(started.json()["url"].as_str(), Some(location.as_str()));
    let job = hub.api(cred, Method::GET, &format!("{location}?wait=60"), None).await;
    job.expect_status(200, "the job").json()
}

/// An index of two single-platform images, pushed to `upstream` as `repo:tag`; the
/// index's bytes and digest, and its children's digests.
pub(crate) async fn push_index(
    upstream: &Registry,
    repo: &str,
    tag: &str,
) -> (Vec<u8>, String, Vec<String>) {
    let (amd64, amd64_digest) = push_image(upstream, repo, "amd64-build", "amd64").await;
    let (arm64, arm64_digest) = push_image(upstream, repo, "arm64-build", "arm64").await;
    let mut children = Vec::new();
    for (manifest, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
        let mut entry = descriptor(OCI_MANIFEST, manifest);
        entry["platform"] = json!({"os": "linux", "architecture": arch});
        children.push(entry);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
    let index = serde_json::to_vec_pretty(&index).expect("index");
    let digest = upstream.push_manifest(repo, tag, OCI_INDEX, &index).await;
    (index, digest, vec![amd64_digest, arm64_digest])
}

#[tokio::test]
async fn images_and_indexes_arrive_with_their_digests_and_unchanged_ones_are_not_pulled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    let (manifest, digest) = push_image(&registry, "team/app", "v1", "single").await;
    let (index, index_digest, children) = push_index(&registry, "team/multi", "v2").await;
    let (hub, olga) = hub_importing_from(&upstream).await;

    let host = &upstream.host;
    let job = imported(&hub, &olga, json!({"source_url": format!("{host}/team/app:v1")})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(job["target"], "acme/app:v1");
    assert_eq!(job["source"], format!("{host}/team/app:v1"));
    assert_eq!(
        (job["progress"]["blobs_total"].as_u64(), job["progress"]["blobs_done"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(job["progress"]["bytes_done"], job["progress"]["bytes_total"]);
    let here = Registry::at(&hub.server().url());
    let stored = here.get_manifest("acme/app", "v1").await;
    assert_eq!(
        stored.expect_status(200, "pullable here").body.as_slice(),
        manifest.as_slice(),
        "byte for byte"
    );

    let again = imported(&hub, &olga, json!({"source_url": format!("{host}/team/app:v1")})).await;
    assert_eq!(
        (again["state"].as_str(), again["progress"]["unchanged"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{again}"
    );
    assert_eq!(again["progress"]["blobs_done"], 0, "nothing transferred");

    // An index: every platform, children before the index, all digests the same.
    let body = json!({"source_url": format!("{host}/team/multi:v2"), "target_image": "multi"});
    let job = imported(&hub, &olga, body).await;
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(index_digest.as_str())),
        "{job}"
    );
    assert_eq!(job["progress"]["platforms"].as_array().map(Vec::len), Some(2), "{job}");
    assert_eq!(here.get_manifest("acme/multi", "v2").await.body.as_slice(), index.as_slice());
    for child in &children {
        here.get_manifest("acme/multi", child).await.expect_status(200, "a child, by digest");
    }
    // Only one platform: a new index of it alone; the shared blobs are linked, not pulled.
    let body = json!({"source_url": format!("{host}/team/multi:v2"), "target_image": "multi-arm", "platforms": ["linux/arm64"]});
    let job = imported(&hub, &olga, body).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_ne!(job["digest"].as_str(), Some(index_digest.as_str()), "a narrower index");
    let narrowed: Value = here.get_manifest("acme/multi-arm", "v2").await.json();
    assert_eq!(narrowed["manifests"].as_array().map(Vec::len), Some(1), "{narrowed}");
    assert_eq!(narrowed["manifests"][0]["digest"].as_str(), Some(children[1].as_str()));
    assert_eq!(job["progress"]["blobs_linked"], job["progress"]["blobs_total"], "{job}");
    let audit =
        hub.api(&Cred::admin(), Method::GET, "/api/v1/audit?action=image.import", None).await;
    assert_eq!(
        audit.json()["events"].as_array().map(Vec::len),
        Some(3),
        "one event per import that stored"
    );
}

#[tokio::test]
async fn failures_read_plainly_and_bad_requests_name_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    push_index(&registry, "team/multi", "v2").await;
    let (hub, olga) = hub_importing_from(&upstream).await;
    let host = &upstream.host;

    let missing =
        imported(&hub, &olga, json!({"source_url": format!("{host}/team/multi:nosuch")})).await;
    assert_eq!(missing["state"], "failed", "{missing}");
    assert!(
        missing["reason"].as_str().is_some_and(|r| r.starts_with("not found upstream")),
        "{missing}"
    );
    let body =
        json!({"source_url": format!("{host}/team/multi:v2"), "platforms": ["windows/amd64"]});
    let wrong_platform = imported(&hub, &olga, body).await;
    let reason = wrong_platform["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("linux/amd64, linux/arm64"), "the platforms there: {wrong_platform}");

    for (body, field) in [
        (json!({"source_url": "Not A Reference"}), "source_url"),
        (json!({"source_url": "nginx", "target_image": "Bad Name"}), "target_image"),
        (json!({"source_url": "nginx", "target_tag": "bad tag"}), "target_tag"),
        (json!({"source_url": "nginx", "platforms": ["linux"]}), "platforms"),
        (json!({"source_url": "127.0.0.1:1/x:1"}), "source_url"),
        (json!({"source_url": "localhost:5000/x"}), "source_url"),
    ] {
        let refused = import(&hub, &olga, body.clone()).await;
        let error = refused.expect_status(400, &body.to_string()).json();
        assert_eq!(error["errors"][0]["detail"]["field"], field, "{body}: {error}");
    }
    let loopback = import(&hub, &olga, json!({"source_url": "127.0.0.1:1/x:1"})).await.json();
    assert!(loopback.to_string().contains("[import.registries]"), "{loopback}");
    let unknown = import(&hub, &olga, json!({"source_url": "nginx", "sources_url": "x"})).await;
    unknown.expect_status(400, "an unknown field");
}

#[tokio::test]
async fn a_private_upstream_takes_credentials_which_are_never_shown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = dir.path().join("storage");
    let open = Distribution::start(&storage, None);
    let (_, digest) = push_image(&Registry::at(&open.url()), "team/secret", "v1", "secret").await;
    drop(open);
    let upstream = Distribution::start(&storage, Some(("alice", "upstream-pass-1")));
    // The sealing key in a file of its own, as replicas share it.
    let key_file = dir.path().join("keys/import.key");
    std::fs::create_dir(dir.path().join("keys")).expect("a key directory");
    let (host, key) = (upstream.host.clone(), key_file.clone());
    let hub = Hub::start_with(move |c| {
        c.import.insecure_registries = vec![host];
        c.import.sealing_key_file = Some(key);
    });
    let olga = hub.olga_with_public_acme().await;
    let source = format!("{}/team/secret:v1", upstream.host);

    let body =
        json!({"source_url": source, "auth": {"username": "alice", "password": "wrong-pass"}});
    let refused = imported(&hub, &olga, body).await;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert!(
        refused["reason"].as_str().is_some_and(|r| r.contains("refused the credentials")),
        "{refused}"
    );
    let anonymous = imported(&hub, &olga, json!({"source_url": source})).await;
    assert!(
        anonymous["reason"].as_str().is_some_and(|r| r.contains("none were given")),
        "{anonymous}"
    );

    let body =
        json!({"source_url": source, "auth": {"username": "alice", "password": "upstream-pass-1"}});
    let job = imported(&hub, &olga, body).await;
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{job}"
    );
    let listed = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/imports", None).await;
    let listed = listed.expect_status(200, "the org's jobs").text();
    assert!(!listed.contains("upstream-pass-1") && !listed.contains("wrong-pass"), "{listed}");
    let mine = hub.api(&olga, Method::GET, "/api/v1/imports?limit=2", None).await.json();
    assert_eq!(mine["jobs"].as_array().map(Vec::len), Some(2), "paged: {mine}");
    let key = std::fs::metadata(&key_file).expect("the sealing key, where configured");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(!hub.server().data_dir().join("import.key").exists(), "none in the data dir");
}

#[tokio::test]
async fn only_those_who_may_push_import_and_others_do_not_see_the_jobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    push_image(&Registry::at(&upstream.url()), "team/app", "v1", "single").await;
    let (hub, olga) = hub_importing_from(&upstream).await;
    hub.create_user("viewer", "viewer-password-1").await;
    hub.create_user("mallory", "mallory-password-1").await;
    let role = json!({"role": "viewer"});
    hub.api(&olga, Method::PUT, "/api/v1/orgs/acme/members/viewer", Some(role))
        .await
        .expect_status(200, "a viewer");
    let source = json!({"source_url": format!("{}/team/app:v1", upstream.host)});

    let viewer = Cred::basic("viewer", "viewer-password-1");
    import(&hub, &viewer, source.clone()).await.expect_status(403, "a viewer may not push");
    let mallory = Cred::basic("mallory", "mallory-password-1");
    import(&hub, &mallory, source.clone()).await.expect_status(403, "an outsider");
    let project = hub
        .api(&mallory, Method::POST, "/api/v1/projects/acme/images/import", Some(source.clone()))
        .await;
    project.expect_status(403, "the seed's route, same rule");
    import(&hub, &Cred::Anonymous, source.clone()).await.expect_status(401, "anonymous");

    let started =
        hub.api(&olga, Method::POST, "/api/v1/projects/acme/images/import", Some(source)).await;
    let location = started.expect_status(202, "olga").header("location").expect("url");
    let job = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");
    hub.api(&mallory, Method::DELETE, &location, None)
        .await
        .expect_status(403, "may see, not cancel");
    hub.api(&olga, Method::DELETE, &location, None).await.expect_status(409, "ended already");
    hub.api(&mallory, Method::GET, "/api/v1/orgs/acme/imports", None)
        .await
        .expect_status(404, "not a member");
    hub.api(&olga, Method::GET, "/api/v1/imports/999999", None)
        .await
        .expect_status(404, "no such job");
    hub.api(&olga, Method::GET, "/api/v1/imports/x", None).await.expect_status(400, "not a number");
}

#[tokio::test]
async fn a_rate_limited_job_waits_its_turn_in_the_queue_then_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let (_, digest) = push_image(&Registry::at(&upstream.url()), "team/app", "v1", "single").await;
    let proxy = Proxy::start(&upstream.url()).await;
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| {
        c.import.insecure_registries = vec![host];
        c.import.max_inline_wait_secs = 0;
    });
    let olga = hub.olga_with_public_acme().await;
    proxy.throttle_manifests(1);
    let job =
        imported(&hub, &olga, json!({"source_url": format!("{}/team/app:v1", proxy.host)})).await;
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{job}"
    );
    assert_eq!(job["attempts"], 2, "a second try after the wait: {job}");
    let manifest = format!("/v2/team/app/manifests/{digest}");
    assert_eq!(proxy.count("GET", &manifest), 2, "one refused, one served");
}

#[tokio::test]
async fn an_import_cut_by_a_crash_resumes_without_downloading_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    let config = image_config("big");
    let layers: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(256 << 10, 90 + i)).collect();
    registry.push_blob("team/big", &config).await;
    for layer in &layers {
        registry.push_blob("team/big", layer).await;
    }
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let manifest = image_manifest(&config, &refs);
    let digest = registry.push_manifest("team/big", "v1", OCI_MANIFEST, &manifest).await;
    let proxy = Proxy::start(&upstream.url()).await;
    let blob_path = |data: &[u8]| format!("/v2/team/big/blobs/{}", sha256_digest(data));
    proxy.hold(&blob_path(&layers[2]));

    let data = tempfile::tempdir().expect("data dir");
    let env = [
        ("IMAGEHUB_AUTH__ENABLED", "false"),
        ("IMAGEHUB_IMPORT__INSECURE_REGISTRIES", proxy.host.as_str()),
        ("IMAGEHUB_IMPORT__TRANSFERS", "1"),
    ];
    let server = ServerProcess::start_with_env(data.path(), &env);
    let client = reqwest::Client::new();
    let body = json!({"source_url": format!("{}/team/big:v1", proxy.host)});
    let started = client
        .post(format!("{}/api/v1/orgs/acme/images/import", server.url()))
        .json(&body)
        .send()
        .await;
    let started = started.expect("queued");
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().expect("url").to_string();
    proxy.reached().await;
    drop(server); // SIGKILL, with the last layer on its way
    proxy.release();

    let server = ServerProcess::start_with_env(data.path(), &env);
    let job: Value = client
        .get(format!("{}{location}?wait=60", server.url()))
        .send()
        .await
        .expect("the job")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{job}"
    );
    for done in [&config, &layers[0], &layers[1]] {
        assert_eq!(
            proxy.count("GET", &blob_path(done)),
            1,
            "finished before the crash: not fetched again"
        );
    }
    assert_eq!(proxy.count("GET", &blob_path(&layers[2])), 2, "cut by the crash: fetched again");
    assert_eq!(job["progress"]["blobs_linked"], 3, "{job}");
    let stored = Registry::at(server.url()).get_manifest("acme/big", "v1").await;
    assert_eq!(stored.expect_status(200, "imported").body, manifest);
}

#[tokio::test]
async fn an_imported_image_is_indexed_with_its_readme_and_who_imported_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    let readme = "---\ndescription: Fetched from afar\nkeywords: [imported]\n---\n# Far\n";
    let layer = crate::realclients::tar(&[("README.md", readme.as_bytes())]);
    let config = image_config("readme");
    registry.push_blob("team/far", &config).await;
    registry.push_blob("team/far", &layer).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    registry.push_manifest("team/far", "v1", OCI_MANIFEST, &manifest).await;
    let (hub, olga) = hub_importing_from(&upstream).await;

    let job =
        imported(&hub, &olga, json!({"source_url": format!("{}/team/far:v1", upstream.host)}))
            .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    hub.api(&Cred::admin(), Method::POST, "/api/v1/admin/index", None)
        .await
        .expect_status(200, "index");
    let image = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/far/images/v1", None).await;
    let image = image.expect_status(200, "the image").json();
    assert_eq!(image["details"]["description"], "Fetched from afar", "{image}");
    assert_eq!(image["pushed_by"], "olga", "{image}");
}

#[tokio::test]
async fn progress_streams_live_as_server_sent_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    let held = random_bytes(64 << 10, 7);
    let config = image_config("live");
    registry.push_blob("team/live", &config).await;
    registry.push_blob("team/live", &held).await;
    let manifest = image_manifest(&config, &[&held]);
    let digest = registry.push_manifest("team/live", "v1", OCI_MANIFEST, &manifest).await;
    let proxy = Proxy::start(&upstream.url()).await;
    proxy.hold(&format!("/v2/team/live/blobs/{}", sha256_digest(&held)));
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;

    let started =
        import(&hub, &olga, json!({"source_url": format!("{}/team/live:v1", proxy.host)})).await;
    let location = started.expect_status(202, "queued").header("location").expect("url");
    proxy.reached().await;
    let events = hub
        .client
        .get(hub.url(&format!("{location}/events")))
        .basic_auth("olga", Some("olga-password-1"))
        .send()
        .await
        .expect("the stream");
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut stream = events.bytes_stream();
    let mut text = String::new();
    let mut jobs: Vec<Value> = Vec::new();
    let mut released = false;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                jobs.push(serde_json::from_str(data).expect("a job"));
            }
        }
        if !released && !jobs.is_empty() {
            proxy.release(); // the first event came while the layer was held
            released = true;
        }
    }
    let first = jobs.first().expect("events");
    assert_eq!(first["state"], "running", "{first}");
    assert_eq!(first["progress"]["blobs_total"], 2, "the plan is shown at once: {first}");
    let size = (config.len() + held.len()) as u64;
    assert_eq!(first["progress"]["bytes_total"].as_u64(), Some(size), "{first}");
    assert!(first["progress"]["blobs_done"].as_u64() < Some(2), "the layer is held: {first}");
    let last = jobs.last().expect("events");
    assert_eq!(
        (last["state"].as_str(), last["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{last}"
    );
}

#[tokio::test]
async fn a_batch_is_one_group_that_succeeds_partially() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    push_image(&registry, "team/app", "v1", "single").await;
    push_index(&registry, "team/multi", "v2").await;
    let (hub, olga) = hub_importing_from(&upstream).await;
    let host = &upstream.host;

    // One bad item: a 400 naming it, and nothing queued.
    let bad = json!({"sources": [
        {"source_url": format!("{host}/team/app:v1")},
        {"source_url": "Bad Ref"},
    ]});
    let refused = import(&hub, &olga, bad).await.expect_status(400, "a bad item").json();
    assert_eq!(refused["errors"][0]["detail"]["field"], "sources[1].source_url", "{refused}");
    let none = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/imports", None).await.json();
    assert_eq!(none["jobs"].as_array().map(Vec::len), Some(0), "nothing was queued: {none}");

    let batch = json!({"sources": [
        {"source_url": format!("{host}/team/app:v1")},
        {"source_url": format!("{host}/team/app:nosuch"), "target_image": "missing"},
        {"source_url": format!("{host}/team/multi:v2"), "platforms": ["linux/amd64"]},
    ]});
    let started = import(&hub, &olga, batch).await;
    let location = started.expect_status(202, "a group").header("location").expect("url");
    assert!(location.starts_with("/api/v1/import-groups/"), "{location}");
    let group = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(group["state"], "partial", "{group}");
    let states: Vec<&str> = group["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["succeeded", "failed", "succeeded"], "{group}");
    assert!(
        group["jobs"][1]["reason"].as_str().is_some_and(|r| r.starts_with("not found upstream")),
        "{group}"
    );
    hub.create_user("mallory", "mallory-password-1").await;
    let mallory = Cred::basic("mallory", "mallory-password-1");
    hub.api(&mallory, Method::GET, &location, None).await.expect_status(404, "not hers to see");
    hub.api(&mallory, Method::DELETE, &location, None).await.expect_status(404, "nor to cancel");
    let cancelled = hub.api(&olga, Method::DELETE, &location, None).await.json();
    assert_eq!(cancelled["state"], "partial", "nothing left to cancel: {cancelled}");
}

#[tokio::test]
async fn a_private_image_comes_from_another_imagehub_through_its_token_flow() {
    let upstream = Hub::start();
    upstream.create_user("olga", "olga-password-1").await;
    let owner = Cred::basic("olga", "olga-password-1");
    let digest = upstream.push_with_readme(&owner, "olga/private", "v1", "# Far").await;
    let host = upstream.server().host();
    let source = format!("{host}/olga/private:v1");
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;

    let body =
        json!({"source_url": source, "auth": {"username": "olga", "password": "olga-password-1"}});
    let job = imported(&hub, &olga, body).await;
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{job}"
    );
    let anonymous =
        imported(&hub, &olga, json!({"source_url": source, "target_image": "other"})).await;
    assert_eq!(anonymous["state"], "failed", "{anonymous}");
    assert!(
        anonymous["reason"].as_str().is_some_and(|r| r.contains("none were given")),
        "{anonymous}"
    );
}

#[tokio::test]
async fn a_running_import_is_cancelled_at_its_next_step_and_stores_no_image() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let registry = Registry::at(&upstream.url());
    let held = random_bytes(64 << 10, 11);
    let config = image_config("cancel");
    registry.push_blob("team/slow", &config).await;
    registry.push_blob("team/slow", &held).await;
    registry
        .push_manifest("team/slow", "v1", OCI_MANIFEST, &image_manifest(&config, &[&held]))
        .await;
    let proxy = Proxy::start(&upstream.url()).await;
    proxy.hold(&format!("/v2/team/slow/blobs/{}", sha256_digest(&held)));
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;

    let started =
        import(&hub, &olga, json!({"source_url": format!("{}/team/slow:v1", proxy.host)})).await;
    let location = started.expect_status(202, "queued").header("location").expect("url");
    proxy.reached().await;
    let cancelled = hub
        .api(&olga, Method::DELETE, &location, None)
        .await
        .expect_status(200, "cancelled")
        .json();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["reason"], "cancelled by olga");
    proxy.release();
    let job = hub.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(job["state"], "cancelled", "it stays cancelled: {job}");
    // The runner has let go of the job once another import can run to its end.
    let other = imported(
        &hub,
        &olga,
        json!({"source_url": format!("{}/team/slow:v1", proxy.host), "target_image": "again"}),
    )
    .await;
    assert_eq!(other["state"], "succeeded", "{other}");
    // Asked by olga, who may pull there: whether a blob was linked before the cancel
    // (the repository exists) or not, there is no image.
    let token = hub.token(&olga, &[repo_scope("acme/slow", "pull")]).await.expect("token");
    let path = "/v2/acme/slow/manifests/v1";
    let reply = hub.send(hub.v2(Method::GET, path, Some(&token))).await;
    reply.expect_status(404, "the cancelled import stored no image");
}

#[tokio::test]
async fn a_namespace_may_not_queue_imports_without_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let proxy = Proxy::start(&upstream.url()).await;
    proxy.hold("/v2/team/app/manifests/v1"); // the first jobs wait there; the rest stay queued
    let host = proxy.host.clone();
    let hub = Hub::start_with(move |c| c.import.insecure_registries = vec![host]);
    let olga = hub.olga_with_public_acme().await;
    let source = format!("{}/team/app:v1", proxy.host);
    for batch in 0..10 {
        let sources: Vec<Value> = (0..100)
            .map(|i| json!({"source_url": source, "target_image": format!("app{batch}-{i}")}))
            .collect();
        import(&hub, &olga, json!({"sources": sources})).await.expect_status(202, "a batch of 100");
    }
    let refused = import(&hub, &olga, json!({"source_url": source})).await;
    let error = refused.expect_status(429, "the 1001st").json();
    assert!(error.to_string().contains("at most 1000 may wait at once"), "{error}");
    proxy.release();
}

#[tokio::test]
async fn a_registry_is_reached_through_its_mirror_and_imports_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Distribution::start(&dir.path().join("storage"), None);
    let (_, digest) =
        push_image(&Registry::at(&upstream.url()), "team/app", "v1", "mirrored").await;
    let mirror = upstream.host.clone();
    let hub = Hub::start_with(move |c| {
        let settings = imagehub_server::config::ImportRegistryConfig { mirror, insecure: true };
        c.import.registries.insert("registry.example.invalid".into(), settings);
    });
    let olga = hub.olga_with_public_acme().await;
    // The registry's own name resolves nowhere: only its mirror can have answered.
    let job =
        imported(&hub, &olga, json!({"source_url": "registry.example.invalid/team/app:v1"})).await;
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "{job}"
    );

    let off = Hub::start_with(|c| c.import.enabled = false);
    let olga = off.olga_with_public_acme().await;
    let refused = import(&off, &olga, json!({"source_url": "nginx"})).await;
    let error = refused.expect_status(404, "imports are off").json();
    assert!(error.to_string().contains("imports are turned off"), "{error}");
}
