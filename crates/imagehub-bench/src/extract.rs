//! `imagehub-bench extract`: issue 6's figure, "extraction of a README from a 1 GiB
//! image whose README sits in the top layer reads only that layer".
//!
//! A fresh imagehub (accounts on) gets `bench/big:v1`: a bottom layer holding one file of
//! `--size-mib` MiB of random bytes and a top layer holding `README.md` with front
//! matter, both uncompressed tars. The indexing queue is then run with
//! `POST /api/v1/admin/index`, and the server's `/proc/PID/io` counters are read around
//! that call: `rchar` counts every byte the server read through read syscalls (files and
//! sockets, page cache or not), so its delta bounds what the indexer read. The details
//! the API then shows must come from the README.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use serde::Serialize;
use serde_json::{Value, json};

use crate::data::{Blob, Pool, Rng};
use crate::http::{Conn, Req, Target};
use crate::registry;
use crate::report::{self, fmt_num};
use crate::search::corpus::ustar;
use crate::search::fill::{self, Admin};
use crate::servers::Server;

const REPO: &str = "bench/big";
const TAG: &str = "v1";
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DESCRIPTION: &str = "A big image whose README sits in its top layer";
const KEYWORDS: [&str; 2] = ["big", "bench"];
/// Body chunk of the big layer; the data is slices of a random pool of `POOL_BYTES`, so
/// a 1 GiB layer never sits in memory.
const CHUNK: usize = 1 << 20;
const POOL_BYTES: usize = 16 << 20;
const INDEX_LIMIT: Duration = Duration::from_secs(600);

/// Everything the `extract` subcommand takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub imagehub_bin: PathBuf,
    pub size_mib: u64,
    pub json: Option<PathBuf>,
}

/// Read counters of a process (`/proc/PID/io`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Io {
    pub rchar: u64,
    pub read_bytes: u64,
}

impl Io {
    fn since(self, earlier: Io) -> Io {
        Io {
            rchar: self.rchar.saturating_sub(earlier.rchar),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
        }
    }
}

fn parse_io(text: &str) -> Option<Io> {
    let field = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
    };
    Some(Io { rchar: field("rchar")?, read_bytes: field("read_bytes")? })
}

/// The read counters of process `pid`, all its threads included.
pub fn proc_io(pid: u32) -> Result<Io> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    parse_io(&text).ok_or_else(|| anyhow!("/proc/{pid}/io has no rchar or read_bytes"))
}

/// The ustar header of a regular file `name` of `size` bytes.
fn tar_header(name: &str, size: u64) -> Result<Bytes> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(Bytes::copy_from_slice(h.as_bytes()))
}

/// What follows a file of `size` bytes in a one-file tar: padding to 512, two zero blocks.
fn tar_tail(size: u64) -> Bytes {
    let pad = (512 - size % 512) % 512;
    Bytes::from(vec![0u8; pad as usize + 1024])
}

/// A tar holding `data.bin` of `size` random bytes, as shared chunks.
fn big_layer(pool: &Pool, size: u64) -> Result<Blob> {
    let base = pool.bytes(POOL_BYTES);
    let seed = <[u8; 8]>::try_from(&pool.bytes(8)[..])?;
    let mut rng = Rng::new(u64::from_le_bytes(seed));
    let mut chunks = vec![tar_header("data.bin", size)?];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        // Random offsets keep consecutive chunks from repeating the pool in order.
        let at = (rng.next_u64() % (POOL_BYTES - n + 1) as u64) as usize;
        chunks.push(base.slice(at..at + n));
        left -= n as u64;
    }
    chunks.push(tar_tail(size));
    Ok(Blob::from_chunks(chunks))
}

fn readme() -> String {
    format!(
        "---\ndescription: {DESCRIPTION}\nkeywords: [{}]\n---\n# Big\n\nOne large file below, this README on top.\n",
        KEYWORDS.join(", ")
    )
}

fn readme_layer() -> Blob {
    Blob::from_chunks(vec![Bytes::from(ustar(&[("README.md", readme().as_bytes())]))])
}

/// The image config; `diff_ids` are the layer digests, the layers being uncompressed.
fn config_blob(layers: &[&Blob]) -> Blob {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    Blob::from_chunks(vec![Bytes::from(config.to_string())])
}

fn manifest(config: &Blob, layers: &[&Blob]) -> Bytes {
    let layers: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": LAYER_TAR, "digest": l.digest, "size": l.size}))
        .collect();
    let v = json!({
        "schemaVersion": 2,
        "mediaType": registry::OCI_MANIFEST,
        "config": {"mediaType": registry::OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    Bytes::from(v.to_string())
}

/// The image, bottom layer first.
struct Image {
    bottom: Blob,
    top: Blob,
    config: Blob,
}

impl Image {
    fn build(size_mib: u64) -> Result<Self> {
        let bottom = big_layer(&Pool::new(), size_mib << 20)?;
        let top = readme_layer();
        let config = config_blob(&[&bottom, &top]);
        Ok(Self { bottom, top, config })
    }

    fn size(&self) -> u64 {
        self.bottom.size + self.top.size + self.config.size
    }

    fn manifest(&self) -> Bytes {
        manifest(&self.config, &[&self.bottom, &self.top])
    }
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub image_bytes: u64,
    pub bottom_layer_bytes: u64,
    pub top_layer_bytes: u64,
    pub config_bytes: u64,
    pub push_seconds: f64,
    /// Wall seconds of `POST /api/v1/admin/index` (the admin's password check included).
    pub index_seconds: f64,
    pub index_ran: u64,
    /// The same call again with nothing queued: its fixed cost.
    pub empty_index_seconds: f64,
    /// Server reads over the indexing call (over manifest push + indexing if the
    /// background runner took the job first, see `window`).
    pub io: Io,
    pub window: &'static str,
    /// Server reads over the call with nothing queued.
    pub empty_io: Io,
    /// Server reads while the manifest was put (the push does not read layers).
    pub manifest_put_io: Io,
    pub rchar_pct_of_image: f64,
    pub reads_only_top_layer: bool,
    pub details: Value,
}

/// Uploads the blobs (Basic auth as the admin), timed; the manifest is put separately.
async fn push_blobs(target: &Arc<Target>, admin: &Admin, image: &Image) -> Result<(Conn, f64)> {
    let mut conn = Conn::connect(target).await?;
    conn.set_default_header(AUTHORIZATION, &admin.basic())?;
    let t0 = Instant::now();
    for blob in [&image.bottom, &image.top, &image.config] {
        registry::upload_monolithic(&mut conn, REPO, blob)
            .await
            .with_context(|| format!("uploading {}", blob.digest))?;
    }
    Ok((conn, t0.elapsed().as_secs_f64()))
}

/// Runs the indexing queue and returns (seconds, jobs run, server reads over the call).
async fn index_measured(target: &Arc<Target>, admin: &Admin, pid: u32) -> Result<(f64, u64, Io)> {
    let before = proc_io(pid)?;
    let (seconds, ran, _pending) = fill::run_index(target, admin, INDEX_LIMIT).await?;
    Ok((seconds, ran, proc_io(pid)?.since(before)))
}

/// The image as the API shows it, checked against the README.
async fn check_details(target: &Arc<Target>, admin: &Admin) -> Result<Value> {
    let mut conn = Conn::connect(target).await?;
    let (org, repo) = REPO.split_once('/').unwrap_or(("bench", REPO));
    let r = conn
        .call(
            Req::get(format!("/api/v1/orgs/{org}/repos/{repo}/images/{TAG}"))
                .header(AUTHORIZATION, &admin.basic()),
        )
        .await?;
    r.expect(&[200], "GET the image")?;
    let v: Value = serde_json::from_slice(&r.body).context("image answer is not JSON")?;
    let d = &v["details"];
    let from_readme = d["description"] == DESCRIPTION
        && d["keywords"] == json!(KEYWORDS)
        && d["docs"].as_str().is_some_and(|s| s.starts_with("# Big"))
        && v["detail_sources"].as_array().is_some_and(|s| s.iter().any(|x| x == "image_readme"));
    if !from_readme || v["index_error"] != Value::Null {
        bail!(
            "the image's details did not come from its README:\n{}",
            serde_json::to_string_pretty(&v)?
        );
    }
    Ok(v)
}

async fn measure(server: &Server, admin: &Admin, size_mib: u64) -> Result<Figures> {
    let target = Arc::new(Target::parse(&server.url)?);
    fill::create_org(&target, admin).await?;
    eprintln!("building the image ({size_mib} MiB bottom layer)");
    let image = Image::build(size_mib)?;
    eprintln!("pushing {REPO}:{TAG}");
    let (mut conn, push_seconds) = push_blobs(&target, admin, &image).await?;
    let before_put = proc_io(server.pid)?;
    registry::put_manifest(&mut conn, REPO, TAG, image.manifest()).await?;
    // The background runner starts 250 ms after a push; the call below takes the job first.
    let manifest_put_io = proc_io(server.pid)?.since(before_put);
    let (index_seconds, index_ran, mut io) = index_measured(&target, admin, server.pid).await?;
    let mut window = "indexing call";
    if index_ran == 0 {
        // The background runner got the job first; the call waited for it, so the wider
        // window still holds all of its reads.
        io = proc_io(server.pid)?.since(before_put);
        window = "manifest put + indexing (background runner took the job)";
    }
    let (empty_index_seconds, _, empty_io) = index_measured(&target, admin, server.pid).await?;
    let v = check_details(&target, admin).await?;
    Ok(Figures {
        image_bytes: image.size(),
        bottom_layer_bytes: image.bottom.size,
        top_layer_bytes: image.top.size,
        config_bytes: image.config.size,
        push_seconds,
        index_seconds,
        index_ran,
        empty_index_seconds,
        io,
        window,
        empty_io,
        manifest_put_io,
        rchar_pct_of_image: io.rchar as f64 * 100.0 / image.size() as f64,
        reads_only_top_layer: io.rchar < image.bottom.size / 100,
        details: v["details"].clone(),
    })
}

/// A byte count with thousands separators (`fmt_num` gives small numbers decimals).
fn int(b: u64) -> String {
    if b >= 100 { fmt_num(b as f64) } else { b.to_string() }
}

fn bytes_cell(b: u64) -> String {
    let mib = b as f64 / (1 << 20) as f64;
    if mib >= 1.0 {
        format!("{} B = {} MiB", int(b), fmt_num(mib))
    } else {
        format!("{} B", int(b))
    }
}

/// The text table of the results.
pub fn table(f: &Figures) -> String {
    let rows = [
        ("image size", format!("{}: config + 2 uncompressed layers", bytes_cell(f.image_bytes))),
        ("bottom layer", format!("{}: data.bin, random", bytes_cell(f.bottom_layer_bytes))),
        ("top layer", format!("{}: README.md", bytes_cell(f.top_layer_bytes))),
        ("push (blobs)", format!("{} s", fmt_num(f.push_seconds))),
        (
            "indexing wall time",
            format!(
                "{} ms ({} job run; same call, empty queue: {} ms)",
                fmt_num(f.index_seconds * 1e3),
                f.index_ran,
                fmt_num(f.empty_index_seconds * 1e3)
            ),
        ),
        (
            "server rchar delta",
            format!(
                "{} B = {:.5} % of the image ({}; empty queue: {} B)",
                int(f.io.rchar),
                f.rchar_pct_of_image,
                f.window,
                int(f.empty_io.rchar)
            ),
        ),
        (
            "server read_bytes delta",
            format!(
                "{} B (disk reads that missed the page cache; empty queue: {} B)",
                int(f.io.read_bytes),
                int(f.empty_io.read_bytes)
            ),
        ),
    ];
    let mut out = String::new();
    for (label, value) in rows {
        out.push_str(&format!("{label:<24} {value}\n"));
    }
    out.push_str(&format!(
        "reads only the top layer: {} (rchar delta {} the bottom layer's size / 100 = {} B)\n",
        if f.reads_only_top_layer { "yes" } else { "no" },
        if f.reads_only_top_layer { "<" } else { ">=" },
        int(f.bottom_layer_bytes / 100)
    ));
    out
}

/// Runs the whole benchmark.
pub async fn run(opts: Options) -> Result<()> {
    ensure!(opts.size_mib >= 1, "--size-mib must be at least 1");
    let load_start = report::loadavg();
    let password = format!("Bench-{}-Pw1", hex::encode(Pool::new().bytes(12)));
    let admin = Admin { user: "admin".into(), password };
    let server = Server::start_hub(&opts.imagehub_bin, &admin.password, None).await?;
    eprintln!(
        "started imagehub pid {} at {} (log {})",
        server.pid,
        server.url,
        server.log_path().display()
    );
    let result = measure(&server, &admin, opts.size_mib).await;
    if result.is_err() {
        eprintln!("server log tail:\n{}", server.log_tail());
    }
    server.stop();
    let f = result?;
    let load_end = report::loadavg();
    println!(
        "extract: README in the top layer of {REPO}:{TAG} | load start {load_start} | load end {load_end}"
    );
    print!("{}", table(&f));
    if let Some(path) = &opts.json {
        crate::write_json(
            path,
            &json!({"load_start": load_start, "load_end": load_end, "size_mib": opts.size_mib, "figures": f}),
        )?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn concat(blob: &Blob) -> Vec<u8> {
        blob.chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn big_layer_is_a_one_file_tar() {
        let size = 2 * CHUNK as u64 + 1001;
        let layer = big_layer(&Pool::new(), size).expect("layer");
        let bytes = concat(&layer);
        assert_eq!(bytes.len() as u64, layer.size);
        assert_eq!(layer.size % 512, 0);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().expect("entries");
        let mut entry = entries.next().expect("one entry").expect("valid entry");
        assert_eq!(entry.path().expect("path").to_str(), Some("data.bin"));
        assert_eq!(entry.header().size().expect("size"), size);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("data");
        assert_eq!(data.len() as u64, size);
        drop(entry);
        assert!(entries.next().is_none());
    }

    #[test]
    fn tail_pads_to_a_block() {
        assert_eq!(tar_tail(512).len(), 1024);
        assert_eq!(tar_tail(1).len(), 511 + 1024);
    }

    #[test]
    fn io_counters() {
        let text = "rchar: 12\nwchar: 3\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";
        let io = parse_io(text).expect("parsed");
        assert_eq!((io.rchar, io.read_bytes), (12, 4096));
        assert!(parse_io("wchar: 3\n").is_none());
        assert!(proc_io(std::process::id()).is_ok());
    }

    #[test]
    fn manifest_lists_the_bottom_layer_first() {
        let (a, b) = (readme_layer(), Blob::from_chunks(vec![Bytes::from_static(b"x")]));
        let config = config_blob(&[&b, &a]);
        let m: Value = serde_json::from_slice(&manifest(&config, &[&b, &a])).expect("json");
        assert_eq!(m["layers"][0]["digest"], b.digest.as_str());
        assert_eq!(m["layers"][1]["mediaType"], LAYER_TAR);
        let c: Value = serde_json::from_slice(&concat(&config)).expect("json");
        assert_eq!(c["rootfs"]["diff_ids"][1], a.digest.as_str());
    }
}
