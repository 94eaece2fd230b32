//! `imagehub-bench cli`: issue 16's figures. An OCI layout of one image of `layers`
//! random layers (1 GiB in all by default) is written to disk; each round starts a
//! fresh imagehub (accounts off) and times `imagehub push oci:DIR:v1` into it against
//! `skopeo copy oci:DIR:v1 docker://…` into another fresh one, then `imagehub pull`
//! against `skopeo copy docker://… oci:OUT`, sampling each client's RSS. Rounds
//! alternate which tool goes first; medians and ratios are reported.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::data::Rng;
use crate::procmon::RssSampler;
use crate::report::{Machine, fmt_num, loadavg};
use crate::servers::{Kind, Server};
use crate::stats::median;

/// The figures issue 16 names.
pub const TARGET_SPEEDUP: f64 = 1.2;
pub const MAX_CLIENT_RSS_MIB: f64 = 64.0;

pub struct Options {
    pub imagehub_bin: PathBuf,
    pub skopeo_bin: PathBuf,
    pub size_mib: u64,
    pub layers: u64,
    pub rounds: usize,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub push_seconds: f64,
    pub push_rss_mib: f64,
    pub skopeo_push_seconds: f64,
    pub skopeo_push_rss_mib: f64,
    pub pull_seconds: f64,
    pub pull_rss_mib: f64,
    pub skopeo_pull_seconds: f64,
    pub skopeo_pull_rss_mib: f64,
}

pub async fn run(opts: Options) -> Result<()> {
    if opts.layers == 0 || opts.size_mib < opts.layers {
        bail!("--size-mib must be at least --layers");
    }
    let machine = Machine::detect();
    println!("machine: {} | load at start {}", machine.describe(), loadavg());
    let work = tempfile::Builder::new().prefix("imagehub-bench-cli-").tempdir_in("/tmp")?;
    let layout = work.path().join("layout");
    eprintln!("writing an OCI layout of {} MiB in {} layers", opts.size_mib, opts.layers);
    write_layout(&layout, opts.size_mib, opts.layers)?;
    let source = format!("oci:{}:v1", layout.display());

    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        let mut r = Round::default();
        let ours_first = round % 2 == 0;
        for step in 0..2 {
            let ours = (step == 0) == ours_first;
            let hub = Server::start(Kind::Imagehub, &opts.imagehub_bin).await?;
            let host = hub.url.trim_start_matches("http://").to_string();
            let target = format!("{host}/bench/big:v1");
            let out = work.path().join(format!("out-{round}-{step}"));
            eprintln!(
                "== round {}/{}: {} (load {})",
                round + 1,
                opts.rounds,
                if ours { "imagehub" } else { "skopeo" },
                loadavg()
            );
            if ours {
                (r.push_seconds, r.push_rss_mib) =
                    timed(&opts.imagehub_bin, &["push", "-q", &source, &target])?;
                let output = format!("oci:{}:v1", out.display());
                (r.pull_seconds, r.pull_rss_mib) =
                    timed(&opts.imagehub_bin, &["pull", "-q", &target, "--output", &output])?;
            } else {
                let destination = format!("docker://{target}");
                let push = ["copy", "--quiet", "--dest-tls-verify=false", &source, &destination];
                (r.skopeo_push_seconds, r.skopeo_push_rss_mib) = timed(&opts.skopeo_bin, &push)?;
                let output = format!("oci:{}:v1", out.display());
                let pull = ["copy", "--quiet", "--src-tls-verify=false", &destination, &output];
                (r.skopeo_pull_seconds, r.skopeo_pull_rss_mib) = timed(&opts.skopeo_bin, &pull)?;
            }
            hub.stop();
            let _ = std::fs::remove_dir_all(&out);
        }
        eprintln!(
            "   push: imagehub {:.2} s ({} MiB RSS), skopeo {:.2} s | pull: imagehub {:.2} s ({} MiB RSS), skopeo {:.2} s",
            r.push_seconds,
            fmt_num(r.push_rss_mib),
            r.skopeo_push_seconds,
            r.pull_seconds,
            fmt_num(r.pull_rss_mib),
            r.skopeo_pull_seconds
        );
        rounds.push(r);
    }
    let med = |f: fn(&Round) -> f64| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let (push, skopeo_push) = (med(|r| r.push_seconds), med(|r| r.skopeo_push_seconds));
    let (pull, skopeo_pull) = (med(|r| r.pull_seconds), med(|r| r.skopeo_pull_seconds));
    let rss = rounds.iter().map(|r| r.push_rss_mib.max(r.pull_rss_mib)).fold(0.0, f64::max);
    let verdict = |ok: bool| if ok { "meets" } else { "misses" };
    println!(
        "\n{} MiB in {} layers, {} rounds (medians):",
        opts.size_mib, opts.layers, opts.rounds
    );
    println!(
        "  push: imagehub {push:.2} s, skopeo {skopeo_push:.2} s: {:.2}x ({} {TARGET_SPEEDUP}x)",
        skopeo_push / push,
        verdict(skopeo_push / push >= TARGET_SPEEDUP)
    );
    println!(
        "  pull: imagehub {pull:.2} s, skopeo {skopeo_pull:.2} s: {:.2}x ({} {TARGET_SPEEDUP}x)",
        skopeo_pull / pull,
        verdict(skopeo_pull / pull >= TARGET_SPEEDUP)
    );
    println!(
        "  imagehub client peak RSS {} MiB ({} < {MAX_CLIENT_RSS_MIB} MiB)",
        fmt_num(rss),
        verdict(rss < MAX_CLIENT_RSS_MIB)
    );
    if let Some(path) = &opts.json {
        let value = json!({"machine": machine, "size_mib": opts.size_mib, "layers": opts.layers, "rounds": rounds,
            "push": {"imagehub": push, "skopeo": skopeo_push}, "pull": {"imagehub": pull, "skopeo": skopeo_pull},
            "client_peak_rss_mib": rss});
        crate::write_json(path, &value)?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

/// Runs a command to its end; its seconds and peak RSS (MiB, sampled).
pub fn timed(bin: &Path, args: &[&str]) -> Result<(f64, f64)> {
    // What the last step (or a build) left in the page cache is written back first: the
    // kernel otherwise throttles whichever tool writes next, and a pull measured 0.9 s
    // or 2.0 s depending on it.
    std::process::Command::new("sync").status().context("running sync")?;
    let started = Instant::now();
    let child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let sampler = RssSampler::start(child.id());
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    let rss = sampler.finish() as f64 / 1024.0;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((seconds, rss))
}

/// Writes an OCI layout of one image: `layers` random layers and a config, tagged v1.
fn write_layout(dir: &Path, size_mib: u64, layers: u64) -> Result<()> {
    write_layout_with(dir, size_mib << 20, layers, 16, false)
}

/// Writes an OCI layout of one image of `bytes` in `layers` random layers (from
/// `seed`), tagged v1; with `gzip` each layer is a gzip stream (stored, not compressed:
/// as incompressible as real layers, and quick to make).
pub fn write_layout_with(dir: &Path, bytes: u64, layers: u64, seed: u64, gzip: bool) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let write = |bytes: &[u8]| -> Result<(String, u64)> {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes)?;
        Ok((format!("sha256:{hex}"), bytes.len() as u64))
    };
    let mut rng = Rng::new(seed);
    let layer_size = bytes / layers;
    let mut descriptors = Vec::new();
    for _ in 0..layers {
        let mut bytes = vec![0u8; layer_size as usize];
        rng.fill(&mut bytes);
        let (bytes, media_type) = match gzip {
            true => {
                use std::io::Write as _;
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
                encoder.write_all(&bytes)?;
                (encoder.finish()?, "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            false => (bytes, "application/vnd.oci.image.layer.v1.tar"),
        };
        let (digest, size) = write(&bytes)?;
        descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
    }
    let (config, config_size) = write(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": descriptors,
    })
    .to_string();
    let (digest, size) = write(manifest.as_bytes())?;
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": size, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}
