//! The `imagehub` binary run as a separate process, for what an in-process server cannot
//! show: SIGKILL, SIGTERM and the CLI commands next to a running server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use imagehub_testkit::backend;

/// The built `imagehub` binary.
pub fn imagehub_bin() -> &'static str {
    env!("CARGO_BIN_EXE_imagehub")
}

/// A running `imagehub serve` process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `imagehub serve` on an ephemeral port over `data_dir` as an open registry
    /// (these tests are about the registry core) and waits until it has reported the
    /// address it listens on.
    pub fn start(data_dir: &Path) -> ServerProcess {
        ServerProcess::start_with_env(data_dir, &[("IMAGEHUB_AUTH__ENABLED", "false")])
    }

    /// `start` with extra environment variables.
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let mut child = Command::new(imagehub_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .env_remove("IMAGEHUB_ADMIN_PASSWORD")
            .envs(backend::env(data_dir))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start imagehub serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let kept = log.clone();
        // Keep reading the log for the process's whole life so it never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("server.addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or_default().to_owned();
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = addr_rx.recv().unwrap_or_else(|_| {
            let status = child.wait().expect("wait for failed server");
            panic!("imagehub serve exited ({status}) before listening");
        });
        ServerProcess { child, url: format!("http://{addr}"), log, reader: Some(reader) }
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then asserts the process exits successfully within `limit` (and kills it
    /// if it does not, so a hung server fails the test instead of hanging it).
    pub fn terminate_within(mut self, limit: std::time::Duration) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + limit;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("check the server") {
                break exit;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "imagehub serve did not exit within {limit:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(exit.success(), "imagehub serve exited with {exit} after SIGTERM");
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGTERM, then waits for the graceful exit and checks it succeeded.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().expect("wait for the server to exit");
        assert!(exit.success(), "imagehub serve exited with {exit} after SIGTERM");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader thread");
        }
    }

    /// SIGTERM, then the whole log once the process has exited.
    pub fn terminate_and_log(mut self) -> String {
        let log = self.log.clone();
        let reader = self.reader.take();
        self.terminate();
        if let Some(reader) = reader {
            reader.join().expect("log reader thread");
        }
        log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `imagehub` CLI with `args`, asserting success; returns its stdout.
pub fn run_cli(args: &[&str]) -> String {
    let data_dir = args.iter().skip_while(|a| **a != "--data-dir").nth(1);
    let output = Command::new(imagehub_bin())
        .args(args)
        .envs(data_dir.map(|dir| backend::env(Path::new(dir))).unwrap_or_default())
        .output()
        .expect("run imagehub");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "imagehub {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
