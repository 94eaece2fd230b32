//! `imagehub-bench search`: issue 6's figure, "search answers in under 20 ms at p99 with
//! 50,000 repositories on one core".
//!
//! With `--start`, a fresh imagehub (accounts on, site admin password set) is started on
//! a free loopback port, pinned with `taskset` to one CPU, and the bench pins itself to
//! the others. The hub is filled with a deterministic catalogue ([`corpus`]) by parallel
//! pushers ([`fill`]), the indexing queue is run to the end, then each kind of query is
//! timed sequentially and over concurrent connections ([`measure`]). Printed: fill time,
//! p50/p95/p99/max per kind and overall, server CPU per search, RSS and data-dir size.

pub mod corpus;
pub mod fill;
pub mod measure;
pub mod pages;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::http::Target;
use crate::procmon;
use crate::report::{self, Machine, fmt_num};
use crate::servers::Server;
use corpus::Corpus;
use fill::{Admin, FillReport};
use measure::{KindResult, Lat};

/// The figure issue 6 names.
pub const TARGET_P99_MS: f64 = 20.0;

/// Everything the `search` and `pages` subcommands take.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time the web UI's pages (`pages`) rather than the search API (`search`).
    pub pages: bool,
    /// An already running hub (plain HTTP), instead of `start`.
    pub url: Option<String>,
    /// Start a fresh imagehub from `imagehub_bin`.
    pub start: bool,
    pub imagehub_bin: PathBuf,
    pub repos: u64,
    /// Requests per kind of query, per mode (sequential, concurrent).
    pub queries: u64,
    pub conns: usize,
    pub workers: usize,
    pub seed: u64,
    /// `taskset` CPU list for the started server; `None`: not pinned.
    pub server_cpus: Option<String>,
    /// For `url`: the site admin (to push and run the index) and the server's PID.
    pub admin_user: String,
    pub admin_password: Option<String>,
    pub pid: Option<u32>,
    /// For `url`: the catalogue is already there (same `repos` and `seed`); only measure.
    pub skip_fill: bool,
    pub json: Option<PathBuf>,
}

/// Server resources at one point.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Resources {
    pub rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub data_dir_mib: Option<f64>,
    /// Size of each top-level entry of the data dir, MiB.
    pub data_dir_entries: Vec<(String, f64)>,
}

fn resources(pid: Option<u32>, data_dir: Option<&Path>) -> Resources {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut r = Resources {
        rss_mib: pid.and_then(|p| procmon::status_kib(p, "VmRSS")).map(mib),
        peak_rss_mib: pid.and_then(|p| procmon::status_kib(p, "VmHWM")).map(mib),
        cpu_seconds: pid.and_then(procmon::cpu_seconds),
        ..Default::default()
    };
    if let Some(dir) = data_dir {
        r.data_dir_mib = Some(dir_bytes(dir) as f64 / (1 << 20) as f64);
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut list: Vec<(String, f64)> = entries
                .flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        dir_bytes(&e.path()) as f64 / (1 << 20) as f64,
                    )
                })
                .collect();
            list.sort_by(|a, b| b.1.total_cmp(&a.1));
            r.data_dir_entries = list;
        }
    }
    r
}

/// Bytes of the files under `path` (apparent sizes; symlinks not followed).
fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map(|it| it.flatten().map(|e| dir_bytes(&e.path())).sum()).unwrap_or(0)
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPUs of a simple `taskset` list (`0`, `0,2`, `0-1`); `None` if it is something else.
fn parse_cpus(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                cpus.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse::<usize>().ok()?)
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

/// Pins this process (all threads) to the CPUs the server does not use; returns the list.
fn pin_self_away_from(server: &str) -> Option<String> {
    let taken = parse_cpus(server)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rest: Vec<String> =
        (0..cores).filter(|c| !taken.contains(c)).map(|c| c.to_string()).collect();
    if rest.is_empty() {
        return None;
    }
    let list = rest.join(",");
    let ok = Command::new("taskset")
        .args(["-a", "-cp", &list, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(list)
}

fn random_password() -> String {
    let pool = crate::data::Pool::new();
    format!("Bench-{}-Pw1", hex::encode(pool.bytes(12)))
}

fn lat_cells(l: &Lat) -> String {
    format!(
        "{:>7} {:>7} {:>7} {:>7}",
        fmt_num(l.p50_ms),
        fmt_num(l.p95_ms),
        fmt_num(l.p99_ms),
        fmt_num(l.max_ms)
    )
}

fn other_cell(a: &Lat, b: &Lat) -> String {
    match (a.other_cores, b.other_cores) {
        (Some(x), Some(y)) => format!("{:.2}", x.max(y)),
        _ => "-".to_string(),
    }
}

/// One line of a latency table: a kind of request, an example, a figure of its own.
pub struct TableRow<'a> {
    pub label: &'a str,
    pub example: &'a str,
    pub figure: String,
    pub sequential: &'a Lat,
    pub concurrent: &'a Lat,
}

/// The text table of timed kinds: `columns` names the first three, `note` ends it.
pub fn latency_table(
    columns: [&str; 3],
    rows: &[TableRow<'_>],
    overall: (&Lat, &Lat),
    conns: usize,
    note: &str,
) -> String {
    let line = |cells: [&str; 3], seq: String, conc: String, rest: [String; 3]| {
        let example: String = cells[1].chars().take(34).collect();
        format!(
            "{:<20} {:<34} {:>7} | {seq:^31} | {conc:^31} {:>7} {:>8} {:>6}\n",
            cells[0], example, cells[2], rest[0], rest[1], rest[2]
        )
    };
    let numbers = |seq: &Lat, conc: &Lat| {
        [
            fmt_num(conc.req_per_s),
            seq.server_cpu_us_per_req.map_or("-".to_string(), fmt_num),
            other_cell(seq, conc),
        ]
    };
    let mut out = line(
        columns,
        "1 connection: p50 p95 p99 max".into(),
        format!("{conns} connections: p50 p95 p99 max"),
        ["req/s".into(), "cpu µs".into(), "other".into()],
    );
    for r in rows {
        let (seq, conc) = (lat_cells(r.sequential), lat_cells(r.concurrent));
        let rest = numbers(r.sequential, r.concurrent);
        out.push_str(&line([r.label, r.example, &r.figure], seq, conc, rest));
    }
    let (seq, conc) = overall;
    let rest = numbers(seq, conc);
    out.push_str(&line(["overall", "", ""], lat_cells(seq), lat_cells(conc), rest));
    out.push_str(&format!(
        "(ms; {note}; req/s with the concurrent connections; cpu µs = server CPU per request, sequential; other = CPU \
         cores other processes used meanwhile, the larger of the two phases)\n"
    ));
    out
}

/// The text table of the results.
pub fn table(kinds: &[KindResult], seq: &Lat, conc: &Lat, conns: usize) -> String {
    let rows: Vec<TableRow<'_>> = kinds
        .iter()
        .map(|k| TableRow {
            label: k.label,
            example: k.checked.first().map_or("", |c| c.query.as_str()),
            figure: fmt_num(k.median_hits() as f64),
            sequential: &k.sequential,
            concurrent: &k.concurrent,
        })
        .collect();
    let columns = ["kind", "example query", "hits"];
    let note = "hits = median `total` over the kind's queries";
    latency_table(columns, &rows, (seq, conc), conns, note)
}

/// Runs the whole benchmark.
pub async fn run(opts: Options) -> Result<()> {
    if opts.start == opts.url.is_some() {
        bail!("give either --start or the URL of a running hub");
    }
    if opts.repos < 50 {
        bail!("--repos must be at least 50");
    }
    let machine = Machine::detect();
    let load_start = report::loadavg();
    println!("machine: {} | load at start {load_start}", machine.describe());

    let mut server = None;
    let mut client_cpus = None;
    let mut server_cpus = None;
    let (url, pid, data_dir, admin) = if opts.start {
        let pin = opts.server_cpus.clone().filter(|_| have_taskset());
        if opts.server_cpus.is_some() && pin.is_none() {
            eprintln!("taskset not found: the server is not pinned");
        }
        let password = random_password();
        let s = Server::start_hub(&opts.imagehub_bin, &password, pin.as_deref()).await?;
        if let Some(cpus) = &pin {
            client_cpus = pin_self_away_from(cpus);
            server_cpus = Some(cpus.clone());
        }
        let out = (
            s.url.clone(),
            Some(s.pid),
            Some(s.data_dir()),
            Admin { user: "admin".into(), password },
        );
        eprintln!("started imagehub pid {} at {} (log {})", s.pid, s.url, s.log_path().display());
        server = Some(s);
        out
    } else {
        let password = opts.admin_password.clone().unwrap_or_default();
        if password.is_empty() && !opts.skip_fill {
            bail!(
                "filling a running hub needs the admin password (--admin-password or IMAGEHUB_ADMIN_PASSWORD)"
            );
        }
        (
            opts.url.clone().unwrap_or_default(),
            opts.pid,
            None,
            Admin { user: opts.admin_user.clone(), password },
        )
    };
    println!(
        "server: {url} | pinned to CPU {} | bench on CPU {}",
        server_cpus.as_deref().unwrap_or("(not pinned)"),
        client_cpus.as_deref().unwrap_or("(any)")
    );
    let hub = Hub { url, pid, data_dir, admin, server_cpus, client_cpus };
    let result = match opts.pages {
        true => pages::run(&opts, &hub, &machine, &load_start).await,
        false => run_search(&opts, &hub, &machine, &load_start).await,
    };
    if let (Err(_), Some(s)) = (&result, &server) {
        eprintln!("server log tail:\n{}", s.log_tail());
    }
    if let Some(s) = server {
        s.stop();
    }
    result
}

/// The hub being measured.
pub struct Hub {
    pub url: String,
    pub pid: Option<u32>,
    pub data_dir: Option<PathBuf>,
    pub admin: Admin,
    /// The CPUs a started server is pinned to, and those the bench runs on.
    pub server_cpus: Option<String>,
    pub client_cpus: Option<String>,
}

async fn run_search(opts: &Options, hub: &Hub, machine: &Machine, load_start: &str) -> Result<()> {
    let Hub { url, pid, data_dir, admin, server_cpus, client_cpus } = hub;
    let (fill, after_fill, kinds, seq, conc, end) =
        measure_all(opts, url, *pid, data_dir.as_deref(), admin).await?;

    let load_end = report::loadavg();
    println!();
    println!(
        "search, {} repositories (seed {}), server on CPU {} | load start {load_start} | load end {load_end}",
        fmt_num(opts.repos as f64),
        opts.seed,
        server_cpus.as_deref().unwrap_or("(not pinned)")
    );
    if let Some(f) = &fill {
        println!(
            "fill: {} repos pushed in {:.1} s ({:.0} repos/s, {} workers, {} tokens, {} failed); indexing queue drained {:.1} s after the last push; {:.1} s in all",
            fmt_num(f.pushed as f64),
            f.push_seconds,
            f.pushed as f64 / f.push_seconds.max(1e-9),
            f.workers,
            f.tokens,
            f.failed,
            f.index_seconds,
            f.total_seconds()
        );
        if let Some(e) = &f.first_error {
            println!("fill: first error: {e}");
        }
    }
    println!(
        "server: RSS after fill {} MiB, after searches {} MiB, peak {} MiB | data dir {} MiB ({})",
        after_fill.rss_mib.map_or("-".into(), fmt_num),
        end.rss_mib.map_or("-".into(), fmt_num),
        end.peak_rss_mib.map_or("-".into(), fmt_num),
        end.data_dir_mib.map_or("-".into(), fmt_num),
        end.data_dir_entries
            .iter()
            .take(4)
            .map(|(n, m)| format!("{n} {}", fmt_num(*m)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{} requests per kind and mode; per_page={}\n", opts.queries, measure::PER_PAGE);
    print!("{}", table(&kinds, &seq, &conc, opts.conns));
    let verdict = |l: &Lat| if l.p99_ms < TARGET_P99_MS { "meets" } else { "misses" };
    println!(
        "\noverall p99: {} ms sequential ({} {TARGET_P99_MS} ms), {} ms with {} connections ({})",
        fmt_num(seq.p99_ms),
        verdict(&seq),
        fmt_num(conc.p99_ms),
        opts.conns,
        verdict(&conc)
    );
    for k in &kinds {
        for l in [&k.sequential, &k.concurrent] {
            if let Some(e) = &l.first_error {
                println!("ERROR {}: {} failed, first: {e}", k.key, l.failed);
            }
        }
        if let Some(c) = k.checked.iter().find(|c| !c.indexed && c.total > 0) {
            println!("note: {} {:?}: top result has no keywords/description", k.key, c.query);
        }
    }

    if let Some(path) = &opts.json {
        crate::write_json(
            path,
            &json!({
                "machine": machine, "load_start": load_start, "load_end": load_end,
                "repos": opts.repos, "seed": opts.seed, "requests_per_kind": opts.queries, "conns": opts.conns,
                "per_page": measure::PER_PAGE, "server_cpus": server_cpus, "client_cpus": client_cpus,
                "target_p99_ms": TARGET_P99_MS,
                "fill": fill, "resources_after_fill": after_fill, "resources_end": end,
                "kinds": kinds, "overall": {"sequential": seq, "concurrent": conc},
            }),
        )?;
        println!("JSON: {}", path.display());
    }
    Ok(())
}

type Measured = (Option<FillReport>, Resources, Vec<KindResult>, Lat, Lat, Resources);

async fn measure_all(
    opts: &Options,
    url: &str,
    pid: Option<u32>,
    data_dir: Option<&Path>,
    admin: &Admin,
) -> Result<Measured> {
    let target = Arc::new(Target::parse(url)?);
    let corpus = Arc::new(Corpus::new(opts.repos, opts.seed));
    let fill = fill_catalogue(opts, &target, &corpus, admin).await?;
    crate::scenarios::sync_disks();
    let after_fill = resources(pid, data_dir);

    let kinds = corpus.queries();
    let mut checked = Vec::new();
    for k in &kinds {
        let c = measure::check(&target, k)
            .await
            .with_context(|| format!("checking {} queries", k.key))?;
        eprintln!("  {:<12} hits {:?}", k.key, c.iter().map(|c| c.total).collect::<Vec<_>>());
        checked.push(c);
    }
    if checked.iter().flatten().all(|c| c.total == 0) {
        bail!("no query found anything: was the catalogue indexed?");
    }
    if let Some(c) =
        checked.first().and_then(|c| c.iter().find(|c| c.top.first() != Some(&c.query)))
    {
        eprintln!(
            "warning: exact-name query {:?} did not rank its repository first: {:?}",
            c.query, c.top
        );
    }
    if let Some((k, c)) = kinds.iter().zip(&checked).find(|(k, _)| k.key == "rare") {
        for c in c.iter().filter(|c| c.total < corpus.rare_count(&c.query)) {
            eprintln!(
                "warning: rare word {:?} found {} repositories of {} ({})",
                c.query,
                c.total,
                corpus.rare_count(&c.query),
                k.key
            );
        }
    }
    // Warm-up (untimed): every query a few times.
    for k in &kinds {
        let reps = k.queries.len() as u64 * 3;
        measure::time(&target, k.key, measure::search_paths(k), 1, reps, None).await?;
    }

    let mut seq = Vec::new();
    let mut seq_all = Vec::new();
    for k in &kinds {
        eprintln!("  timing {} sequentially", k.key);
        let paths = measure::search_paths(k);
        let (lat, o) = measure::time(&target, k.key, paths, 1, opts.queries, pid).await?;
        seq.push(lat);
        seq_all.push(o);
    }
    let mut conc = Vec::new();
    let mut conc_all = Vec::new();
    for k in &kinds {
        eprintln!("  timing {} over {} connections", k.key, opts.conns);
        let paths = measure::search_paths(k);
        let (lat, o) = measure::time(&target, k.key, paths, opts.conns, opts.queries, pid).await?;
        conc.push(lat);
        conc_all.push(o);
    }
    let (seq_overall, conc_overall) =
        (measure::overall(seq_all, &seq), measure::overall(conc_all, &conc));
    let results = kinds
        .iter()
        .zip(checked)
        .zip(seq.into_iter().zip(conc))
        .map(|((k, checked), (sequential, concurrent))| KindResult {
            key: k.key,
            label: k.label,
            checked,
            sequential,
            concurrent,
        })
        .collect();
    let end = resources(pid, data_dir);
    Ok((fill, after_fill, results, seq_overall, conc_overall, end))
}

/// Fills the hub with the catalogue, unless told it holds it already.
pub async fn fill_catalogue(
    opts: &Options,
    target: &Arc<Target>,
    corpus: &Arc<Corpus>,
    admin: &Admin,
) -> Result<Option<FillReport>> {
    if opts.skip_fill {
        return Ok(None);
    }
    eprintln!("filling {} repositories with {} workers", opts.repos, opts.workers);
    fill::create_org(target, admin).await?;
    let pusher = fill::access_token(target, admin, "imagehub-bench fill").await?;
    let mut f = fill::push_all(target, &pusher, corpus.clone(), opts.workers).await?;
    eprintln!("pushed in {:.1} s; running the indexing queue", f.push_seconds);
    let (s, ran, pending) = fill::run_index(target, admin, Duration::from_secs(3600)).await?;
    (f.index_seconds, f.index_ran, f.index_pending_after) = (s, ran, pending);
    if f.failed > opts.repos / 100 {
        bail!(
            "{} of {} pushes failed; first: {}",
            f.failed,
            opts.repos,
            f.first_error.unwrap_or_default()
        );
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0"), Some(vec![0]));
        assert_eq!(parse_cpus("0,2"), Some(vec![0, 2]));
        assert_eq!(parse_cpus("1-3"), Some(vec![1, 2, 3]));
        assert_eq!(parse_cpus("x"), None);
    }
}
