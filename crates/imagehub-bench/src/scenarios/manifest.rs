//! Manifest and blob-metadata request rates: manifest PUT (16 connections, distinct
//! manifests under distinct tags), manifest GET by tag at 16 and 64 connections with
//! p50/p99 latency, and blob HEAD at 64 connections.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, State};
use crate::http::Req;
use crate::load::{self, Outcome, Stop};
use crate::procmon::CpuMeter;
use crate::registry;
use crate::report::RunReport;
use crate::stats::Better;

fn rate_figures(
    rep: &mut RunReport,
    key: &str,
    label: &str,
    o: &Outcome,
    cpu_s: Option<f64>,
    latency: bool,
) {
    rep.add(&format!("{key}_rps"), label, o.rate(), "req/s", Better::Higher).failed(o.failed).detail(json!({
        "requests": o.ok, "seconds": o.elapsed.as_secs_f64(), "p50_ms": o.p_ms(50.0), "p90_ms": o.p_ms(90.0),
        "p99_ms": o.p_ms(99.0), "p999_ms": o.p_ms(99.9), "server_cpu_s": cpu_s, "error": o.first_error,
    }));
    if latency {
        rep.add(
            &format!("{key}_p50_ms"),
            &format!("{label}: p50"),
            o.p_ms(50.0),
            "ms",
            Better::Lower,
        );
        rep.add(
            &format!("{key}_p99_ms"),
            &format!("{label}: p99"),
            o.p_ms(99.0),
            "ms",
            Better::Lower,
        );
    }
    if let Some(c) = cpu_s.filter(|_| o.ok > 0) {
        rep.add(
            &format!("{key}_server_cpu_us"),
            &format!("{label}: server CPU per request"),
            c * 1e6 / o.ok as f64,
            "µs/req",
            Better::Lower,
        );
    }
}

pub async fn run(ctx: &Ctx, st: &mut State, rep: &mut RunReport) -> Result<()> {
    let image = ctx.push_small_image(&ctx.repo("manifest")).await?;
    st.image = Some(image.clone());
    let d = ctx.sizes.load;

    // PUT: every request a distinct manifest (unique annotation) under a new tag.
    let (repo, cfg, layer) = (image.repo.clone(), image.config.clone(), image.layer.clone());
    let cpu = CpuMeter::start(ctx.pid);
    let o = load::run(&ctx.target, 16, Stop::For(d), &[201], move |_, n| {
        let tag = format!("put-{n}");
        registry::put_manifest_req(&repo, &tag, registry::manifest_json(&cfg, &[&layer], &tag))
    })
    .await?;
    rate_figures(rep, "manifest_put_c16", "manifest PUT, 16 connections", &o, cpu.seconds(), true);

    for conns in [16usize, 64] {
        let repo = image.repo.clone();
        let cpu = CpuMeter::start(ctx.pid);
        let o = load::run(&ctx.target, conns, Stop::For(d), &[200], move |_, _| {
            registry::get_manifest_req(&repo, "latest")
        })
        .await?;
        rate_figures(
            rep,
            &format!("manifest_get_c{conns}"),
            &format!("manifest GET by tag, {conns} connections"),
            &o,
            cpu.seconds(),
            true,
        );
    }

    let path = format!("/v2/{}/blobs/{}", image.repo, image.layer.digest);
    let cpu = CpuMeter::start(ctx.pid);
    let o = load::run(&ctx.target, 64, Stop::For(d), &[200], move |_, _| Req::head(path.clone()))
        .await?;
    rate_figures(rep, "blob_head_c64", "blob HEAD, 64 connections", &o, cpu.seconds(), true);
    Ok(())
}
