//! Blob upload figures: many 1 MiB monolithic uploads, 64 MiB and 1 GiB monolithic
//! (POST + one PUT with the whole body), and a chunked upload (8 MiB PATCHes + PUT);
//! samples the server's VmRSS during the 1 GiB upload.

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use super::{Ctx, MIB, State, size_key, size_label, sync_disks};
use crate::data::Blob;
use crate::http::Conn;
use crate::procmon::RssSampler;
use crate::registry;
use crate::report::RunReport;
use crate::stats::{Better, median};

/// Per-blob upload seconds of the successful uploads, plus failures.
struct Timed {
    secs: Vec<f64>,
    failed: u64,
    first_error: Option<String>,
}

async fn upload_each(conn: &mut Conn, repo: &str, blobs: &[Blob], chunk: Option<u64>) -> Timed {
    let mut t = Timed { secs: Vec::new(), failed: 0, first_error: None };
    for blob in blobs {
        let t0 = Instant::now();
        let res = match chunk {
            None => registry::upload_monolithic(conn, repo, blob).await,
            Some(c) => registry::upload_chunked(conn, repo, blob, c).await,
        };
        match res {
            Ok(()) => t.secs.push(t0.elapsed().as_secs_f64()),
            Err(e) => {
                t.failed += 1;
                t.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    t
}

/// Median MB/s over repetitions of one size (fresh blob each, synced in between).
async fn big_uploads(
    ctx: &Ctx,
    conn: &mut Conn,
    repo: &str,
    size: u64,
    reps: usize,
    chunk: Option<u64>,
    sample_rss: bool,
) -> (Timed, Option<u64>, Option<Blob>) {
    let mut all = Timed { secs: Vec::new(), failed: 0, first_error: None };
    let mut rss_max: Option<u64> = None;
    let mut last_ok = None;
    for _ in 0..reps {
        let blob = ctx.pool.blob(size);
        sync_disks();
        let sampler = ctx.pid.filter(|_| sample_rss).map(RssSampler::start);
        let t = upload_each(conn, repo, std::slice::from_ref(&blob), chunk).await;
        if let Some(s) = sampler {
            let kib = s.finish();
            rss_max = Some(rss_max.unwrap_or(0).max(kib));
        }
        if t.failed == 0 {
            last_ok = Some(blob);
        }
        all.secs.extend(t.secs);
        all.failed += t.failed;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    (all, rss_max, last_ok)
}

fn mbps_figure(rep: &mut RunReport, key: &str, label: &str, size: u64, t: &Timed) {
    let rates: Vec<f64> = t.secs.iter().map(|s| size as f64 / 1e6 / s).collect();
    let value = median(&rates).unwrap_or(f64::NAN);
    rep.add(key, label, value, "MB/s", Better::Higher)
        .failed(t.failed)
        .detail(json!({"seconds": t.secs, "bytes": size, "error": t.first_error}));
}

pub async fn run(ctx: &Ctx, st: &mut State, rep: &mut RunReport) -> Result<()> {
    let s = &ctx.sizes;
    let repo = ctx.repo("upload");
    let mut conn = Conn::connect(&ctx.target).await?;

    // Many 1 MiB blobs, one after the other on one connection.
    let blobs: Vec<Blob> = (0..s.small_count).map(|_| ctx.pool.blob(MIB)).collect();
    sync_disks();
    let t0 = Instant::now();
    let t = upload_each(&mut conn, &repo, &blobs, None).await;
    let wall = t0.elapsed().as_secs_f64();
    let ok = t.secs.len();
    rep.add(
        "upload_1mib_mbps",
        &format!("upload 1 MiB monolithic ×{} (sequential)", s.small_count),
        ok as f64 * MIB as f64 / 1e6 / wall,
        "MB/s",
        Better::Higher,
    )
    .failed(t.failed)
    .detail(json!({"wall_s": wall, "error": t.first_error}));
    rep.add(
        "upload_1mib_ms_per_blob",
        "upload 1 MiB: time per blob (POST+PUT)",
        wall * 1000.0 / s.small_count as f64,
        "ms",
        Better::Lower,
    )
    .failed(t.failed);
    if t.failed == 0 {
        st.small_blob = blobs.last().cloned();
    }
    drop(blobs);

    // Mid-size monolithic.
    let (t, _, _) = big_uploads(ctx, &mut conn, &repo, s.mid, s.mid_reps, None, false).await;
    mbps_figure(
        rep,
        &format!("upload_{}_mbps", size_key(s.mid)),
        &format!("upload {} monolithic (median of {})", size_label(s.mid), s.mid_reps),
        s.mid,
        &t,
    );

    // Big monolithic, with the server's RSS sampled.
    let (t, rss, blob) = big_uploads(ctx, &mut conn, &repo, s.big, s.big_reps, None, true).await;
    mbps_figure(
        rep,
        &format!("upload_{}_mbps", size_key(s.big)),
        &format!("upload {} monolithic (median of {})", size_label(s.big), s.big_reps),
        s.big,
        &t,
    );
    if let Some(kib) = rss {
        rep.add(
            &format!("upload_{}_server_rss_max_mib", size_key(s.big)),
            &format!("server VmRSS max during {} upload", size_label(s.big)),
            kib as f64 / 1024.0,
            "MiB",
            Better::Lower,
        );
    }
    st.big_blob = blob;

    // Chunked.
    let (t, _, _) =
        big_uploads(ctx, &mut conn, &repo, s.chunked, s.chunked_reps, Some(s.chunk), false).await;
    mbps_figure(
        rep,
        &format!("upload_chunked_{}_mbps", size_key(s.chunked)),
        &format!(
            "upload {} chunked, {} MiB PATCHes (median of {})",
            size_label(s.chunked),
            s.chunk >> 20,
            s.chunked_reps
        ),
        s.chunked,
        &t,
    );
    if st.big_blob.is_none() {
        bail!("the {} upload failed; download will upload its own", size_label(s.big));
    }
    Ok(())
}
