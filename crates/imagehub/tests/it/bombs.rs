//! Hostile images cannot exhaust the indexer's memory or time: a layer whose GNU
//! long-name header claims gigabytes, a few megabytes of zstd that expand to 100 GiB,
//! the same layer listed a thousand times. Each is built here at run time, small on
//! disk: zstd frames of RLE blocks expand to any size from four bytes per 128 KiB. The
//! image gets an index error naming the limit, other images are indexed all the same,
//! the server's peak memory stays small, and SIGTERM stops it mid-extraction.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::process::ServerProcess;
use crate::support::hub::{Cred, Hub, OCI_MANIFEST, sha256};

const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A zstd frame, written block by block: raw blocks for exact bytes, RLE blocks for runs.
struct ZstdFrame {
    out: Vec<u8>,
}

/// The largest block zstd allows (and this frame's window).
const BLOCK_MAX: u64 = 128 * 1024;

impl ZstdFrame {
    fn new() -> ZstdFrame {
        // Magic, then a descriptor without content size, checksum or dictionary, and a
        // 128 KiB window (exponent 7: 1 << (10 + 7)).
        ZstdFrame { out: vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3] }
    }

    fn block(&mut self, kind: u32, size: u64, last: bool) {
        let header = u32::from(last) | (kind << 1) | ((size as u32) << 3);
        self.out.extend_from_slice(&header.to_le_bytes()[..3]);
    }

    fn raw(mut self, bytes: &[u8]) -> ZstdFrame {
        for chunk in bytes.chunks(BLOCK_MAX as usize) {
            self.block(0, chunk.len() as u64, false);
            self.out.extend_from_slice(chunk);
        }
        self
    }

    fn repeat(mut self, byte: u8, mut count: u64) -> ZstdFrame {
        while count > 0 {
            let n = count.min(BLOCK_MAX);
            self.block(1, n, false);
            self.out.push(byte);
            count -= n;
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.block(0, 0, true);
        self.out
    }
}

/// A tar header block for `name` with `size` bytes of data of `kind`.
fn tar_header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.as_gnu_mut().expect("a GNU header").name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_cksum();
    header.as_bytes().to_vec()
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// A layer whose GNU long-name header claims `size` bytes (all present), then a README.
fn long_name_bomb(size: u64) -> Vec<u8> {
    let readme = b"# under the bomb\n";
    ZstdFrame::new()
        .raw(&tar_header(tar::EntryType::GNULongName, "././@LongLink", size))
        .repeat(b'a', size)
        .repeat(0, padding(size) as u64)
        .raw(&tar_header(tar::EntryType::Regular, "README.md", readme.len() as u64))
        .raw(readme)
        .repeat(0, (padding(readme.len() as u64) + 1024) as u64)
        .finish()
}

/// A layer holding one file of `size` zero bytes.
fn zeros_bomb(size: u64) -> Vec<u8> {
    ZstdFrame::new()
        .raw(&tar_header(tar::EntryType::Regular, "zeros", size))
        .repeat(0, size)
        .repeat(0, 1024)
        .finish()
}

/// A plain tar layer with one small file and no README.
fn small_layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    builder.append_data(&mut header, "bin/app", &b"app"[..]).expect("tar");
    builder.into_inner().expect("tar")
}

/// Pushes `repo:tag` with the given layers (each `(media type, blob)`, possibly the same
/// blob many times) on an open registry.
async fn push_layers(hub: &Hub, repo: &str, tag: &str, layers: &[(&str, &[u8])]) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers"}},"tag":"{tag}"}}"#
    );
    let config_digest = hub.push_blob(None, repo, config.as_bytes()).await.expect("push config");
    let mut descriptors = Vec::new();
    let mut pushed = std::collections::HashSet::new();
    for (media_type, blob) in layers {
        let digest = sha256(blob);
        if pushed.insert(digest.clone()) {
            hub.push_blob(None, repo, blob).await.expect("push layer");
        }
        descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    });
    let request = hub
        .v2(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"), None)
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_string());
    hub.send(request).await.expect_status(201, &format!("push {repo}:{tag}"));
}

async fn run_index(hub: &Hub) {
    hub.api(&Cred::Anonymous, Method::POST, "/api/v1/admin/index", None)
        .await
        .expect_status(200, "run the indexing queue");
}

async fn image(hub: &Hub, repo: &str, tag: &str) -> Value {
    let (org, name) = repo.split_once('/').expect("org/repo");
    let reply = hub
        .api(
            &Cred::Anonymous,
            Method::GET,
            &format!("/api/v1/orgs/{org}/repos/{name}/images/{tag}"),
            None,
        )
        .await;
    reply.expect_status(200, &format!("{repo}:{tag}"));
    reply.json()
}

async fn push_honest_image(hub: &Hub) {
    hub.push_readme_image(
        None,
        "good/app",
        "v1",
        "---\ndescription: indexed all the same\n---\n# Good",
    )
    .await
    .expect("push the honest image");
}

#[tokio::test]
async fn budgets_stop_bombs_and_other_images_are_indexed_all_the_same() {
    let hub = Hub::start_with(|c| {
        c.auth.enabled = false;
        c.index.max_layer_bytes = 64 << 20;
        c.index.max_image_bytes = 256 << 20;
    });
    let long_name = long_name_bomb(1 << 30);
    let zeros = zeros_bomb(100 << 30);
    assert!(long_name.len() < 64 << 10 && zeros.len() < 4 << 20, "the bombs are small on disk");
    push_layers(&hub, "bad/long-name", "v1", &[(ZSTD_LAYER, &long_name)]).await;
    let repeated: Vec<(&str, &[u8])> = (0..100).map(|_| (ZSTD_LAYER, &zeros[..])).collect();
    push_layers(&hub, "bad/zeros", "v1", &repeated).await;
    // 1,000 times the same small layer: read once, so within the image budget.
    let small = small_layer();
    let many: Vec<(&str, &[u8])> = (0..1000).map(|_| (TAR_LAYER, &small[..])).collect();
    push_layers(&hub, "bad/many", "v1", &many).await;
    push_honest_image(&hub).await;
    run_index(&hub).await;

    let error = image(&hub, "bad/long-name", "v1").await["index_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("extension header ('L') of 1073741824 bytes is over the 16384-byte limit"),
        "{error}"
    );
    let error = image(&hub, "bad/zeros", "v1").await["index_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("more than 67108864 decompressed bytes in one layer"), "{error}");
    let many = image(&hub, "bad/many", "v1").await;
    assert!(many["index_error"].is_null(), "a layer listed 1,000 times is read once: {many}");
    assert_eq!(many["platforms"][0]["architecture"], "amd64", "base info is kept: {many}");
    let good = image(&hub, "good/app", "v1").await;
    assert_eq!(good["details"]["description"], "indexed all the same", "{good}");
}

/// The server's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB")
}

/// CPU seconds the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let fields: Vec<&str> =
        stat.rsplit_once(") ").expect("stat fields").1.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

#[tokio::test]
async fn a_long_name_bomb_costs_the_server_no_memory_with_the_default_limits() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(data.path());
    let hub = Hub::at(server.url());
    // 2 GiB of long name: the tar crate allocated 6.4 GB for this one, and the server was
    // OOM-killed.
    push_layers(&hub, "bad/long-name", "v1", &[(ZSTD_LAYER, &long_name_bomb(2 << 30))]).await;
    push_honest_image(&hub).await;
    run_index(&hub).await;
    let error = image(&hub, "bad/long-name", "v1").await["index_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("over the 16384-byte limit"), "{error}");
    assert_eq!(
        image(&hub, "good/app", "v1").await["details"]["description"],
        "indexed all the same"
    );
    let peak = peak_rss_kib(server.pid());
    assert!(peak < 256 * 1024, "the server's peak RSS was {} MiB", peak / 1024);
    server.terminate();
}

#[tokio::test]
async fn sigterm_stops_the_server_in_the_middle_of_an_extraction() {
    let data = tempfile::tempdir().expect("temp dir");
    // No limit that would end this extraction in under hours.
    let env = [
        ("IMAGEHUB_AUTH__ENABLED", "false"),
        ("IMAGEHUB_INDEX__MAX_LAYER_BYTES", "1099511627776"),
        ("IMAGEHUB_INDEX__MAX_IMAGE_BYTES", "1099511627776"),
        ("IMAGEHUB_INDEX__TIMEOUT_SECS", "86400"),
    ];
    let server = ServerProcess::start_with_env(data.path(), &env);
    let hub = Hub::at(server.url());
    push_layers(&hub, "bad/zeros", "v1", &[(ZSTD_LAYER, &zeros_bomb(1 << 40))]).await;
    let indexing = tokio::spawn({
        let hub = Hub::at(server.url());
        async move { hub.send(hub.client.post(hub.url("/api/v1/admin/index"))).await }
    });
    // Extraction is under way once the server has burnt a second of CPU on it.
    let start = cpu_secs(server.pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    while cpu_secs(server.pid()) < start + 1.0 {
        assert!(Instant::now() < deadline, "the extraction never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate_within(Duration::from_secs(20));
    let _ = indexing.await;
}
