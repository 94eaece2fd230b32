//! The S3 blob store against a real S3 server (s3s-fs): blobs stored only when their
//! bytes match their digest, read whole or by range, listed and deleted; an upload begun
//! through one store (one replica) is continued and finished through another.

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use imagehub_blobstore::{AppendError, BlobStoreError, S3BlobStore};
use imagehub_oci::{Algorithm, Digest};

use crate::support::registry::{
    OCI_MANIFEST, Registry, image_config, image_manifest, random_bytes, sha256_digest,
};
use crate::support::s3::S3Server;

/// Deterministic bytes that do not compress.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `data` as a body of chunks of `size` bytes.
fn body(
    data: &[u8],
    size: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(chunks)
}

async fn read_all(store: &S3BlobStore, digest: &Digest, start: u64, end: Option<u64>) -> Vec<u8> {
    let stream = store.read_blob(digest, start, end).await.expect("read").expect("stored");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("bytes");
    chunks.concat()
}

#[tokio::test]
async fn blobs_are_stored_only_whole_and_verified_and_read_by_range() {
    let server = S3Server::start();
    let store = S3BlobStore::open(&server.settings).expect("store");
    let data = bytes(9 << 20, 7); // more than one part
    let digest = Digest::sha256_of(&data);
    let size = store.put_blob(&digest, body(&data, 1 << 20), Some(data.len() as u64)).await;
    assert_eq!(size.expect("stored"), data.len() as u64);
    assert_eq!(store.stat(&digest).await.expect("stat"), Some(data.len() as u64));
    assert_eq!(read_all(&store, &digest, 0, None).await, data);
    assert_eq!(read_all(&store, &digest, 100, Some(200)).await, data[100..200]);
    assert_eq!(read_all(&store, &digest, 8 << 20, None).await, data[8 << 20..]);

    // Bytes that are not what the digest says leave nothing behind.
    let other = Digest::sha256_of(b"something else");
    let refused = store.put_blob(&other, body(&data[..1000], 100), None).await;
    assert!(matches!(refused, Err(AppendError::Store(BlobStoreError::DigestMismatch { .. }))));
    assert_eq!(store.stat(&other).await.expect("stat"), None);
    let short = store.put_blob(&digest, body(&data[..10], 5), Some(11)).await;
    assert!(matches!(short, Err(AppendError::LengthMismatch { expected: 11, actual: 10 })));

    let empty = Digest::sha256_of(b"");
    store.put_blob(&empty, body(b"", 1), Some(0)).await.expect("an empty blob");
    assert_eq!(store.stat(&empty).await.expect("stat"), Some(0));

    let walked = store.walk_blobs().await.expect("walk");
    let mut found: Vec<String> = walked.iter().map(|b| b.digest.to_string()).collect();
    found.sort();
    let mut expected = vec![digest.to_string(), empty.to_string()];
    expected.sort();
    assert_eq!(found, expected);
    let long_ago = std::time::SystemTime::UNIX_EPOCH;
    assert_eq!(store.delete_blob_written_before(&digest, long_ago).await.expect("kept"), 0);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let freed = store.delete_blob_written_before(&digest, later).await.expect("deleted");
    assert_eq!(freed, data.len() as u64);
    assert_eq!(store.stat(&digest).await.expect("stat"), None);
    assert!(store.read_blob(&digest, 0, None).await.expect("read").is_none());
}

#[tokio::test]
async fn an_upload_begun_on_one_replica_is_finished_on_another() {
    let server = S3Server::start();
    let one = S3BlobStore::open(&server.settings).expect("replica one");
    let two = S3BlobStore::open(&server.settings).expect("replica two");
    let data = bytes(19 << 20, 11);
    let digest = Digest::sha256_of(&data);
    let id = one.create_upload();
    assert!(!one.upload_ids().await.expect("ids").contains(&id.to_string()), "nothing yet");
    assert_eq!(one.upload_len(id).await.expect("len"), 0);
    // Chunks of every kind: smaller than a part, crossing part boundaries, one byte.
    let cuts = [0, 3 << 20, (10 << 20) + 5, (10 << 20) + 6, 19 << 20];
    for (i, pair) in cuts.windows(2).enumerate() {
        let store = if i % 2 == 0 { &one } else { &two };
        let chunk = &data[pair[0]..pair[1]];
        let len = store.append(id, None, body(chunk, 64 << 10), Some(chunk.len() as u64)).await;
        assert_eq!(len.expect("appended"), pair[1] as u64);
        assert_eq!(one.upload_len(id).await.expect("len"), pair[1] as u64);
    }
    assert!(one.upload_ids().await.expect("ids").contains(&id.to_string()));

    // A wrong digest is refused and the upload stays, to be finished right.
    let wrong = Digest::sha256_of(b"not it");
    let refused = two.commit_upload(id, &wrong).await;
    assert!(matches!(refused, Err(BlobStoreError::DigestMismatch { .. })), "{refused:?}");
    assert_eq!(two.commit_upload(id, &digest).await.expect("committed"), data.len() as u64);
    assert_eq!(read_all(&one, &digest, 0, None).await, data);
    assert!(!one.upload_ids().await.expect("ids").contains(&id.to_string()), "cleaned up");

    // A body that breaks off leaves the upload as it was.
    let id = two.create_upload();
    two.append(id, None, body(&data[..1000], 100), None).await.expect("first");
    let broken = futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"more")),
        Err(std::io::Error::other("the client went away")),
    ]);
    assert!(matches!(one.append(id, None, broken, None).await, Err(AppendError::Body(_))));
    assert_eq!(one.upload_len(id).await.expect("len"), 1000);
    one.delete_upload(id).await.expect("deleted");
    assert!(!two.upload_ids().await.expect("ids").contains(&id.to_string()), "deleted");

    // An upload beyond what one server-side copy may move is streamed to its key.
    let mut small_copies = S3BlobStore::open(&server.settings).expect("store");
    small_copies.set_copy_limit(1 << 20);
    let big = bytes(9 << 20, 13);
    let big_digest = Digest::sha256_of(&big);
    let id = small_copies.create_upload();
    small_copies.append(id, None, body(&big, 1 << 20), None).await.expect("appended");
    let size = small_copies.commit_upload(id, &big_digest).await.expect("committed");
    assert_eq!(size, big.len() as u64);
    assert_eq!(read_all(&one, &big_digest, 0, None).await, big);
    assert!(!one.upload_ids().await.expect("ids").contains(&id.to_string()), "cleaned up");

    // SHA-512 digests are verified by reading the finished upload back.
    let small = bytes(5000, 3);
    let sha512 = Digest::of(Algorithm::Sha512, &small);
    let id = one.create_upload();
    two.append(id, None, body(&small, 999), None).await.expect("appended");
    assert_eq!(one.commit_upload(id, &sha512).await.expect("committed"), 5000);
    assert_eq!(read_all(&two, &sha512, 0, None).await, small);
}

/// A finishing request's body is the whole blob (one PUT, nothing of the upload read or
/// left behind) or the end of what the upload holds, told apart by its digest.
#[tokio::test]
async fn an_upload_is_finished_by_the_whole_blob_or_by_its_last_chunk() {
    let server = S3Server::start();
    let one = S3BlobStore::open(&server.settings).expect("replica one");
    let two = S3BlobStore::open(&server.settings).expect("replica two");
    let data = bytes(300_000, 17);
    let digest = Digest::sha256_of(&data);
    let len = |b: &[u8]| Some(b.len() as u64);

    // The first part through one, the rest as the finishing body on two.
    let (first, rest) = data.split_at(100_000);
    let id = one.create_upload();
    one.append(id, None, body(first, 4096), len(first)).await.expect("first part");
    let size = two.finish_upload(id, body(rest, 4096), len(rest), &digest).await;
    assert_eq!(size.expect("finished with its last chunk"), data.len() as u64);
    assert_eq!(read_all(&one, &digest, 0, None).await, data);
    assert!(!holds_upload(&one, id).await, "the upload is cleaned up");

    // An empty chunk keeps nothing in the bucket, so the whole blob after it leaves
    // nothing behind either.
    let other = bytes(5000, 19);
    let other_digest = Digest::sha256_of(&other);
    let id = one.create_upload();
    assert_eq!(one.append(id, None, body(b"", 1), Some(0)).await.expect("empty"), 0);
    assert!(!holds_upload(&one, id).await, "nothing kept for an empty chunk");
    let size = two.finish_upload(id, body(&other, 1000), len(&other), &other_digest).await;
    assert_eq!(size.expect("finished whole"), other.len() as u64);
    assert_eq!(read_all(&two, &other_digest, 0, None).await, other);
    assert!(!holds_upload(&one, id).await);

    // A body that is neither is refused, and one longer than it said is cut short.
    let id = one.create_upload();
    let wrong = Digest::sha256_of(b"something else");
    let refused = one.finish_upload(id, body(&other, 1000), len(&other), &wrong).await;
    assert!(matches!(refused, Err(AppendError::Store(BlobStoreError::DigestMismatch { .. }))));
    assert_eq!(one.stat(&wrong).await.expect("stat"), None);
    let long = one.finish_upload(id, body(&other, 1000), Some(10), &other_digest).await;
    assert!(matches!(long, Err(AppendError::LengthMismatch { expected: 10, .. })), "{long:?}");
    assert!(!holds_upload(&one, id).await, "nothing kept of refused bodies");
}

async fn holds_upload(store: &S3BlobStore, id: imagehub_blobstore::UploadId) -> bool {
    store.upload_ids().await.expect("ids").contains(&id.to_string())
}

/// A hub with `[storage.s3]` keeps its blobs in the bucket and nowhere else: pushes by
/// skopeo and the registry protocol, pulls with ranges, README indexing, all through S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_keeps_its_blobs_in_the_bucket() {
    use reqwest::Method;
    let server = S3Server::start();
    let s3 = server.config();
    let hub = crate::support::hub::Hub::start_with(move |c| c.storage.s3 = Some(s3));
    let olga = hub.olga_with_public_acme().await;
    let digest = hub.push_with_readme(&olga, "acme/app", "v1", "# Kept in a bucket\n").await;
    let path = "/api/v1/orgs/acme/repos/app/images/v1";
    let image = hub.api(&olga, Method::GET, path, None).await.expect_status(200, "image").json();
    assert_eq!(image["details"]["docs"], "# Kept in a bucket\n", "the README was read from S3");

    let token = hub.token(&olga, &[crate::support::hub::repo_scope("acme/app", "pull")]).await;
    let token = token.expect("token");
    let manifest = hub.send(hub.v2(Method::GET, "/v2/acme/app/manifests/v1", Some(&token))).await;
    let manifest = manifest.expect_status(200, "manifest").json();
    assert_eq!(manifest_digest(&manifest_bytes(&hub, &token).await), digest);
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer").to_string();
    let whole =
        hub.send(hub.v2(Method::GET, &format!("/v2/acme/app/blobs/{layer}"), Some(&token))).await;
    let whole = whole.expect_status(200, "the layer").body.clone();
    assert_eq!(Digest::sha256_of(&whole).to_string(), layer);
    let ranged = hub
        .send(
            hub.v2(Method::GET, &format!("/v2/acme/app/blobs/{layer}"), Some(&token))
                .header("range", "bytes=10-19"),
        )
        .await;
    assert_eq!(ranged.expect_status(206, "a range").body, whole[10..20]);

    // A monolithic push goes straight to its key, and only when its digest is right.
    let push = hub.token(&olga, &[crate::support::hub::repo_scope("acme/app", "pull,push")]).await;
    let push = push.expect("token");
    let blob = bytes(3 << 20, 5);
    let blob_digest = Digest::sha256_of(&blob);
    let path = format!("/v2/acme/app/blobs/uploads/?digest={blob_digest}");
    let posted = hub.send(hub.v2(Method::POST, &path, Some(&push)).body(blob.clone())).await;
    posted.expect_status(201, "a monolithic push");
    let wrong = Digest::sha256_of(b"wrong");
    let path = format!("/v2/acme/app/blobs/uploads/?digest={wrong}");
    let refused = hub.send(hub.v2(Method::POST, &path, Some(&push)).body(blob.clone())).await;
    refused.expect_oci_error(&[400], &["DIGEST_INVALID"], "a wrong digest");

    // Nothing of it under the data directory; all of it in the bucket.
    let data = hub.server().data_dir().join("blobs");
    let on_disk = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
    assert_eq!(on_disk, 0, "no blob under {}", data.display());
    let bucket = S3BlobStore::open(&server.settings).expect("bucket");
    let kept: Vec<String> =
        bucket.walk_blobs().await.expect("walk").iter().map(|b| b.digest.to_string()).collect();
    assert!(kept.contains(&layer) && kept.contains(&blob_digest.to_string()), "{kept:?}");
    assert!(!kept.contains(&wrong.to_string()), "{kept:?}");

    // A real client pulls and pushes through it too (the blobs mount or upload again).
    let home = tempfile::tempdir().expect("home");
    let host = hub.server().host();
    let creds = "olga:olga-password-1";
    let (from, to) =
        (format!("docker://{host}/acme/app:v1"), format!("docker://{host}/team/copied:v1"));
    hub.create_user("team", "team-password-1").await;
    let copied = crate::cli::skopeo(
        home.path(),
        &["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds]
            .into_iter()
            .chain(["--dest-creds", "team:team-password-1", &from, &to])
            .collect::<Vec<_>>(),
    );
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let back = home.path().join("back");
    let pulled = crate::cli::skopeo(
        home.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "team:team-password-1",
            &to,
            &format!("oci:{}:v1", back.display()),
        ],
    );
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
}

async fn manifest_bytes(hub: &crate::support::hub::Hub, token: &str) -> Vec<u8> {
    let reply =
        hub.send(hub.v2(reqwest::Method::GET, "/v2/acme/app/manifests/v1", Some(token))).await;
    reply.body.clone()
}

fn manifest_digest(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

/// Garbage collection on a bucket: what nothing references goes from the bucket, shared
/// and referenced blobs stay (`imagehub gc` with the same configuration as the server).
#[tokio::test]
async fn gc_collects_in_the_bucket_and_keeps_what_is_referenced() {
    let server = S3Server::start();
    let s3 = server.config();
    let reg = Registry::start_with({
        let s3 = s3.clone();
        move |c| c.storage.s3 = Some(s3)
    });
    let repo = "gc/app";
    let (shared, only_a, only_b) =
        (random_bytes(4096, 1), random_bytes(4096, 2), random_bytes(4096, 3));
    let (config_a, config_b) = (image_config("a"), image_config("b"));
    for blob in [&shared, &only_a, &only_b, &config_a, &config_b] {
        reg.push_blob(repo, blob).await;
    }
    reg.push_manifest(repo, "a", OCI_MANIFEST, &image_manifest(&config_a, &[&shared, &only_a]))
        .await;
    reg.push_manifest(repo, "b", OCI_MANIFEST, &image_manifest(&config_b, &[&shared, &only_b]))
        .await;
    reg.delete(&format!("/v2/{repo}/manifests/a")).await.expect_status_in(&[202], "untag a");

    let config = tempfile::NamedTempFile::new().expect("config");
    let toml = format!(
        "[storage.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\npath_style = true\n",
        s3.endpoint, s3.bucket, s3.access_key, s3.secret_key
    );
    std::fs::write(config.path(), toml).expect("write the config");
    let dir = reg.server().data_dir().to_str().expect("utf-8").to_owned();
    let path = config.path().to_str().expect("utf-8").to_owned();
    // Not `run_cli`: in the suite's S3 pass its environment names the suite's bucket for
    // this data directory, which would override the file's.
    let database = imagehub_testkit::backend::metadata_url(reg.server().data_dir());
    let output = std::process::Command::new(crate::process::imagehub_bin())
        .args(["gc", "--config", &path, "--data-dir", &dir, "--grace-period-secs", "0"])
        .envs(database.map(|url| ("IMAGEHUB_METADATA__URL", url)))
        .output()
        .expect("run imagehub gc");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("removed 1 manifests") && report.contains("removed 2 blobs"),
        "{report}"
    );

    let bucket = S3BlobStore::open(&server.settings).expect("bucket");
    let kept: Vec<String> =
        bucket.walk_blobs().await.expect("walk").iter().map(|b| b.digest.to_string()).collect();
    for gone in [&only_a, &config_a] {
        assert!(!kept.contains(&sha256_digest(gone)), "{kept:?}");
    }
    for stays in [&shared, &only_b, &config_b] {
        assert!(kept.contains(&sha256_digest(stays)), "{kept:?}");
        let path = format!("/v2/{repo}/blobs/{}", sha256_digest(stays));
        assert_eq!(reg.get(&path).await.status.as_u16(), 200);
    }
}

/// With `storage.s3.redirect`, a pull is a redirect to a presigned URL of the bucket,
/// which gives the bytes (whole or a range) without the hub's credentials; real clients
/// follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_can_be_redirected_to_the_bucket() {
    let server = S3Server::start();
    let mut s3 = server.config();
    s3.redirect = true;
    let reg = Registry::start_with(move |c| c.storage.s3 = Some(s3));
    let repo = "team/app";
    let layer = random_bytes(100_000, 9);
    let config = image_config("redirected");
    for blob in [&layer, &config] {
        reg.push_blob(repo, blob).await;
    }
    reg.push_manifest(repo, "v1", OCI_MANIFEST, &image_manifest(&config, &[&layer])).await;
    let path = format!("/v2/{repo}/blobs/{}", sha256_digest(&layer));
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = direct.get(reg.url(&path)).send().await.expect("GET");
    assert_eq!(answer.status().as_u16(), 307);
    let location = answer.headers()["location"].to_str().expect("location").to_string();
    assert!(location.starts_with(&server.settings.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "presigned: {location}");
    let fetched = reqwest::get(&location).await.expect("the bucket").bytes().await.expect("bytes");
    assert_eq!(fetched.as_ref(), layer.as_slice());
    let ranged = direct.get(&location).header("range", "bytes=5-9").send().await.expect("range");
    assert_eq!(ranged.bytes().await.expect("bytes").as_ref(), &layer[5..10]);
    // HEAD still answers from the hub; skopeo follows the redirect on pulls.
    let head = direct.head(reg.url(&path)).send().await.expect("HEAD");
    assert_eq!(head.status().as_u16(), 200);
    let home = tempfile::tempdir().expect("home");
    let from = format!("docker://{}/{repo}:v1", reg.server().host());
    let to = format!("oci:{}:v1", home.path().join("out").display());
    let pulled = crate::cli::skopeo(home.path(), &["copy", "--src-tls-verify=false", &from, &to]);
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
}

/// `imagehub migrate --blobs-to s3://…` moves a single-machine hub's blobs into a bucket,
/// verified and resumable; the hub then runs on the bucket with every image and detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_hubs_blobs_into_a_bucket() {
    use reqwest::Method;
    let server = S3Server::start();
    let hub = crate::support::hub::Hub::start_with(|c| c.storage.s3 = None); // in either pass
    let olga = hub.olga_with_public_acme().await;
    let digest = hub.push_with_readme(&olga, "acme/app", "v1", "# Moved\n").await;
    let scopes = [crate::support::hub::repo_scope("acme/tools", "pull,push")];
    let token = hub.token(&olga, &scopes).await.expect("token");
    hub.push_platform_image(&token, "acme/tools", "arm64").await;
    let data_dir = hub.server().data_dir().to_path_buf();
    let settings = &server.settings;
    let url = format!("s3://{}?endpoint={}&path_style=true", settings.bucket, settings.endpoint);
    let migrate = |to: &str| {
        let output = std::process::Command::new(crate::process::imagehub_bin())
            .args(["migrate", "--data-dir", data_dir.to_str().expect("utf-8"), "--blobs-to", to])
            .env("AWS_ACCESS_KEY_ID", &settings.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &settings.secret_key)
            .output()
            .expect("run imagehub migrate");
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), said)
    };
    let local: usize = std::fs::read_dir(data_dir.join("blobs/sha256"))
        .expect("blobs")
        .map(|prefix| std::fs::read_dir(prefix.expect("entry").path()).expect("dir").count())
        .sum();
    assert!(local >= 4, "two images' configs and layers at least: {local}");
    let (ok, said) = migrate(&url);
    let copied = format!("copied {local} blobs");
    assert!(ok && said.contains(&copied) && said.contains(", 0 already"), "{said}");
    let (ok, said) = migrate(&url);
    let again = format!("copied 0 blobs (0 bytes), {local} already in the bucket");
    assert!(ok && said.contains(&again), "{said}");
    let (ok, said) = migrate("s3://imagehub");
    assert!(!ok && said.contains("no endpoint"), "{said}");

    // The local blobs gone, the hub runs on the bucket with everything it had.
    std::fs::remove_dir_all(data_dir.join("blobs")).expect("remove the local blobs");
    let s3 = server.config();
    let hub = hub.restart_with(move |c| c.storage.s3 = Some(s3));
    let path = "/api/v1/orgs/acme/repos/app/images/v1";
    let image = hub.api(&olga, Method::GET, path, None).await.expect_status(200, "image").json();
    assert_eq!(image["digest"], digest.as_str(), "{image}");
    assert_eq!(image["details"]["docs"], "# Moved\n", "{image}");
    let token = hub.token(&olga, &[crate::support::hub::repo_scope("acme/app", "pull")]).await;
    let token = token.expect("token");
    let manifest = hub.send(hub.v2(Method::GET, "/v2/acme/app/manifests/v1", Some(&token))).await;
    let manifest = manifest.expect_status(200, "manifest").json();
    for blob in
        std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().expect("layers"))
    {
        let digest = blob["digest"].as_str().expect("digest");
        let path = format!("/v2/acme/app/blobs/{digest}");
        let pulled = hub.send(hub.v2(Method::GET, &path, Some(&token))).await;
        let pulled = pulled.expect_status(200, "a blob from the bucket");
        assert_eq!(Digest::sha256_of(&pulled.body).to_string(), digest);
    }
}

/// The bucket is part of readiness: a hub whose bucket goes away says so on `/readyz` at
/// once, and a hub whose bucket cannot be reached does not start, naming it.
#[tokio::test]
async fn readiness_covers_the_bucket_and_an_unreachable_one_stops_the_start() {
    let server = S3Server::start();
    let s3 = server.config();
    let reg = Registry::start_with(move |c| c.storage.s3 = Some(s3));
    assert_eq!(reg.get("/readyz").await.status.as_u16(), 200);
    let endpoint = server.settings.endpoint.clone();
    drop(server);
    assert_eq!(reg.get("/readyz").await.status.as_u16(), 503, "the bucket is gone");

    let data = tempfile::tempdir().expect("data");
    let config = data.path().join("imagehub.toml");
    let toml = format!(
        "[storage.s3]\nendpoint = \"{endpoint}\"\nbucket = \"imagehub\"\naccess_key = \"k\"\nsecret_key = \"s\"\npath_style = true\n"
    );
    std::fs::write(&config, toml).expect("config");
    let output = std::process::Command::new(crate::process::imagehub_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .output()
        .expect("run imagehub serve");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("the bucket imagehub at {endpoint}")), "{said}");
}

/// `imagehub config` prints TOML that reads back (the bucket as its own table), with the
/// bucket's secret key and the build webhook's secret hidden.
#[test]
fn the_printed_configuration_is_toml_without_its_secrets() {
    let output = std::process::Command::new(crate::process::imagehub_bin())
        .arg("config")
        .env("IMAGEHUB_STORAGE__S3__ENDPOINT", "http://127.0.0.1:3900")
        .env("IMAGEHUB_STORAGE__S3__BUCKET", "imagehub")
        .env("IMAGEHUB_STORAGE__S3__ACCESS_KEY", "GK-access")
        .env("IMAGEHUB_STORAGE__S3__SECRET_KEY", "bucket-secret-value")
        .env("IMAGEHUB_BUILD__WEBHOOK_SECRET", "webhook-secret-value")
        .output()
        .expect("run imagehub config");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("secret-value"), "{printed}");
    let read: toml::Value = toml::from_str(&printed).expect("TOML");
    assert_eq!(read["storage"]["s3"]["bucket"].as_str(), Some("imagehub"));
    assert_eq!(read["storage"]["s3"]["access_key"].as_str(), Some("GK-access"));
    assert_eq!(read["storage"]["s3"]["secret_key"].as_str(), Some("(hidden)"));
    assert_eq!(read["build"]["webhook_secret"].as_str(), Some("(hidden)"));
}

/// Across a restart on a bucket: an upload session resumes where it stopped, and an
/// upload the bucket holds without a session (a crash between the two) is removed — on
/// SQLite; with PostgreSQL, shared by replicas, one this young may be another replica's
/// in the making and stays (`replicas.rs` tests that side).
#[tokio::test]
async fn an_upload_survives_a_restart_and_leftovers_do_not() {
    use imagehub_testkit::TestServer;
    let server = S3Server::start();
    let s3 = server.config();
    let hub = TestServer::start_with({
        let s3 = s3.clone();
        move |c| c.storage.s3 = Some(s3)
    });
    let reg = Registry::at(&hub.url());
    let data = random_bytes(3 << 20, 21);
    let location = reg.begin_upload("team/app").await;
    let first = reg.patch_chunk(&location, 0, &data[..1 << 20]).await;
    first.expect_status_in(&[202], "the first chunk");
    let bucket = S3BlobStore::open(&server.settings).expect("bucket");
    let leftover = bucket.create_upload();
    let bytes = body(b"bytes without a session", 8);
    bucket.append(leftover, None, bytes, None).await.expect("an upload without a session");

    let hub = TestServer::start_in(hub.stop(), move |c| c.storage.s3 = Some(s3));
    let reg = Registry::at(&hub.url());
    let ids = bucket.upload_ids().await.expect("ids");
    let shared = hub.database_url().starts_with("postgres");
    assert_eq!(ids.contains(&leftover.to_string()), shared, "the leftover: {ids:?}");
    let second = reg.patch_chunk(&location, 1 << 20, &data[1 << 20..]).await;
    second.expect_status_in(&[202], "the session resumes");
    let digest = sha256_digest(&data);
    reg.put_upload(&location, &digest, &[]).await.expect_status_in(&[201], "finished");
    let pulled = reg.get(&format!("/v2/team/app/blobs/{digest}")).await;
    assert_eq!(pulled.body, data);
    let left = bucket.upload_ids().await.expect("ids");
    let expected = if shared { vec![leftover.to_string()] } else { Vec::new() };
    assert_eq!(left, expected, "nothing left behind but the young leftover");
}
