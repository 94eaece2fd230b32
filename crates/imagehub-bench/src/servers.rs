//! Starting and stopping the servers compared: imagehub (`serve` on a fresh data dir,
//! auth off) and CNCF distribution (`docker-registry serve` with a generated config on a
//! fresh filesystem root), each on a free loopback port, logs kept in the temp dir; and,
//! for `search`, imagehub with accounts on, optionally pinned to CPUs with `taskset`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Which registry to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Imagehub,
    Distribution,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Imagehub => "imagehub",
            Kind::Distribution => "distribution",
        }
    }
}

/// A running server started by the bench; stopped on `stop` (or killed on drop).
pub struct Server {
    pub kind: Kind,
    pub url: String,
    pub pid: u32,
    child: Child,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The distribution configuration used for the comparison.
pub fn distribution_config(root: &Path, port: u16) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: imagehub-bench-{port}
  headers:
    X-Content-Type-Options: [nosniff]
",
        root = root.display()
    )
}

impl Server {
    /// Starts a fresh server of `kind` from `bin` and waits until `GET /v2/` answers.
    pub async fn start(kind: Kind, bin: &Path) -> Result<Self> {
        Self::start_with_env(kind, bin, &[]).await
    }

    /// `start`, with extra environment variables for the server.
    pub async fn start_with_env(kind: Kind, bin: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("imagehub-bench-{}-", kind.name()))
            .tempdir_in("/tmp")?;
        let port = free_port()?;
        let data: PathBuf = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new(bin);
        match kind {
            Kind::Imagehub => {
                cmd.arg("serve")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--data-dir")
                    .arg(&data)
                    .env("IMAGEHUB_AUTH__ENABLED", "false");
            }
            Kind::Distribution => {
                let config = dir.path().join("config.yml");
                std::fs::write(&config, distribution_config(&data, port))?;
                cmd.arg("serve").arg(&config);
            }
        }
        cmd.envs(env.iter().copied());
        Self::launch(kind, bin, cmd, dir, port).await
    }

    /// Starts a fresh imagehub with accounts on (its default): the site admin `admin`
    /// gets `admin_password`. With `cpus` (a `taskset` CPU list such as `0`), the server
    /// runs pinned to those CPUs, all its threads included.
    pub async fn start_hub(bin: &Path, admin_password: &str, cpus: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("imagehub-bench-search-").tempdir_in("/tmp")?;
        let port = free_port()?;
        let data: PathBuf = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(list).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .env("IMAGEHUB_ADMIN_PASSWORD", admin_password);
        Self::launch(Kind::Imagehub, bin, cmd, dir, port).await
    }

    /// Spawns `cmd` (output to `server.log` in `dir`) and waits until it answers.
    async fn launch(
        kind: Kind,
        bin: &Path,
        mut cmd: Command,
        dir: tempfile::TempDir,
        port: u16,
    ) -> Result<Self> {
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let mut server = Self { kind, url: format!("http://127.0.0.1:{port}"), pid, child, dir };
        server.wait_ready(port).await?;
        Ok(server)
    }

    /// The server's data directory (inside its temp dir).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    async fn wait_ready(&mut self, port: u16) -> Result<()> {
        let target =
            std::sync::Arc::new(crate::http::Target::parse(&format!("http://127.0.0.1:{port}"))?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} during start-up:\n{}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            if let Ok(mut conn) = crate::http::Conn::connect(&target).await
                && let Ok(r) = conn.call(crate::http::Req::get("/v2/")).await
                && matches!(r.status.as_u16(), 200 | 401)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not answer GET /v2/ within 30 s:\n{}", self.kind.name(), self.log_tail())
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and removes its directory.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
