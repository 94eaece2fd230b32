//! Closed-loop load generator: N tasks, each with its own keep-alive connection, sending
//! requests for a fixed duration or a fixed total count; records per-request latency and
//! checks every response status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::http::{Conn, Req, Target};
use crate::stats::percentile_sorted;

/// When a load phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Keep sending until this much time has passed.
    For(Duration),
    /// Send exactly this many requests in total.
    Count(u64),
}

/// Result of a load phase.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of successful requests, microseconds, sorted.
    pub lat_us: Vec<u64>,
    /// Response body bytes received.
    pub bytes: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    /// Adds another outcome's counts, bytes and latencies (unsorted; the caller sorts
    /// once at the end) and keeps the first error seen. Elapsed time is the caller's.
    pub fn absorb(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.lat_us.extend(other.lat_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn p_ms(&self, p: f64) -> f64 {
        percentile_sorted(&self.lat_us, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
    }
}

/// Runs `conns` tasks; task `t` sends `make(t, seq)` (seq counts globally from 0) and
/// expects a status in `expect`. Connections are opened before the clock starts.
pub async fn run<F>(
    target: &Arc<Target>,
    conns: usize,
    stop: Stop,
    expect: &'static [u16],
    make: F,
) -> Result<Outcome>
where
    F: Fn(usize, u64) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let seq = Arc::new(AtomicU64::new(0));
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::connect(target).await?);
    }
    let start = Instant::now();
    let deadline = match stop {
        Stop::For(d) => Some(start + d),
        Stop::Count(_) => None,
    };
    let limit = match stop {
        Stop::Count(n) => n,
        Stop::For(_) => u64::MAX,
    };
    let mut tasks = Vec::with_capacity(conns);
    for (t, mut conn) in opened.into_iter().enumerate() {
        let (make, seq) = (make.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let req = make(t, n);
                let t0 = Instant::now();
                match conn.call_drain(req).await {
                    Ok(r) if expect.contains(&r.status.as_u16()) => {
                        out.ok += 1;
                        out.bytes += r.len;
                        out.lat_us.push(t0.elapsed().as_micros() as u64);
                    }
                    Ok(r) => {
                        out.failed += 1;
                        out.first_error.get_or_insert_with(|| {
                            format!(
                                "HTTP {}: {}",
                                r.status.as_u16(),
                                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                            )
                        });
                    }
                    Err(e) => {
                        out.failed += 1;
                        out.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            out
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.absorb(task.await?);
    }
    total.elapsed = start.elapsed();
    total.lat_us.sort_unstable();
    Ok(total)
}
