//! Server process measurements from /proc: CPU time (utime+stime), VmHWM, and a VmRSS
//! sampler thread that keeps the maximum seen while a phase runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Clock ticks per second for /proc/PID/stat (from `getconf CLK_TCK`, else 100).
fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// CPU seconds the whole machine has been busy so far (all CPUs: user, nice, system,
/// irq, softirq, steal of the `cpu` line of /proc/stat; idle and iowait not counted).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()?
        + v.get(1)?
        + v.get(2)?
        + v.get(5)?
        + v.get(6)?
        + v.get(7).copied().unwrap_or(0.0);
    Some(busy / clk_tck())
}

/// CPU time used by processes other than `pids` (and this one) over a phase: how much
/// the measurement shared the machine.
pub struct OtherLoad {
    pids: Vec<u32>,
    start: Option<(f64, f64)>,
}

impl OtherLoad {
    pub fn start(pids: &[u32]) -> Self {
        let pids: Vec<u32> = pids.iter().copied().chain([std::process::id()]).collect();
        let start = Self::sample(&pids);
        Self { pids, start }
    }

    fn sample(pids: &[u32]) -> Option<(f64, f64)> {
        let ours: Option<f64> = pids.iter().map(|&p| cpu_seconds(p)).sum();
        Some((machine_busy_seconds()?, ours?))
    }

    /// CPU seconds other processes used since `start`.
    pub fn seconds(&self) -> Option<f64> {
        let (busy0, ours0) = self.start?;
        let (busy1, ours1) = Self::sample(&self.pids)?;
        Some(((busy1 - busy0) - (ours1 - ours0)).max(0.0))
    }
}

/// A `Vm*:` line of /proc/PID/status, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Samples VmRSS every 20 ms on a thread until stopped; returns the maximum in KiB.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    m.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { stop, max, handle: Some(handle) }
    }

    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// CPU-time meter for an optional server PID over one phase.
pub struct CpuMeter {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        Self { pid, start: pid.and_then(cpu_seconds) }
    }
    /// Server CPU seconds since `start`, if a PID was given.
    pub fn seconds(&self) -> Option<f64> {
        Some(cpu_seconds(self.pid?)? - self.start?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(status_kib(pid, "VmRSS").unwrap_or(0) > 0);
        assert!(machine_busy_seconds().is_some_and(|s| s > 0.0));
        assert!(OtherLoad::start(&[]).seconds().is_some());
    }
}
