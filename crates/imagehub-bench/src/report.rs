//! Results: figures of one run, the machine description, the text tables of `run` and
//! `compare`, and the JSON written for both.

use serde::{Deserialize, Serialize};

use crate::stats::{Better, gain, median, ratio};

/// One measured number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: String,
    pub better: Better,
    /// Requests that failed during the measurement (never silently timed).
    pub failed: u64,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Everything one `run` measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunReport {
    pub url: String,
    pub quick: bool,
    pub server_pid: Option<u32>,
    pub seconds: f64,
    pub figures: Vec<Figure>,
    /// Scenarios that failed, with their error.
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

impl RunReport {
    pub fn add(
        &mut self,
        key: &str,
        label: &str,
        value: f64,
        unit: &str,
        better: Better,
    ) -> &mut Figure {
        self.figures.push(Figure {
            key: key.to_string(),
            label: label.to_string(),
            value,
            unit: unit.to_string(),
            better,
            failed: 0,
            detail: serde_json::Value::Null,
        });
        let last = self.figures.len() - 1;
        &mut self.figures[last]
    }

    pub fn get(&self, key: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.key == key)
    }
}

impl Figure {
    pub fn failed(&mut self, n: u64) -> &mut Self {
        self.failed = n;
        self
    }
    pub fn detail(&mut self, v: serde_json::Value) -> &mut Self {
        self.detail = v;
        self
    }
}

/// Formats a number with sensible precision and thousands separators.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The table printed by `run`.
pub fn run_table(r: &RunReport) -> String {
    let mut out = format!(
        "imagehub-bench run against {} ({:.0} s{})\n",
        r.url,
        r.seconds,
        if r.quick { ", quick" } else { "" }
    );
    out.push_str(&format!("{:<64} {:>12} {:<8} {:>7}\n", "figure", "value", "unit", "failed"));
    for f in &r.figures {
        out.push_str(&format!(
            "{:<64} {:>12} {:<8} {:>7}\n",
            f.label,
            fmt_num(f.value),
            f.unit,
            f.failed
        ));
    }
    for e in &r.errors {
        out.push_str(&format!("ERROR: {e}\n"));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// Machine facts printed with a comparison.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
    /// SHA-256 over 256 MiB on one core (the `sha2` crate the server uses), MB/s.
    pub sha256_mb_per_s: f64,
    /// Writing 256 MiB to a file in /tmp (where `compare` keeps both servers' data) and
    /// fsyncing it, MB/s: what an upload that is durable when acknowledged can reach.
    pub fsync_write_mb_per_s: f64,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_gib: mem_kib / (1 << 20) as f64,
            sha256_mb_per_s: sha256_speed(),
            fsync_write_mb_per_s: fsync_write_speed().unwrap_or(f64::NAN),
        }
    }

    /// One line for the top of a table.
    pub fn describe(&self) -> String {
        format!(
            "{} | {} cores | kernel {} | {:.1} GiB RAM | SHA-256 one core {:.0} MB/s | write+fsync /tmp {:.0} MB/s",
            self.cpu_model,
            self.cores,
            self.kernel,
            self.memory_gib,
            self.sha256_mb_per_s,
            self.fsync_write_mb_per_s
        )
    }
}

const REFERENCE_BYTES: usize = 256 << 20;

fn sha256_speed() -> f64 {
    use sha2::Digest as _;
    let buf = vec![0x5au8; 1 << 20];
    let mut h = sha2::Sha256::new();
    let t0 = std::time::Instant::now();
    for _ in 0..REFERENCE_BYTES >> 20 {
        h.update(&buf);
    }
    std::hint::black_box(h.finalize());
    REFERENCE_BYTES as f64 / 1e6 / t0.elapsed().as_secs_f64()
}

fn fsync_write_speed() -> std::io::Result<f64> {
    use std::io::Write as _;
    let mut file = tempfile::tempfile_in("/tmp")?;
    let buf = vec![0xa5u8; 1 << 20];
    let t0 = std::time::Instant::now();
    for _ in 0..REFERENCE_BYTES >> 20 {
        file.write_all(&buf)?;
    }
    file.sync_all()?;
    Ok(REFERENCE_BYTES as f64 / 1e6 / t0.elapsed().as_secs_f64())
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// imagehub's monolithic upload medians as a share of the machine's one-core SHA-256
/// speed and of its write+fsync speed (the two ceilings of a durable upload).
pub fn upload_vs_sha256(rows: &[SummaryRow], machine: &Machine) -> String {
    let mut out = String::new();
    for row in rows.iter().filter(|r| {
        r.key.starts_with("upload_") && r.key.ends_with("ib_mbps") && r.key != "upload_1mib_mbps"
    }) {
        if let Some(v) = row.imagehub_median.filter(|_| !row.key.contains("chunked")) {
            out.push_str(&format!(
                "{}: imagehub {:.0} MB/s = {:.0} % of one core's SHA-256, {:.0} % of write+fsync\n",
                row.label,
                v,
                100.0 * v / machine.sha256_mb_per_s,
                100.0 * v / machine.fsync_write_mb_per_s
            ));
        }
    }
    out
}

/// One row of the comparison summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    pub key: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub imagehub_median: Option<f64>,
    pub distribution_median: Option<f64>,
    /// imagehub median / distribution median.
    pub ratio: Option<f64>,
    /// Median over rounds of the per-round ratio imagehub / distribution.
    pub median_round_ratio: Option<f64>,
    /// Times better (> 1 = imagehub better, whichever direction "better" is).
    pub gain: Option<f64>,
    pub imagehub_values: Vec<f64>,
    pub distribution_values: Vec<f64>,
    pub failed: u64,
}

/// Builds the summary from per-round reports of both servers (same figure keys).
pub fn summarize(imagehub: &[RunReport], distribution: &[RunReport]) -> Vec<SummaryRow> {
    let mut keys: Vec<&Figure> = Vec::new();
    for r in imagehub.iter().chain(distribution) {
        for f in &r.figures {
            if !keys.iter().any(|k| k.key == f.key) {
                keys.push(f);
            }
        }
    }
    keys.iter()
        .map(|k| {
            let values = |rs: &[RunReport]| -> Vec<f64> {
                rs.iter().filter_map(|r| r.get(&k.key)).map(|f| f.value).collect()
            };
            let failed: u64 = imagehub
                .iter()
                .chain(distribution)
                .filter_map(|r| r.get(&k.key))
                .map(|f| f.failed)
                .sum();
            let (iv, dv) = (values(imagehub), values(distribution));
            let (im, dm) = (median(&iv), median(&dv));
            let per_round: Vec<f64> = imagehub
                .iter()
                .zip(distribution)
                .filter_map(|(a, b)| ratio(a.get(&k.key)?.value, b.get(&k.key)?.value))
                .collect();
            SummaryRow {
                key: k.key.clone(),
                label: k.label.clone(),
                unit: k.unit.clone(),
                better: k.better,
                imagehub_median: im,
                distribution_median: dm,
                ratio: im.zip(dm).and_then(|(a, b)| ratio(a, b)),
                median_round_ratio: median(&per_round),
                gain: im.zip(dm).and_then(|(a, b)| gain(a, b, k.better)),
                imagehub_values: iv,
                distribution_values: dv,
                failed,
            }
        })
        .collect()
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), fmt_num)
}

/// The comparison table as Markdown (printed and pasted into BENCHMARKS.md).
pub fn compare_table(rows: &[SummaryRow]) -> String {
    let mut out = String::from(
        "| figure | unit | better | imagehub | distribution | ratio ih/dist | imagehub is |\n|---|---|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        let verdict = match r.gain {
            Some(g) if g >= 1.0 => format!("{:.2}× better", g),
            Some(g) => format!("{:.2}× worse", 1.0 / g),
            None => "-".to_string(),
        };
        let failed =
            if r.failed > 0 { format!(" ({} failed requests)", r.failed) } else { String::new() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {}{} |\n",
            r.label,
            r.unit,
            match r.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            },
            opt(r.imagehub_median),
            opt(r.distribution_median),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.2}")),
            verdict,
            failed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(v: f64) -> RunReport {
        let mut r = RunReport::default();
        r.add("x", "x", v, "ms", Better::Lower);
        r
    }

    #[test]
    fn summary_medians_and_gain() {
        let ih = [report(1.0), report(2.0), report(3.0)];
        let di = [report(10.0), report(20.0), report(30.0)];
        let rows = summarize(&ih, &di);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].imagehub_median, Some(2.0));
        assert_eq!(rows[0].distribution_median, Some(20.0));
        assert_eq!(rows[0].ratio, Some(0.1));
        assert_eq!(rows[0].gain, Some(10.0));
        assert_eq!(rows[0].median_round_ratio, Some(0.1));
    }

    #[test]
    fn number_format() {
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.5), "0.500");
        assert_eq!(fmt_num(-1234.0), "-1,234");
    }
}
