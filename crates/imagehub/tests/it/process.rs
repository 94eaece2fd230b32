//! The `imagehub` binary run as a separate process, for what an in-process server cannot
//! show: SIGKILL, SIGTERM and the CLI commands next to a running server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The built `imagehub` binary.
pub fn imagehub_bin() -> &'static str {
    env!("CARGO_BIN_EXE_imagehub")
}

/// A running `imagehub serve` process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    /// Starts `imagehub serve` on an ephemeral port over `data_dir` and waits until it
    /// has reported the address it listens on.
    pub fn start(data_dir: &Path) -> ServerProcess {
        let mut child = Command::new(imagehub_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            // These tests are about the registry core: an open registry.
            .env("IMAGEHUB_AUTH__ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start imagehub serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Keep reading the log for the process's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("server.addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or_default().to_owned();
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = addr_rx.recv().unwrap_or_else(|_| {
            let status = child.wait().expect("wait for failed server");
            panic!("imagehub serve exited ({status}) before listening");
        });
        ServerProcess { child, url: format!("http://{addr}") }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
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
    let output = Command::new(imagehub_bin()).args(args).output().expect("run imagehub");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "imagehub {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
