//! Catalog listing: creates N repositories with one small manifest each (blobs mounted
//! from an existing repository, 16 workers), then times the complete `GET /v2/_catalog`
//! walk following `Link` headers with the server's default page size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use super::{Ctx, State};
use crate::http::Conn;
use crate::registry;
use crate::report::RunReport;
use crate::stats::{Better, median};

pub async fn run(ctx: &Ctx, st: &mut State, rep: &mut RunReport) -> Result<()> {
    let n = ctx.sizes.repos;
    let image = match &st.image {
        Some(i) => i.clone(),
        None => ctx.push_small_image(&ctx.repo("manifest")).await?,
    };
    let image = Arc::new(image);
    let prefix = format!("bench-{}-cat/", ctx.run_id);
    let next = Arc::new(AtomicU64::new(0));
    let mounted = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (image, next, mounted, prefix) =
            (image.clone(), next.clone(), mounted.clone(), prefix.clone());
        let mut conn = Conn::connect(&ctx.target).await?;
        workers.push(tokio::spawn(async move {
            let mut failed = (0u64, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let repo = format!("{prefix}r{i:05}");
                let res: Result<()> = async {
                    for blob in [&image.config, &image.layer] {
                        if registry::mount_or_upload(&mut conn, &repo, &image.repo, blob).await? {
                            mounted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    registry::put_manifest(&mut conn, &repo, "latest", image.manifest.clone()).await
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
    for w in workers {
        let (f, e) = w.await?;
        failed += f;
        if err.is_none() {
            err = e;
        }
    }
    let fill_s = t0.elapsed().as_secs_f64();
    rep.add(
        "catalog_fill_repos_per_s",
        &format!("catalog fill: {n} repos (2 mounts + manifest), 16 workers"),
        n as f64 / fill_s,
        "repos/s",
        Better::Higher,
    )
    .failed(failed)
    .detail(json!({"seconds": fill_s, "mounted": mounted.load(Ordering::Relaxed), "error": err}));

    let mut conn = Conn::connect(&ctx.target).await?;
    let (mut times, mut pages, mut ours, mut total) = (Vec::new(), 0, 0, 0);
    for _ in 0..ctx.sizes.list_reps.min(3) {
        let t0 = Instant::now();
        let bodies = registry::walk(&mut conn, "/v2/_catalog").await?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        let repos = registry::listing_entries(&bodies, "repositories")?;
        pages = bodies.len();
        total = repos.len();
        ours = repos.iter().filter(|r| r.starts_with(&prefix)).count();
    }
    rep.add(
        &format!("catalog_{n}_ms"),
        &format!("_catalog, {n} repos, complete walk (default n)"),
        median(&times).unwrap_or(f64::NAN),
        "ms",
        Better::Lower,
    )
    .failed(u64::from(ours as u64 != n - failed))
    .detail(json!({"times_ms": times, "pages": pages, "ours": ours, "total": total}));
    rep.notes.push(format!("_catalog: {total} repositories in {pages} page(s), {ours} of ours"));
    if ours as u64 != n - failed {
        bail!("_catalog listed {ours} of our {} repositories", n - failed);
    }
    Ok(())
}
