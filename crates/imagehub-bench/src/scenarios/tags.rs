//! Tag listing: fills one repository with N tags pointing at one manifest (16
//! connections), then times the complete `GET /v2/<repo>/tags/list`, following `Link`
//! headers when the registry paginates; median of several walks. A walk is timed to the
//! last byte of its last page; the pages are parsed and checked after the clock stops.

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use super::{Ctx, State};
use crate::http::Conn;
use crate::load::{self, Stop};
use crate::registry;
use crate::report::RunReport;
use crate::stats::{Better, median};

pub async fn run(ctx: &Ctx, _st: &mut State, rep: &mut RunReport) -> Result<()> {
    let n = ctx.sizes.tags;
    let image = ctx.push_small_image(&ctx.repo("tags")).await?;
    let (repo, body) = (image.repo.clone(), image.manifest.clone());
    // Tags t00000.. ; `latest` already exists, so the listing has n + 1 entries.
    let o = load::run(&ctx.target, 16, Stop::Count(n), &[201], move |_, i| {
        registry::put_manifest_req(&repo, &format!("t{i:05}"), body.clone())
    })
    .await?;
    rep.add(
        "tag_fill_rps",
        &format!("tag fill: {n} tags → one manifest, 16 connections"),
        o.rate(),
        "req/s",
        Better::Higher,
    )
    .failed(o.failed)
    .detail(
        json!({"seconds": o.elapsed.as_secs_f64(), "p99_ms": o.p_ms(99.0), "error": o.first_error}),
    );

    let mut conn = Conn::connect(&ctx.target).await?;
    let first = format!("/v2/{}/tags/list", image.repo);
    let (mut times, mut pages, mut count, mut sorted) = (Vec::new(), 0, 0, true);
    for _ in 0..ctx.sizes.list_reps {
        let t0 = Instant::now();
        let bodies = registry::walk(&mut conn, &first).await?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        let tags = registry::listing_entries(&bodies, "tags")?;
        pages = bodies.len();
        count = tags.len();
        sorted = tags.windows(2).all(|w| w[0] < w[1]);
    }
    let expected = n as usize + 1;
    rep.add(
        &format!("tags_list_{n}_ms"),
        &format!("tags/list, {n} tags, complete walk (median of {})", ctx.sizes.list_reps),
        median(&times).unwrap_or(f64::NAN),
        "ms",
        Better::Lower,
    )
    .failed(u64::from(count != expected))
    .detail(json!({"times_ms": times, "pages": pages, "tags": count, "sorted": sorted}));
    rep.notes.push(format!(
        "tags/list: {count} tags in {pages} page(s), {}sorted",
        if sorted { "" } else { "not " }
    ));
    if count != expected {
        bail!("tags/list returned {count} tags, expected {expected}");
    }
    Ok(())
}
