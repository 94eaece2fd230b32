//! Timing GETs (`/api/v1/search`, or the web UI's pages): each kind of request is first
//! checked once (for a search: hits, top result), then sent `reps` times on one
//! connection, one request after the other, and `reps` times over `conns` concurrent
//! connections (closed loop); latencies are per request, client side, from the request
//! to the last byte of the answer.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::corpus::QueryKind;
use crate::http::{Conn, Req, Target};
use crate::load::{self, Outcome, Stop};
use crate::procmon::{CpuMeter, OtherLoad};

/// Results per page, as the hub's search page asks.
pub const PER_PAGE: u32 = 20;

/// Latency summary of one phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Lat {
    pub requests: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub req_per_s: f64,
    /// Server CPU (user + system) per request, µs, when the PID is known.
    pub server_cpu_us_per_req: Option<f64>,
    /// CPU other processes (neither the server nor the bench) used during the phase, in
    /// cores (CPU-seconds per second): the machine was shared when this is not ~0.
    pub other_cores: Option<f64>,
    pub first_error: Option<String>,
}

impl Lat {
    /// Summarises an outcome (sorted latencies, µs); `cpu_s`: server CPU seconds,
    /// `other_s`: other processes' CPU seconds during it.
    pub fn of(o: &Outcome, cpu_s: Option<f64>, other_s: Option<f64>) -> Self {
        let n = o.lat_us.len().max(1) as f64;
        Self {
            requests: o.ok,
            failed: o.failed,
            p50_ms: o.p_ms(50.0),
            p95_ms: o.p_ms(95.0),
            p99_ms: o.p_ms(99.0),
            max_ms: o.lat_us.last().map_or(f64::NAN, |&us| us as f64 / 1000.0),
            mean_ms: o.lat_us.iter().sum::<u64>() as f64 / n / 1000.0,
            req_per_s: o.rate(),
            server_cpu_us_per_req: cpu_s.map(|s| s * 1e6 / o.ok.max(1) as f64),
            other_cores: other_s.map(|s| s / o.elapsed.as_secs_f64().max(1e-9)),
            first_error: o.first_error.clone(),
        }
    }
}

/// What one query returned when checked.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub query: String,
    pub total: u64,
    pub top: Vec<String>,
    /// Whether the top result has keywords and a description (i.e. it was indexed).
    pub indexed: bool,
}

/// One kind's results.
#[derive(Debug, Clone, Serialize)]
pub struct KindResult {
    pub key: &'static str,
    pub label: &'static str,
    pub checked: Vec<Checked>,
    pub sequential: Lat,
    pub concurrent: Lat,
}

impl KindResult {
    /// Median `total` over the kind's queries.
    pub fn median_hits(&self) -> u64 {
        let mut t: Vec<u64> = self.checked.iter().map(|c| c.total).collect();
        t.sort_unstable();
        t.get(t.len() / 2).copied().unwrap_or(0)
    }
}

/// `q` percent-encoded for a query string (everything but unreserved characters).
pub fn encode(q: &str) -> String {
    let mut out = String::with_capacity(q.len() * 3);
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request path of a search.
pub fn path(q: &str) -> String {
    format!("/api/v1/search?q={}&per_page={PER_PAGE}", encode(q))
}

/// Sends each query once (untimed, anonymous) and records what it found.
pub async fn check(target: &Arc<Target>, kind: &QueryKind) -> Result<Vec<Checked>> {
    let mut conn = Conn::connect(target).await?;
    let mut out = Vec::new();
    for q in &kind.queries {
        let r = conn.call(Req::get(path(q))).await?;
        r.expect(&[200], &format!("search {q:?}"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).with_context(|| format!("search {q:?}: not JSON"))?;
        let results = v["results"].as_array().cloned().unwrap_or_default();
        let top =
            results.iter().take(3).filter_map(|r| r["name"].as_str().map(str::to_string)).collect();
        let indexed = results.first().is_some_and(|r| {
            r["keywords"].as_array().is_some_and(|k| !k.is_empty())
                && r["description"].as_str().is_some_and(|d| !d.is_empty())
        });
        out.push(Checked {
            query: q.clone(),
            total: v["total"].as_u64().unwrap_or(0),
            top,
            indexed,
        });
    }
    Ok(out)
}

/// The search requests of `kind`.
pub fn search_paths(kind: &QueryKind) -> Vec<String> {
    kind.queries.iter().map(|q| path(q)).collect()
}

/// Times `reps` GETs of `paths` (rotated; a kind `key` of requests) over `conns`
/// connections.
pub async fn time(
    target: &Arc<Target>,
    key: &str,
    paths: Vec<String>,
    conns: usize,
    reps: u64,
    pid: Option<u32>,
) -> Result<(Lat, Outcome)> {
    if paths.is_empty() {
        bail!("no requests of kind {key}");
    }
    let paths = Arc::new(paths);
    let cpu = CpuMeter::start(pid);
    let other = OtherLoad::start(&pid.into_iter().collect::<Vec<_>>());
    let o = load::run(target, conns, Stop::Count(reps), &[200], move |_, seq| {
        Req::get(paths[(seq % paths.len() as u64) as usize].clone())
    })
    .await?;
    let lat = Lat::of(&o, cpu.seconds(), other.seconds());
    Ok((lat, o))
}

/// One summary of phases that ran one after another: their outcomes and summaries.
pub fn overall(parts: Vec<Outcome>, lats: &[Lat]) -> Lat {
    let cpu: Option<f64> =
        lats.iter().map(|l| l.server_cpu_us_per_req.map(|us| us * l.requests as f64 / 1e6)).sum();
    let secs: Vec<f64> = parts.iter().map(|o| o.elapsed.as_secs_f64()).collect();
    let other: Option<f64> =
        lats.iter().zip(&secs).map(|(l, s)| l.other_cores.map(|c| c * s)).sum();
    Lat::of(&merge(parts), cpu, other)
}

/// Merges outcomes (latencies re-sorted; elapsed summed, as the phases ran one after another).
pub fn merge(parts: Vec<Outcome>) -> Outcome {
    let mut all = Outcome::default();
    for o in parts {
        all.elapsed += o.elapsed;
        all.absorb(o);
    }
    all.lat_us.sort_unstable();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_queries() {
        assert_eq!(encode("bench/redis-cache-12"), "bench%2Fredis-cache-12");
        assert_eq!(encode("fast db"), "fast%20db");
        assert_eq!(path("a b"), "/api/v1/search?q=a%20b&per_page=20");
    }
}
