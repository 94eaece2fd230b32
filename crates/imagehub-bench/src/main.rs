//! `imagehub-bench`: measures an OCI registry over plain HTTP (`run`), or starts imagehub
//! and CNCF distribution alternately and compares them (`compare`), or times the hub's
//! search over a large catalogue (`search`), or counts what indexing an image with a big
//! bottom layer reads (`extract`).

mod balancer;
mod build;
mod cli;
mod data;
mod extract;
mod http;
mod import;
mod load;
mod procmon;
mod registry;
mod report;
mod scale;
mod scenarios;
mod search;
mod servers;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use report::{Machine, RunReport};
use scenarios::{Ctx, Sizes};
use servers::{Kind, Server};

/// Benchmark an OCI registry (blob upload/download, manifests, listings, image push).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure the registry at URL (plain HTTP, no auth).
    Run {
        /// Registry base URL, e.g. http://127.0.0.1:5000
        url: String,
        /// Server process ID: adds its peak RSS and CPU time per phase.
        #[arg(long)]
        pid: Option<u32>,
        /// Write all results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Small sizes and short durations (smoke test).
        #[arg(long)]
        quick: bool,
        /// Run only these scenarios (comma-separated: upload, download, manifest, tags,
        /// catalog, push). `download` needs the blobs `upload` leaves behind.
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(scenarios::NAMES))]
        only: Vec<String>,
    },
    /// Start imagehub and distribution fresh per round, alternately, and compare medians.
    Compare {
        /// Rounds per server.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Small sizes and short durations (smoke test).
        #[arg(long)]
        quick: bool,
        /// Run only these scenarios (comma-separated: upload, download, manifest, tags,
        /// catalog, push). `download` needs the blobs `upload` leaves behind.
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(scenarios::NAMES))]
        only: Vec<String>,
        /// The imagehub binary.
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// CNCF distribution's binary (Debian package docker-registry).
        #[arg(long, default_value = "/usr/bin/docker-registry")]
        distribution_bin: PathBuf,
        /// Write all raw results and the summary as JSON to this file.
        #[arg(long, value_name = "FILE", default_value = "target/imagehub-bench/compare.json")]
        json: PathBuf,
    },
    /// Fill a hub with N repositories (README keywords and descriptions), index them,
    /// and time `GET /api/v1/search` by kind of query (issue 6: p99 < 20 ms, 50,000
    /// repositories, one core).
    Search(HubArgs),
    /// Fill a hub as `search` does, pull some of its images, and time the web UI's
    /// pages by kind: explore (sorted, filtered, deep pages), search, an organization,
    /// a repository, its tags, an image (issue 14: p99 < 50 ms, 50,000 repositories,
    /// one core; pages under 100 KB).
    Pages(HubArgs),
    /// Fill a local distribution with one big image, then time importing it into a fresh
    /// imagehub (`POST …/images/import`) against `skopeo copy` of it, alternately, and
    /// check an unchanged re-import (issue 15: at least 1.5x faster than skopeo, RSS
    /// growth < 64 MiB, one manifest HEAD to re-import).
    Import {
        /// The imagehub binary.
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// CNCF distribution's binary (Debian package docker-registry).
        #[arg(long, default_value = "/usr/bin/docker-registry")]
        distribution_bin: PathBuf,
        /// skopeo's binary.
        #[arg(long, default_value = "skopeo")]
        skopeo_bin: PathBuf,
        /// Size of the image, MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Layers it is split into.
        #[arg(long, default_value_t = 8)]
        layers: u64,
        /// Rounds (each times both, alternating which goes first).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Two imagehub replicas over PostgreSQL and S3 against one over SQLite and the
    /// filesystem, both behind one round-robin balancer, alternately: manifest rates and
    /// the push of 100 images (issue 18: at least 0.8x and 0.5x of one replica).
    Scale {
        /// The imagehub binary.
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// The s3s-fs binary (`scripts/test.sh` installs it there).
        #[arg(long, default_value = "target/test-tools/bin/s3s-fs")]
        s3s_bin: PathBuf,
        /// Rounds per setup.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Small sizes and short durations (smoke test).
        #[arg(long)]
        quick: bool,
        /// Write the results as JSON to this file.
        #[arg(long, value_name = "FILE", default_value = "target/imagehub-bench/scale.json")]
        json: PathBuf,
    },
    /// Time `imagehub build` of a recipe naming `images` images (`size_mib` in all)
    /// against `skopeo sync` of those images into a directory, alternately, and a
    /// rebuild with nothing changed (issue 17: no slower than sync, rebuild < 5%).
    Build {
        /// The imagehub binary (the server, the client and the builder).
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// skopeo's binary.
        #[arg(long, default_value = "skopeo")]
        skopeo_bin: PathBuf,
        /// Size of all the images, MiB.
        #[arg(long, default_value_t = 500)]
        size_mib: u64,
        /// How many images the recipe deploys.
        #[arg(long, default_value_t = 10)]
        images: u64,
        /// Rounds (each times both, alternating which goes first).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Write an OCI layout of one big image, then time `imagehub push` and `imagehub
    /// pull` of it against `skopeo copy` between the same places, alternately, with the
    /// clients' RSS (issue 16: at least 1.2x faster than skopeo, under 64 MiB).
    Cli {
        /// The imagehub binary (the server and the client).
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// skopeo's binary.
        #[arg(long, default_value = "skopeo")]
        skopeo_bin: PathBuf,
        /// Size of the image, MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Layers it is split into.
        #[arg(long, default_value_t = 8)]
        layers: u64,
        /// Rounds (each times both tools, alternating which goes first).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Start a fresh imagehub, push an image of a big bottom layer and a README top layer,
    /// run the indexing queue and count the server's reads (issue 6: extracting the
    /// README of a 1 GiB image reads only the top layer).
    Extract {
        /// The imagehub binary.
        #[arg(long, default_value = "target/release/imagehub")]
        imagehub_bin: PathBuf,
        /// Size of the file in the bottom layer, MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

/// A hub to fill and measure: the options of `search` and `pages`.
#[derive(clap::Args)]
struct HubArgs {
    /// A running hub (plain HTTP) to fill and measure; or use --start.
    #[arg(conflicts_with = "start", required_unless_present = "start")]
    url: Option<String>,
    /// Start a fresh imagehub (accounts on) on a free loopback port, pinned to
    /// --server-cpus with taskset; the bench pins itself to the other CPUs.
    #[arg(long)]
    start: bool,
    /// Repositories in the catalogue.
    #[arg(long, default_value_t = 50_000)]
    repos: u64,
    /// Requests per kind, sequentially and again over --conns connections.
    #[arg(long, default_value_t = 500)]
    queries: u64,
    /// Concurrent connections of the concurrent phase.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Parallel pushers while filling.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seed of the catalogue's names, keywords and descriptions.
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// The imagehub binary (with --start).
    #[arg(long, default_value = "target/release/imagehub")]
    imagehub_bin: PathBuf,
    /// CPUs (taskset list) the started server is pinned to; "none" to not pin.
    #[arg(long, default_value = "0")]
    server_cpus: String,
    /// Site admin of a running hub (pushes and runs the indexing queue).
    #[arg(long, default_value = "admin")]
    admin_user: String,
    /// Its password.
    #[arg(long, env = "IMAGEHUB_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// PID of a running hub: adds its RSS and CPU time per search.
    #[arg(long)]
    pid: Option<u32>,
    /// The running hub already holds this catalogue (same --repos and --seed): only measure.
    #[arg(long)]
    skip_fill: bool,
    /// Write all results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl HubArgs {
    fn options(self, pages: bool) -> search::Options {
        search::Options {
            pages,
            url: self.url,
            start: self.start,
            imagehub_bin: self.imagehub_bin,
            repos: self.repos,
            queries: self.queries,
            conns: self.conns,
            workers: self.workers,
            seed: self.seed,
            server_cpus: Some(self.server_cpus).filter(|c| !c.is_empty() && c != "none"),
            admin_user: self.admin_user,
            admin_password: self.admin_password,
            pid: self.pid,
            skip_fill: self.skip_fill,
            json: self.json,
        }
    }
}

fn run_id() -> String {
    let pool = data::Pool::new();
    hex::encode(pool.bytes(4))
}

async fn measure(url: &str, pid: Option<u32>, quick: bool, only: &[String]) -> Result<RunReport> {
    let ctx = Ctx {
        only: only.to_vec(),
        target: Arc::new(http::Target::parse(url)?),
        pid,
        sizes: Sizes::new(quick),
        run_id: run_id(),
        pool: data::Pool::new(),
    };
    Ok(scenarios::run_all(&ctx, url).await)
}

fn write_json(path: &PathBuf, value: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

async fn compare(
    rounds: usize,
    quick: bool,
    only: &[String],
    ih_bin: PathBuf,
    dist_bin: PathBuf,
    json_path: PathBuf,
) -> Result<()> {
    let machine = Machine::detect();
    let load_start = report::loadavg();
    println!("machine: {} | load at start {load_start}", machine.describe());
    let mut results: Vec<(Kind, usize, RunReport)> = Vec::new();
    for round in 0..rounds {
        // Alternate which server goes first: ih, dist | dist, ih | ...
        let order = if round % 2 == 0 {
            [Kind::Imagehub, Kind::Distribution]
        } else {
            [Kind::Distribution, Kind::Imagehub]
        };
        for kind in order {
            let bin = if kind == Kind::Imagehub { &ih_bin } else { &dist_bin };
            eprintln!(
                "== round {}/{rounds}: {} (load {})",
                round + 1,
                kind.name(),
                report::loadavg()
            );
            let server = Server::start(kind, bin).await?;
            let rep = measure(&server.url, Some(server.pid), quick, only).await?;
            if !rep.errors.is_empty() {
                eprintln!("{} log tail:\n{}", kind.name(), server.log_tail());
            }
            server.stop();
            eprint!("{}", report::run_table(&rep));
            results.push((kind, round, rep));
        }
    }
    let load_end = report::loadavg();
    let pick = |k: Kind| -> Vec<RunReport> {
        let mut v: Vec<(usize, RunReport)> =
            results.iter().filter(|r| r.0 == k).map(|r| (r.1, r.2.clone())).collect();
        v.sort_by_key(|r| r.0);
        v.into_iter().map(|r| r.1).collect()
    };
    let (ih, dist) = (pick(Kind::Imagehub), pick(Kind::Distribution));
    let rows = report::summarize(&ih, &dist);
    println!();
    println!("machine: {} | load start {load_start} | load end {load_end}", machine.describe());
    println!(
        "{rounds} rounds{}, medians per server; \"imagehub is\" = ratio of medians in the better direction\n",
        if quick { " (quick)" } else { "" }
    );
    print!("{}", report::compare_table(&rows));
    print!("{}", report::upload_vs_sha256(&rows, &machine));
    for (kind, round, rep) in &results {
        for e in &rep.errors {
            println!("ERROR {} round {}: {e}", kind.name(), round + 1);
        }
    }
    let runs: Vec<serde_json::Value> = results
        .iter()
        .map(|(k, r, rep)| json!({"server": k.name(), "round": r + 1, "report": rep}))
        .collect();
    write_json(
        &json_path,
        &json!({"machine": machine, "load_start": load_start, "load_end": load_end, "rounds": rounds, "quick": quick,
            "summary": rows, "runs": runs}),
    )?;
    println!("\nJSON: {}", json_path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run { url, pid, json: json_path, quick, only } => {
            let load_start = report::loadavg();
            let machine = Machine::detect();
            println!("machine: {}", machine.describe());
            let rep = measure(&url, pid, quick, &only).await?;
            print!("{}", report::run_table(&rep));
            if let Some(path) = json_path {
                write_json(
                    &path,
                    &json!({"machine": machine, "load_start": load_start, "load_end": report::loadavg(), "report": rep}),
                )?;
            }
        }
        Cmd::Compare { rounds, quick, only, imagehub_bin, distribution_bin, json } => {
            compare(rounds, quick, &only, imagehub_bin, distribution_bin, json).await?;
        }
        Cmd::Search(args) => search::run(args.options(false)).await?,
        Cmd::Pages(args) => search::run(args.options(true)).await?,
        Cmd::Import {
            imagehub_bin,
            distribution_bin,
            skopeo_bin,
            size_mib,
            layers,
            rounds,
            json,
        } => {
            import::run(import::Options {
                imagehub_bin,
                distribution_bin,
                skopeo_bin,
                size_mib,
                layers,
                rounds,
                json,
            })
            .await?;
        }
        Cmd::Cli { imagehub_bin, skopeo_bin, size_mib, layers, rounds, json } => {
            cli::run(cli::Options { imagehub_bin, skopeo_bin, size_mib, layers, rounds, json })
                .await?;
        }
        Cmd::Build { imagehub_bin, skopeo_bin, size_mib, images, rounds, json } => {
            build::run(build::Options { imagehub_bin, skopeo_bin, size_mib, images, rounds, json })
                .await?;
        }
        Cmd::Scale { imagehub_bin, s3s_bin, rounds, quick, json } => {
            scale::run(scale::Options { imagehub_bin, s3s_bin, rounds, quick, json }).await?;
        }
        Cmd::Extract { imagehub_bin, size_mib, json } => {
            extract::run(extract::Options { imagehub_bin, size_mib, json }).await?;
        }
    }
    Ok(())
}
