//! The benchmark scenarios, one module per group of figures, run in a fixed order against
//! one registry; a failing scenario is recorded and the run goes on.

pub mod catalog;
pub mod download;
pub mod manifest;
pub mod push;
pub mod tags;
pub mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;

use crate::data::{Blob, Pool};
use crate::http::{Conn, Target};
use crate::procmon;
use crate::registry;
use crate::report::RunReport;

pub const MIB: u64 = 1 << 20;

/// Scenario names, in the order they run.
pub const NAMES: [&str; 6] = ["upload", "download", "manifest", "tags", "catalog", "push"];

/// Sizes and durations of one run (full or `--quick`).
#[derive(Debug, Clone)]
pub struct Sizes {
    pub quick: bool,
    pub small_count: usize,
    pub mid: u64,
    pub mid_reps: usize,
    pub big: u64,
    pub big_reps: usize,
    pub chunked: u64,
    pub chunked_reps: usize,
    pub chunk: u64,
    pub load: Duration,
    pub tags: u64,
    pub repos: u64,
    pub images: u64,
    pub image_workers: usize,
    pub list_reps: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                small_count: 20,
                mid: 16 * MIB,
                mid_reps: 2,
                big: 128 * MIB,
                big_reps: 1,
                chunked: 32 * MIB,
                chunked_reps: 1,
                chunk: 8 * MIB,
                load: Duration::from_secs(2),
                tags: 1_000,
                repos: 200,
                images: 20,
                image_workers: 16,
                list_reps: 3,
            }
        } else {
            Self {
                quick,
                small_count: 50,
                mid: 64 * MIB,
                mid_reps: 3,
                big: 1024 * MIB,
                big_reps: 2,
                chunked: 256 * MIB,
                chunked_reps: 2,
                chunk: 8 * MIB,
                load: Duration::from_secs(5),
                tags: 10_000,
                repos: 2_000,
                images: 100,
                image_workers: 16,
                list_reps: 5,
            }
        }
    }
}

/// "1 MiB", "64 MiB", "1 GiB".
pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// "1mib", "64mib", "1gib" for figure keys.
pub fn size_key(bytes: u64) -> String {
    size_label(bytes).replace(' ', "").to_lowercase()
}

/// A small image whose blobs exist in `repo` under tag `latest`.
#[derive(Debug, Clone)]
pub struct Image {
    pub repo: String,
    pub config: Blob,
    pub layer: Blob,
    pub manifest: Bytes,
}

/// What scenarios hand to later ones.
#[derive(Default)]
pub struct State {
    /// A 1 MiB blob already uploaded to `Ctx::repo("upload")`.
    pub small_blob: Option<Blob>,
    /// The big (1 GiB) blob already uploaded to `Ctx::repo("upload")`.
    pub big_blob: Option<Blob>,
    pub image: Option<Image>,
}

/// Everything a scenario needs.
pub struct Ctx {
    pub target: Arc<Target>,
    pub pid: Option<u32>,
    pub sizes: Sizes,
    /// Scenarios to run; empty runs all.
    pub only: Vec<String>,
    pub run_id: String,
    pub pool: Pool,
}

impl Ctx {
    /// Repository name for a scenario, unique to this run.
    pub fn repo(&self, what: &str) -> String {
        format!("bench-{}/{what}", self.run_id)
    }

    /// A small config blob (JSON, unique).
    pub fn config_blob(&self, seed: &str) -> Blob {
        let noise = hex::encode(self.pool.bytes(16));
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"bench":"{seed}-{noise}"}}}}}}"#
        );
        Blob::from_chunks(vec![Bytes::from(json)])
    }

    /// Pushes a small image (config + 1 KiB layer + manifest tagged `latest`) to `repo`.
    pub async fn push_small_image(&self, repo: &str) -> Result<Image> {
        let mut conn = Conn::connect(&self.target).await?;
        let config = self.config_blob(repo);
        let layer = self.pool.blob(1024);
        registry::push_blob(&mut conn, repo, &config).await?;
        registry::push_blob(&mut conn, repo, &layer).await?;
        let manifest = registry::manifest_json(&config, &[&layer], repo);
        registry::put_manifest(&mut conn, repo, "latest", manifest.clone()).await?;
        Ok(Image { repo: repo.to_string(), config, layer, manifest })
    }
}

/// Flushes dirty pages so one phase's writeback does not land in the next.
pub fn sync_disks() {
    let _ = std::process::Command::new("sync").status();
}

/// Runs every scenario in order and returns the report.
pub async fn run_all(ctx: &Ctx, url: &str) -> RunReport {
    let started = Instant::now();
    let mut rep = RunReport {
        url: url.to_string(),
        quick: ctx.sizes.quick,
        server_pid: ctx.pid,
        ..Default::default()
    };
    let mut st = State::default();
    macro_rules! scenario {
        ($name:literal, $call:expr) => {{
            if !ctx.only.is_empty() && !ctx.only.iter().any(|n| n == $name) {
                eprintln!("[{:>6.1}s] {} skipped", started.elapsed().as_secs_f64(), $name);
            } else {
                sync_disks();
                eprintln!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), $name);
                if let Err(e) = $call.await {
                    eprintln!("  {} failed: {e:#}", $name);
                    rep.errors.push(format!("{}: {e:#}", $name));
                }
            }
        }};
    }
    scenario!("upload", upload::run(ctx, &mut st, &mut rep));
    scenario!("download", download::run(ctx, &mut st, &mut rep));
    scenario!("manifest", manifest::run(ctx, &mut st, &mut rep));
    scenario!("tags", tags::run(ctx, &mut st, &mut rep));
    scenario!("catalog", catalog::run(ctx, &mut st, &mut rep));
    scenario!("push", push::run(ctx, &mut st, &mut rep));
    if let Some(pid) = ctx.pid {
        match procmon::status_kib(pid, "VmHWM") {
            Some(kib) => {
                rep.add(
                    "server_peak_rss_mib",
                    "server peak RSS (VmHWM, whole run)",
                    kib as f64 / 1024.0,
                    "MiB",
                    crate::stats::Better::Lower,
                );
            }
            None => rep.notes.push(format!("could not read /proc/{pid}/status")),
        }
    }
    rep.seconds = started.elapsed().as_secs_f64();
    rep
}
