//! Blob download figures: a 1 MiB blob fetched repeatedly on 1 and on 8 connections for a
//! fixed time, and the big blob as one stream; bodies are drained, never stored. With a
//! server PID, the server CPU spent per GB served.

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use super::{Ctx, MIB, State, size_key, size_label, sync_disks};
use crate::http::{Conn, Req};
use crate::load::{self, Stop};
use crate::procmon::CpuMeter;
use crate::registry;
use crate::report::RunReport;
use crate::stats::{Better, median};

pub async fn run(ctx: &Ctx, st: &mut State, rep: &mut RunReport) -> Result<()> {
    let s = &ctx.sizes;
    let repo = ctx.repo("upload");
    let mut conn = Conn::connect(&ctx.target).await?;
    let small = match &st.small_blob {
        Some(b) => b.clone(),
        None => {
            let b = ctx.pool.blob(MIB);
            registry::upload_monolithic(&mut conn, &repo, &b).await?;
            b
        }
    };
    let path = format!("/v2/{repo}/blobs/{}", small.digest);
    for conns in [1usize, 8] {
        let p = path.clone();
        let cpu = CpuMeter::start(ctx.pid);
        let o = load::run(&ctx.target, conns, Stop::For(s.load), &[200], move |_, _| {
            Req::get(p.clone())
        })
        .await?;
        let cpu_s = cpu.seconds();
        let expected = o.ok * small.size;
        let f = rep
            .add(
                &format!("download_1mib_c{conns}_mbps"),
                &format!(
                    "download 1 MiB blob, {conns} connection{}",
                    if conns > 1 { "s" } else { "" }
                ),
                o.mb_per_s(),
                "MB/s",
                Better::Higher,
            )
            .failed(o.failed);
        f.detail(json!({"requests": o.ok, "bytes": o.bytes, "seconds": o.elapsed.as_secs_f64(),
            "p50_ms": o.p_ms(50.0), "p99_ms": o.p_ms(99.0), "server_cpu_s": cpu_s, "error": o.first_error}));
        if o.bytes != expected {
            rep.notes.push(format!(
                "download 1 MiB c{conns}: got {} bytes for {} responses",
                o.bytes, o.ok
            ));
        }
        if let Some(c) = cpu_s.filter(|_| conns == 8 && o.bytes > 0) {
            rep.add(
                "download_1mib_c8_server_cpu_s_per_gb",
                "server CPU for 1 MiB ×8 download",
                c / (o.bytes as f64 / 1e9),
                "cpu-s/GB",
                Better::Lower,
            )
            .detail(json!({"server_cpu_s": c, "bytes": o.bytes}));
        }
    }

    let Some(big) = st.big_blob.clone() else {
        bail!("no big blob uploaded; skipping the {} download", size_label(s.big))
    };
    let path = format!("/v2/{repo}/blobs/{}", big.digest);
    let mut rates = Vec::new();
    let (mut failed, mut err, mut bytes) = (0u64, None, 0u64);
    sync_disks();
    let cpu = CpuMeter::start(ctx.pid);
    for _ in 0..s.big_reps.max(2) {
        let t0 = Instant::now();
        match conn.call_drain(Req::get(path.clone())).await {
            Ok(r) if r.status.as_u16() == 200 && r.len == big.size => {
                rates.push(r.len as f64 / 1e6 / t0.elapsed().as_secs_f64());
                bytes += r.len;
            }
            Ok(r) => {
                failed += 1;
                err.get_or_insert(format!("HTTP {} with {} bytes", r.status.as_u16(), r.len));
            }
            Err(e) => {
                failed += 1;
                err.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let cpu_s = cpu.seconds();
    let k = size_key(s.big);
    rep.add(
        &format!("download_{k}_mbps"),
        &format!("download {} blob, single stream", size_label(s.big)),
        median(&rates).unwrap_or(f64::NAN),
        "MB/s",
        Better::Higher,
    )
    .failed(failed)
    .detail(json!({"rates": rates, "error": err}));
    if let Some(c) = cpu_s.filter(|_| bytes > 0) {
        rep.add(
            &format!("download_{k}_server_cpu_s_per_gb"),
            &format!("server CPU for {} download", size_label(s.big)),
            c / (bytes as f64 / 1e9),
            "cpu-s/GB",
            Better::Lower,
        )
        .detail(json!({"server_cpu_s": c, "bytes": bytes}));
    }
    Ok(())
}
