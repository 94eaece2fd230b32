//! `imagehub-bench build`: issue 17's figures. A fresh imagehub holds `images` images
//! (`size_mib` in all, gzip layers); a recipe names them in `images/shim/`. Each round
//! times `imagehub build RECIPE --output oci:OUT` from an empty `registry/` against
//! `skopeo sync` of the same images into a directory (alternating which goes first),
//! then a rebuild with nothing changed. Medians and ratios are reported.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::cli::{timed, write_layout_with};
use crate::report::{Machine, loadavg};
use crate::servers::{Kind, Server};
use crate::stats::median;

/// The figures issue 17 names: a build no slower than `skopeo sync` of its images, a
/// rebuild under 5 % of that.
pub const MAX_BUILD_RATIO: f64 = 1.0;
pub const MAX_REBUILD_SHARE: f64 = 0.05;

pub struct Options {
    pub imagehub_bin: PathBuf,
    pub skopeo_bin: PathBuf,
    pub size_mib: u64,
    pub images: u64,
    pub rounds: usize,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub build_seconds: f64,
    pub build_rss_mib: f64,
    pub rebuild_seconds: f64,
    pub sync_seconds: f64,
}

pub async fn run(opts: Options) -> Result<()> {
    if opts.images == 0 || opts.size_mib < opts.images {
        bail!("--size-mib must be at least --images");
    }
    let machine = Machine::detect();
    println!("machine: {} | load at start {}", machine.describe(), loadavg());
    let work = tempfile::Builder::new().prefix("imagehub-bench-build-").tempdir_in("/tmp")?;
    let hub = Server::start(Kind::Imagehub, &opts.imagehub_bin).await?;
    let host = hub.url.trim_start_matches("http://").to_string();
    eprintln!("pushing {} images of {} MiB in all to {host}", opts.images, opts.size_mib);
    let per_image = (opts.size_mib << 20) / opts.images;
    let mut names = Vec::new();
    for i in 0..opts.images {
        let layout = work.path().join(format!("image-{i}"));
        write_layout_with(&layout, per_image, 2, 100 + i, true)?;
        let name = format!("bench/app{i}");
        let source = format!("oci:{}:v1", layout.display());
        timed(&opts.imagehub_bin, &["push", "-q", &source, &format!("{host}/{name}:v1")])?;
        std::fs::remove_dir_all(&layout)?;
        names.push(name);
    }
    let recipe = work.path().join("recipe");
    write_recipe(&recipe, &host, &names)?;
    let sync_file = work.path().join("sync.yaml");
    let mut yaml = format!("{host}:\n  tls-verify: false\n  images:\n");
    for name in &names {
        yaml.push_str(&format!("    {name}:\n      - v1\n"));
    }
    std::fs::write(&sync_file, yaml)?;

    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        let mut r = Round::default();
        let ours_first = round % 2 == 0;
        for step in 0..2 {
            let ours = (step == 0) == ours_first;
            eprintln!(
                "== round {}/{}: {} (load {})",
                round + 1,
                opts.rounds,
                if ours { "imagehub build" } else { "skopeo sync" },
                loadavg()
            );
            if ours {
                // From nothing: no registry/ folder, no layer cache.
                let _ = std::fs::remove_dir_all(recipe.join("registry"));
                let _ = std::fs::remove_dir_all(recipe.join(".imagehub"));
                let out = work.path().join(format!("out-{round}"));
                let output = format!("oci:{}:v1", out.display());
                let recipe_dir = recipe.display().to_string();
                (r.build_seconds, r.build_rss_mib) =
                    timed(&opts.imagehub_bin, &["build", "-q", &recipe_dir, "--output", &output])?;
                let again = work.path().join(format!("again-{round}"));
                let output = format!("oci:{}:v1", again.display());
                (r.rebuild_seconds, _) =
                    timed(&opts.imagehub_bin, &["build", "-q", &recipe_dir, "--output", &output])?;
                let _ = std::fs::remove_dir_all(&out);
                let _ = std::fs::remove_dir_all(&again);
            } else {
                let dest = work.path().join(format!("sync-{round}"));
                std::fs::create_dir_all(&dest)?;
                let sync_file = sync_file.display().to_string();
                let dest_dir = dest.display().to_string();
                let args = ["sync", "--src", "yaml", "--dest", "dir", &sync_file, &dest_dir];
                (r.sync_seconds, _) = timed(&opts.skopeo_bin, &args)?;
                let _ = std::fs::remove_dir_all(&dest);
            }
        }
        eprintln!(
            "   build {:.2} s ({:.1} MiB RSS), rebuild {:.3} s, skopeo sync {:.2} s",
            r.build_seconds, r.build_rss_mib, r.rebuild_seconds, r.sync_seconds
        );
        rounds.push(r);
    }
    hub.stop();
    let med = |f: fn(&Round) -> f64| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let (build, rebuild, sync) =
        (med(|r| r.build_seconds), med(|r| r.rebuild_seconds), med(|r| r.sync_seconds));
    let verdict = |ok: bool| if ok { "meets" } else { "misses" };
    println!(
        "\n{} images, {} MiB in all, {} rounds (medians):",
        opts.images, opts.size_mib, opts.rounds
    );
    println!(
        "  build: imagehub {build:.2} s, skopeo sync {sync:.2} s: {:.2} of sync's time ({} <= {MAX_BUILD_RATIO})",
        build / sync,
        verdict(build / sync <= MAX_BUILD_RATIO)
    );
    println!(
        "  rebuild with nothing changed: {rebuild:.3} s, {:.1}% of sync's time ({} < {:.0}%)",
        rebuild / sync * 100.0,
        verdict(rebuild / sync < MAX_REBUILD_SHARE),
        MAX_REBUILD_SHARE * 100.0
    );
    if let Some(path) = &opts.json {
        let value = json!({"machine": machine, "size_mib": opts.size_mib, "images": opts.images,
            "rounds": rounds, "build": build, "rebuild": rebuild, "skopeo_sync": sync});
        crate::write_json(path, &value)?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

/// A recipe that saves `names` (tag v1 on `host`) and copies its registry folder.
fn write_recipe(dir: &Path, host: &str, names: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir.join("images/shim"))?;
    std::fs::write(
        dir.join("Kubefile"),
        "FROM scratch\nCOPY registry registry\nCOPY images images\nCMD [\"echo ready\"]\n",
    )?;
    let list: String = names.iter().map(|n| format!("{host}/{n}:v1\n")).collect();
    std::fs::write(dir.join("images/shim/list"), list)?;
    Ok(())
}
