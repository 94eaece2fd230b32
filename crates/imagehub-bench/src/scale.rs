//! Issue 18's figures: two imagehub replicas over PostgreSQL and an S3 server against one
//! replica over SQLite and the filesystem, each behind the same round-robin balancer,
//! fresh per round and alternating which goes first; the manifest and push scenarios of
//! `compare`, medians and their ratios. PostgreSQL (Debian's, a throwaway cluster) and
//! s3s-fs (as `scripts/test.sh` installs it) run on this machine beside the replicas.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::balancer::Balancer;
use crate::report::{self, Machine, RunReport};
use crate::servers::{Kind, Server};

pub struct Options {
    pub imagehub_bin: PathBuf,
    pub s3s_bin: PathBuf,
    pub rounds: usize,
    pub quick: bool,
    pub json: PathBuf,
}

/// The scenarios measured: manifest PUT/GET rates and the push of N images.
const SCENARIOS: [&str; 2] = ["manifest", "push"];

pub async fn run(options: Options) -> Result<()> {
    let machine = Machine::detect();
    let postgres = Postgres::start()?;
    let s3 = S3::start(&options.s3s_bin)?;
    let only = SCENARIOS.map(str::to_string);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        for scaled in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let what = if scaled { "two replicas, PostgreSQL + S3" } else { "one, SQLite" };
            eprintln!(
                "== round {}/{}: {what} (load {})",
                round + 1,
                options.rounds,
                report::loadavg()
            );
            let env = if scaled { scaled_env(&postgres, &s3, round)? } else { Vec::new() };
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut replicas = Vec::new();
            for _ in 0..if scaled { 2 } else { 1 } {
                replicas.push(
                    Server::start_with_env(Kind::Imagehub, &options.imagehub_bin, &env).await?,
                );
            }
            let backends = replicas.iter().map(address).collect::<Result<Vec<_>>>()?;
            let balancer = Balancer::start(backends).await?;
            let rep = crate::measure(&balancer.url, None, options.quick, &only).await?;
            for server in replicas {
                if !rep.errors.is_empty() {
                    eprintln!("replica log tail:\n{}", server.log_tail());
                }
                server.stop();
            }
            eprint!("{}", report::run_table(&rep));
            if scaled { two.push(rep) } else { one.push(rep) }
        }
    }
    let rows = report::summarize(&two, &one);
    println!("\nmachine: {}", machine.describe());
    println!(
        "{} rounds{}, medians; both behind one round-robin TCP balancer\n",
        options.rounds,
        if options.quick { " (quick)" } else { "" }
    );
    println!("| figure | unit | one replica, SQLite | two replicas, PostgreSQL + S3 | two / one |");
    println!("|---|---|---:|---:|---:|");
    let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.label,
            row.unit,
            show(row.distribution_median),
            show(row.imagehub_median),
            row.ratio.map_or("-".into(), |r| format!("{r:.2}")),
        );
    }
    let errors: Vec<&String> = one.iter().chain(&two).flat_map(|r| &r.errors).collect();
    for e in &errors {
        println!("ERROR {e}");
    }
    let runs = |reps: &[RunReport]| json!(reps);
    crate::write_json(
        &options.json,
        &json!({"machine": machine, "rounds": options.rounds, "quick": options.quick,
                "summary": rows, "one_sqlite": runs(&one), "two_postgres_s3": runs(&two)}),
    )?;
    println!("\nJSON: {}", options.json.display());
    Ok(())
}

fn address(server: &Server) -> Result<SocketAddr> {
    let host = server.url.trim_start_matches("http://");
    host.parse().with_context(|| format!("replica address {host}"))
}

/// A replica's environment over a fresh database and bucket for `round`.
fn scaled_env(postgres: &Postgres, s3: &S3, round: usize) -> Result<Vec<(&'static str, String)>> {
    let database = format!("bench{round}");
    postgres.psql(&format!("CREATE DATABASE {database}"))?;
    let bucket = format!("bench{round}");
    std::fs::create_dir(s3.root.path().join(&bucket))?;
    Ok(vec![
        ("IMAGEHUB_METADATA__URL", format!("{}/{database}", postgres.url)),
        ("IMAGEHUB_STORAGE__S3__ENDPOINT", s3.endpoint.clone()),
        ("IMAGEHUB_STORAGE__S3__BUCKET", bucket),
        ("IMAGEHUB_STORAGE__S3__ACCESS_KEY", "bench".into()),
        ("IMAGEHUB_STORAGE__S3__SECRET_KEY", "bench-secret".into()),
        ("IMAGEHUB_STORAGE__S3__PATH_STYLE", "true".into()),
    ])
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A throwaway PostgreSQL cluster, trusting loopback connections; stopped on drop.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    url: String,
}

impl Postgres {
    fn start() -> Result<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (Debian: apt install postgresql)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .context("no PostgreSQL server under /usr/lib/postgresql")?;
        let dir = tempfile::Builder::new().prefix("imagehub-bench-pg-").tempdir_in("/tmp")?;
        if is_root() {
            succeed(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let port = free_port()?;
        let data = dir.path().to_str().context("utf-8 temp dir")?.to_string();
        succeed(
            as_postgres(&bin.join("initdb")).args(["-D", &data, "-A", "trust", "-U", "imagehub"]),
        )?;
        let settings = format!("-p {port} -k {data} -c listen_addresses=127.0.0.1");
        let log = format!("{data}/log");
        succeed(
            as_postgres(&bin.join("pg_ctl"))
                .args(["-D", &data, "-l", &log, "-w", "-o", &settings, "start"]),
        )?;
        Ok(Postgres { bin, dir, url: format!("postgres://imagehub@127.0.0.1:{port}") })
    }

    fn psql(&self, sql: &str) -> Result<()> {
        succeed(Command::new("psql").args([&format!("{}/postgres", self.url), "-qc", sql]))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().to_string_lossy().to_string();
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "fast", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program`, run as the `postgres` user when we are root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn succeed(command: &mut Command) -> Result<()> {
    let out = command.stdin(Stdio::null()).output().with_context(|| format!("{command:?}"))?;
    if !out.status.success() {
        bail!("{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// s3s-fs over a temporary directory (a bucket is a directory in it); killed on drop.
struct S3 {
    child: Child,
    root: tempfile::TempDir,
    endpoint: String,
}

impl S3 {
    fn start(bin: &Path) -> Result<S3> {
        let root = tempfile::Builder::new().prefix("imagehub-bench-s3-").tempdir_in("/tmp")?;
        let port = free_port()?;
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "bench", "--secret-key", "bench-secret"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (cargo install s3s-fs --features binary)", bin.display())
            })?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("s3s-fs did not listen on {endpoint}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(S3 { child, root, endpoint })
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
