//! `imagehub-bench import`: issue 15's figures. A local CNCF distribution holds one image
//! of `layers` random layers (1 GiB in all by default). Each round starts a fresh
//! imagehub and imports the image through `POST /api/v1/orgs/bench/images/import`,
//! timed from the request to the job's end, sampling the server's RSS; then imports it
//! again and counts, in distribution's access log, what the unchanged re-import asked
//! for; then starts another fresh imagehub and times `skopeo copy` of the same image
//! from distribution into it. Rounds alternate which goes first; medians are reported,
//! and skopeo's time over imagehub's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde::Serialize;
use serde_json::json;

use crate::data::Pool;
use crate::http::{Conn, Req, Target};
use crate::procmon::{RssSampler, status_kib};
use crate::registry::{self, OCI_MANIFEST};
use crate::report::{Machine, fmt_num, loadavg};
use crate::servers::{Kind, Server};
use crate::stats::median;

/// The figure issue 15 names: imagehub at least this much faster than skopeo.
pub const TARGET_SPEEDUP: f64 = 1.5;
/// And the server's RSS grows by less than this during an import.
pub const MAX_RSS_GROWTH_MIB: f64 = 64.0;

pub struct Options {
    pub imagehub_bin: PathBuf,
    pub distribution_bin: PathBuf,
    pub skopeo_bin: PathBuf,
    pub size_mib: u64,
    pub layers: u64,
    pub rounds: usize,
    pub json: Option<PathBuf>,
}

/// One round's measurements.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Round {
    pub import_seconds: f64,
    pub skopeo_seconds: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    /// Requests distribution saw during the unchanged re-import.
    pub reimport_manifest_heads: u64,
    pub reimport_manifest_gets: u64,
    pub reimport_blob_gets: u64,
}

pub async fn run(opts: Options) -> Result<()> {
    if opts.layers == 0 || opts.size_mib < opts.layers {
        bail!("--size-mib must be at least --layers (one MiB per layer)");
    }
    let machine = Machine::detect();
    println!("machine: {} | load at start {}", machine.describe(), loadavg());
    let upstream = Server::start(Kind::Distribution, &opts.distribution_bin).await?;
    let host = upstream.url.trim_start_matches("http://").to_string();
    eprintln!(
        "filling distribution at {host} with {} MiB in {} layers",
        opts.size_mib, opts.layers
    );
    let manifest_digest = fill(&upstream.url, opts.size_mib, opts.layers).await?;
    let source = format!("{host}/bench/big:v1");

    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        let mut r = Round::default();
        let import_first = round % 2 == 0;
        for step in 0..2 {
            if (step == 0) == import_first {
                eprintln!(
                    "== round {}/{}: imagehub import (load {})",
                    round + 1,
                    opts.rounds,
                    loadavg()
                );
                import_round(&opts.imagehub_bin, &upstream, &source, &manifest_digest, &mut r)
                    .await?;
            } else {
                eprintln!(
                    "== round {}/{}: skopeo copy (load {})",
                    round + 1,
                    opts.rounds,
                    loadavg()
                );
                r.skopeo_seconds = skopeo_round(&opts, &source).await?;
            }
        }
        eprintln!(
            "   import {:.2} s, skopeo {:.2} s, RSS {} -> {} MiB, re-import: {} HEAD, {} manifest GET, {} blob GET",
            r.import_seconds,
            r.skopeo_seconds,
            fmt_num(r.rss_before_mib),
            fmt_num(r.rss_peak_mib),
            r.reimport_manifest_heads,
            r.reimport_manifest_gets,
            r.reimport_blob_gets
        );
        rounds.push(r);
    }
    upstream.stop();

    let import =
        median(&rounds.iter().map(|r| r.import_seconds).collect::<Vec<_>>()).unwrap_or(f64::NAN);
    let skopeo =
        median(&rounds.iter().map(|r| r.skopeo_seconds).collect::<Vec<_>>()).unwrap_or(f64::NAN);
    let growth =
        median(&rounds.iter().map(|r| r.rss_peak_mib - r.rss_before_mib).collect::<Vec<_>>())
            .unwrap_or(f64::NAN);
    let speedup = skopeo / import;
    let mib_s = |s: f64| opts.size_mib as f64 / s;
    println!(
        "\nimport of {} MiB in {} layers from a local distribution, {} rounds (medians):",
        opts.size_mib, opts.layers, opts.rounds
    );
    println!("  imagehub import  {:>8.2} s  {:>7} MiB/s", import, fmt_num(mib_s(import)));
    println!("  skopeo copy      {:>8.2} s  {:>7} MiB/s", skopeo, fmt_num(mib_s(skopeo)));
    let verdict = |meets: bool| if meets { "meets" } else { "misses" };
    println!(
        "  speed-up {:.2}x ({} {TARGET_SPEEDUP}x); server RSS growth {} MiB ({} < {MAX_RSS_GROWTH_MIB} MiB)",
        speedup,
        verdict(speedup >= TARGET_SPEEDUP),
        fmt_num(growth),
        verdict(growth < MAX_RSS_GROWTH_MIB)
    );
    let unchanged = rounds.iter().all(|r| {
        r.reimport_manifest_heads == 1 && r.reimport_manifest_gets == 0 && r.reimport_blob_gets == 0
    });
    println!(
        "  unchanged re-import: {} (one manifest HEAD, no GET, no blob in every round: {})",
        rounds
            .iter()
            .map(|r| format!(
                "{} HEAD/{} GET/{} blob",
                r.reimport_manifest_heads, r.reimport_manifest_gets, r.reimport_blob_gets
            ))
            .collect::<Vec<_>>()
            .join(", "),
        if unchanged { "yes" } else { "no" }
    );
    if let Some(path) = &opts.json {
        let value = json!({
            "machine": machine, "size_mib": opts.size_mib, "layers": opts.layers, "rounds": rounds,
            "median_import_seconds": import, "median_skopeo_seconds": skopeo, "speedup": speedup,
            "median_rss_growth_mib": growth, "unchanged_reimport_is_one_head": unchanged,
        });
        crate::write_json(path, &value)?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

/// Pushes `bench/big:v1` of `layers` random layers to distribution; its digest.
async fn fill(url: &str, size_mib: u64, layers: u64) -> Result<String> {
    let target = Arc::new(Target::parse(url)?);
    let mut conn = Conn::connect(&target).await?;
    let pool = Pool::new();
    let layer_size = (size_mib << 20) / layers;
    let mut descriptors = Vec::new();
    for _ in 0..layers {
        let blob = pool.blob(layer_size);
        registry::upload_monolithic(&mut conn, "bench/big", &blob).await?;
        descriptors.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob.digest, "size": blob.size}));
    }
    let config = crate::data::Blob::from_chunks(vec![Bytes::from(
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )]);
    registry::upload_monolithic(&mut conn, "bench/big", &config).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size},
        "layers": descriptors,
    })
    .to_string();
    let reply = conn
        .call(registry::put_manifest_req("bench/big", "v1", Bytes::from(manifest.clone())))
        .await?;
    reply.expect(&[201], "PUT manifest")?;
    Ok(crate::data::Blob::from_chunks(vec![Bytes::from(manifest)]).digest)
}

/// A fresh imagehub importing the image, then importing it again unchanged.
async fn import_round(
    bin: &Path,
    upstream: &Server,
    source: &str,
    digest: &str,
    round: &mut Round,
) -> Result<()> {
    let host = upstream.url.trim_start_matches("http://");
    let hub = Server::start_with_env(
        Kind::Imagehub,
        bin,
        &[("IMAGEHUB_IMPORT__INSECURE_REGISTRIES", host)],
    )
    .await?;
    let target = Arc::new(Target::parse(&hub.url)?);
    round.rss_before_mib = status_kib(hub.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;
    let sampler = RssSampler::start(hub.pid);
    let started = Instant::now();
    let job = import_and_wait(&target, source).await?;
    round.import_seconds = started.elapsed().as_secs_f64();
    round.rss_peak_mib = sampler.finish() as f64 / 1024.0;
    if job["state"] != "succeeded" || job["digest"] != digest {
        bail!("the import did not succeed with {digest}: {job}\n{}", hub.log_tail());
    }
    let log = upstream.log_path();
    let seen = std::fs::read_to_string(&log).map(|l| l.len()).unwrap_or(0);
    let again = import_and_wait(&target, source).await?;
    if again["progress"]["unchanged"] != true {
        bail!("the unchanged re-import pulled: {again}");
    }
    let after = std::fs::read_to_string(&log).context("reading distribution's log")?;
    let new = &after[seen.min(after.len())..];
    let count = |what: &str| new.lines().filter(|l| l.contains(what)).count() as u64;
    round.reimport_manifest_heads = count("\"HEAD /v2/bench/big/manifests/");
    round.reimport_manifest_gets = count("\"GET /v2/bench/big/manifests/");
    round.reimport_blob_gets = count("\"GET /v2/bench/big/blobs/");
    hub.stop();
    Ok(())
}

/// Starts an import and waits for its end; the job.
async fn import_and_wait(target: &Arc<Target>, source: &str) -> Result<serde_json::Value> {
    let mut conn = Conn::connect(target).await?;
    let body = json!({"source_url": source}).to_string();
    let request = Req::post("/api/v1/orgs/bench/images/import")
        .header(CONTENT_TYPE, "application/json")
        .bytes(Bytes::from(body));
    let reply = conn.call(request).await?;
    reply.expect(&[202], "POST import")?;
    let location = reply.header("location").context("no Location")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let reply = conn.call(Req::get(format!("{location}?wait=60"))).await?;
        reply.expect(&[200], "GET import")?;
        let job: serde_json::Value = serde_json::from_slice(&reply.body)?;
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return Ok(job);
        }
        if Instant::now() > deadline {
            bail!("the import did not end within an hour: {job}");
        }
    }
}

/// `skopeo copy` of the image from distribution into a fresh imagehub; seconds.
async fn skopeo_round(opts: &Options, source: &str) -> Result<f64> {
    let hub = Server::start(Kind::Imagehub, &opts.imagehub_bin).await?;
    let destination = format!("{}/bench/big:v1", hub.url.trim_start_matches("http://"));
    let started = Instant::now();
    let status = tokio::process::Command::new(&opts.skopeo_bin)
        .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{source}"))
        .arg(format!("docker://{destination}"))
        .status()
        .await
        .with_context(|| format!("running {}", opts.skopeo_bin.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    hub.stop();
    if !status.success() {
        bail!("skopeo copy failed: {status}");
    }
    Ok(seconds)
}
