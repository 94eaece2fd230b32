//! `imagehub-bench pages`: issue 14's figure, "explore, search, repository and image
//! pages render in under 50 ms at p99 with 50,000 repositories on one core, and weigh
//! under 100 KB".
//!
//! The hub is filled as for `search`; then every tenth repository is pulled one to five
//! times, so that "most pulled" has an order to find. Each kind of page is fetched once
//! (it must answer 200; its size is recorded), then timed as searches are: sequentially,
//! then over concurrent connections, by an anonymous visitor (the catalogue is public).

use std::sync::Arc;

use anyhow::{Result, bail};
use http::header::{ACCEPT, AUTHORIZATION};
use serde::Serialize;
use serde_json::json;

use super::corpus::Corpus;
use super::fill::{self, Admin};
use super::measure::{self, Lat, encode};
use super::{Hub, Options, TableRow, latency_table};
use crate::http::{Conn, Req, Target};
use crate::registry::MANIFEST_ACCEPT;
use crate::report::{self, Machine, fmt_num};

/// The figures issue 14 names.
pub const TARGET_P99_MS: f64 = 50.0;
pub const MAX_PAGE_BYTES: u64 = 100_000;

/// Cards on one page of explore, as the hub shows them.
const CARDS_PER_PAGE: u64 = 24;

/// A kind of page and the addresses of that kind.
struct PageKind {
    key: &'static str,
    label: &'static str,
    paths: Vec<String>,
}

/// One kind's results.
#[derive(Debug, Clone, Serialize)]
pub struct PageResult {
    pub key: &'static str,
    pub label: &'static str,
    pub example: String,
    /// The largest page of the kind, bytes.
    pub max_bytes: u64,
    pub sequential: Lat,
    pub concurrent: Lat,
}

/// The timed mix of pages.
fn kinds(corpus: &Corpus) -> Vec<PageKind> {
    let n = corpus.n;
    let spread = |count: u64| -> Vec<String> {
        (0..count).map(|k| corpus.name((n * k / count + 7).min(n - 1))).collect()
    };
    let last_page = n.div_ceil(CARDS_PER_PAGE);
    let queries = corpus.queries();
    let words = |key: &str| -> Vec<String> {
        queries.iter().find(|k| k.key == key).map(|k| k.queries.clone()).unwrap_or_default()
    };
    let mut searches: Vec<String> = Vec::new();
    for key in ["exact", "keyword", "common", "multi"] {
        searches.extend(words(key).into_iter().take(3));
    }
    let repositories = spread(10);
    let each = |format: fn(&str) -> String| repositories.iter().map(|r| format(r)).collect();
    vec![
        PageKind { key: "explore", label: "explore, first page", paths: vec!["/".into()] },
        PageKind {
            key: "deep",
            label: "explore, deep pages",
            paths: vec![format!("/?page={}", last_page / 2), format!("/?page={last_page}")],
        },
        PageKind { key: "pulls", label: "most pulled", paths: vec!["/?sort=pulls".into()] },
        PageKind { key: "name", label: "by name", paths: vec!["/?sort=name".into()] },
        PageKind {
            key: "keyword",
            label: "keyword filter",
            paths: words("keyword").iter().map(|k| format!("/?keyword={}", encode(k))).collect(),
        },
        PageKind {
            key: "search",
            label: "search",
            paths: searches.iter().map(|q| format!("/?q={}", encode(q))).collect(),
        },
        PageKind {
            key: "org",
            label: "organization",
            paths: vec!["/o/bench".into(), format!("/o/bench?page={}", last_page / 2)],
        },
        PageKind { key: "repository", label: "repository", paths: each(|r| format!("/r/{r}")) },
        PageKind { key: "tags", label: "tags", paths: each(|r| format!("/r/{r}?tab=tags")) },
        PageKind { key: "image", label: "image", paths: each(|r| format!("/r/{r}/-/latest")) },
    ]
}

/// Pulls every tenth repository one to five times; returns the pulls made.
async fn pull_some(target: &Arc<Target>, admin: &Admin, corpus: &Corpus) -> Result<u64> {
    let puller = fill::access_token(target, admin, "imagehub-bench pulls").await?;
    let pulled: Vec<(String, u64)> =
        (0..corpus.n).step_by(10).map(|i| (corpus.name(i), i / 10 % 5 + 1)).collect();
    let mut done = 0;
    let mut conn = Conn::connect(target).await?;
    for batch in pulled.chunks(32) {
        let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
        let bearer = fill::token(&mut conn, &puller, &names).await?;
        for (name, times) in batch {
            for _ in 0..*times {
                let request = Req::get(format!("/v2/{name}/manifests/latest"))
                    .header(AUTHORIZATION, &format!("Bearer {bearer}"))
                    .header(ACCEPT, MANIFEST_ACCEPT);
                conn.call(request).await?.expect(&[200], &format!("pull {name}"))?;
                done += 1;
            }
        }
    }
    Ok(done)
}

/// Fetches each page of `kind` once; the largest one's size.
async fn check(target: &Arc<Target>, kind: &PageKind) -> Result<u64> {
    let mut conn = Conn::connect(target).await?;
    let mut largest = 0;
    for path in &kind.paths {
        let reply = conn.call(Req::get(path.clone())).await?;
        reply.expect(&[200], &format!("GET {path}"))?;
        if !reply.body.starts_with(b"<!doctype html>") {
            bail!("GET {path}: not a page");
        }
        largest = largest.max(reply.body.len() as u64);
    }
    Ok(largest)
}

/// Fills (as `search` does), pulls, then checks and times every kind of page.
pub async fn run(opts: &Options, hub: &Hub, machine: &Machine, load_start: &str) -> Result<()> {
    let target = Arc::new(Target::parse(&hub.url)?);
    let corpus = Arc::new(Corpus::new(opts.repos, opts.seed));
    let fill = super::fill_catalogue(opts, &target, &corpus, &hub.admin).await?;
    let pulls = match fill {
        Some(_) => {
            eprintln!("pulling every tenth repository");
            Some(pull_some(&target, &hub.admin, &corpus).await?)
        }
        None => None,
    };
    crate::scenarios::sync_disks();

    let kinds = kinds(&corpus);
    let mut sizes = Vec::new();
    for kind in &kinds {
        sizes.push(check(&target, kind).await?);
        // Warm-up (untimed).
        let reps = kind.paths.len() as u64 * 3;
        measure::time(&target, kind.key, kind.paths.clone(), 1, reps, None).await?;
    }
    let (mut seq, mut seq_all, mut conc, mut conc_all) = (vec![], vec![], vec![], vec![]);
    for kind in &kinds {
        eprintln!("  timing {} sequentially", kind.key);
        let paths = kind.paths.clone();
        let (lat, outcome) =
            measure::time(&target, kind.key, paths, 1, opts.queries, hub.pid).await?;
        seq.push(lat);
        seq_all.push(outcome);
    }
    for kind in &kinds {
        eprintln!("  timing {} over {} connections", kind.key, opts.conns);
        let paths = kind.paths.clone();
        let timed = measure::time(&target, kind.key, paths, opts.conns, opts.queries, hub.pid);
        let (lat, outcome) = timed.await?;
        conc.push(lat);
        conc_all.push(outcome);
    }
    let (seq_overall, conc_overall) =
        (measure::overall(seq_all, &seq), measure::overall(conc_all, &conc));
    let results: Vec<PageResult> = kinds
        .iter()
        .zip(sizes)
        .zip(seq.into_iter().zip(conc))
        .map(|((kind, max_bytes), (sequential, concurrent))| PageResult {
            key: kind.key,
            label: kind.label,
            example: kind.paths[0].clone(),
            max_bytes,
            sequential,
            concurrent,
        })
        .collect();

    let load_end = report::loadavg();
    println!(
        "\npages, {} repositories (seed {}), {} pulls, server on CPU {} | load start {load_start} | load end {load_end}",
        fmt_num(opts.repos as f64),
        opts.seed,
        pulls.map_or("(not counted)".to_string(), |p| fmt_num(p as f64)),
        hub.server_cpus.as_deref().unwrap_or("(not pinned)")
    );
    println!("{} requests per kind and mode\n", opts.queries);
    print!("{}", table(&results, &seq_overall, &conc_overall, opts.conns));
    let heaviest = results.iter().map(|r| r.max_bytes).max().unwrap_or(0);
    let verdict = |meets: bool| if meets { "meets" } else { "misses" };
    println!(
        "\noverall p99: {} ms sequential ({} {TARGET_P99_MS} ms), {} ms with {} connections; heaviest page {} KB ({} {} KB)",
        fmt_num(seq_overall.p99_ms),
        verdict(seq_overall.p99_ms < TARGET_P99_MS),
        fmt_num(conc_overall.p99_ms),
        opts.conns,
        fmt_num(heaviest as f64 / 1000.0),
        verdict(heaviest < MAX_PAGE_BYTES),
        MAX_PAGE_BYTES / 1000,
    );
    if let Some(path) = &opts.json {
        crate::write_json(
            path,
            &json!({
                "machine": machine, "load_start": load_start, "load_end": load_end,
                "repos": opts.repos, "seed": opts.seed, "pulls": pulls, "fill": fill,
                "requests_per_kind": opts.queries, "conns": opts.conns,
                "server_cpus": hub.server_cpus, "client_cpus": hub.client_cpus,
                "target_p99_ms": TARGET_P99_MS, "max_page_bytes": MAX_PAGE_BYTES,
                "kinds": results, "overall": {"sequential": seq_overall, "concurrent": conc_overall},
            }),
        )?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

fn table(results: &[PageResult], seq: &Lat, conc: &Lat, conns: usize) -> String {
    let rows: Vec<TableRow<'_>> = results
        .iter()
        .map(|r| TableRow {
            label: r.label,
            example: &r.example,
            figure: fmt_num(r.max_bytes as f64 / 1000.0),
            sequential: &r.sequential,
            concurrent: &r.concurrent,
        })
        .collect();
    let note = "KB = the kind's largest page";
    latency_table(["page", "example", "KB"], &rows, (seq, conc), conns, note)
}
