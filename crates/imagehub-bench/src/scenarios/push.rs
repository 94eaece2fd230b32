//! Image push: N small images (config + 2 layers of 256 KiB, all unique, + manifest),
//! each blob HEAD-checked then uploaded, pushed by 16 workers; wall-clock seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use serde_json::json;

use super::{Ctx, State};
use crate::data::Blob;
use crate::http::Conn;
use crate::registry;
use crate::report::RunReport;
use crate::stats::Better;

struct PushImage {
    config: Blob,
    layers: [Blob; 2],
    manifest: Bytes,
}

pub async fn run(ctx: &Ctx, _st: &mut State, rep: &mut RunReport) -> Result<()> {
    let n = ctx.sizes.images as usize;
    let workers = ctx.sizes.image_workers;
    let repo = Arc::new(ctx.repo("push"));
    let images: Arc<Vec<PushImage>> = Arc::new(
        (0..n)
            .map(|i| {
                let config = ctx.config_blob(&format!("img-{i}"));
                let layers = [ctx.pool.blob(256 << 10), ctx.pool.blob(256 << 10)];
                let manifest = registry::manifest_json(
                    &config,
                    &[&layers[0], &layers[1]],
                    &format!("img-{i}"),
                );
                PushImage { config, layers, manifest }
            })
            .collect(),
    );
    let mut conns = Vec::new();
    for _ in 0..workers {
        conns.push(Conn::connect(&ctx.target).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (images, next, repo) = (images.clone(), next.clone(), repo.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = (0u64, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(img) = images.get(i) else { break };
                let res: Result<()> = async {
                    for blob in [&img.config, &img.layers[0], &img.layers[1]] {
                        registry::push_blob(&mut conn, &repo, blob).await?;
                    }
                    registry::put_manifest(&mut conn, &repo, &format!("v{i}"), img.manifest.clone())
                        .await
                }
                .await;
                if let Err(e) = res {
                    failed.0 += 1;
                    failed.1.get_or_insert(format!("{e:#}"));
                }
            }
            failed
        }));
    }
    let (mut failed, mut err) = (0u64, None);
    for t in tasks {
        let (f, e) = t.await?;
        failed += f;
        if err.is_none() {
            err = e;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    rep.add(
        &format!("push_{n}_images_s"),
        &format!("push {n} small images, {workers} workers (wall)"),
        secs,
        "s",
        Better::Lower,
    )
    .failed(failed)
    .detail(json!({"images": n, "error": err}));
    Ok(())
}
