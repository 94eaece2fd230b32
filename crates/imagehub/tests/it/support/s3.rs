//! A real S3 server for the tests: `s3s-fs` (crates.io), which `scripts/test.sh` installs
//! into `target/test-tools/bin`, started on a free loopback port over a temporary
//! directory with one bucket, ready once it says it is running, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use imagehub_blobstore::S3Settings;

pub struct S3Server {
    child: Child,
    _root: tempfile::TempDir,
    pub settings: S3Settings,
}

/// Where the test command installs s3s-fs; the PATH otherwise.
fn binary() -> PathBuf {
    let installed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-tools/bin/s3s-fs");
    if installed.is_file() { installed } else { PathBuf::from("s3s-fs") }
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("the S3 server's root");
        std::fs::create_dir(root.path().join("imagehub")).expect("the bucket");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "imagehub-test", "--secret-key", "imagehub-test-secret"])
            .arg(root.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("s3s-fs (cargo install s3s-fs --features binary): {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("server is running at") => break,
                Some(Ok(_)) => {}
                _ => panic!("s3s-fs exited before listening"),
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let settings = S3Settings {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "imagehub".into(),
            region: "us-east-1".into(),
            access_key: "imagehub-test".into(),
            secret_key: "imagehub-test-secret".into(),
            path_style: true,
            redirect: false,
        };
        S3Server { child, _root: root, settings }
    }
}

impl S3Server {
    /// The `[storage.s3]` table for this server's bucket.
    pub fn config(&self) -> imagehub_server::config::S3Config {
        let settings = self.settings.clone();
        imagehub_server::config::S3Config {
            endpoint: settings.endpoint,
            bucket: settings.bucket,
            region: settings.region,
            access_key: settings.access_key,
            secret_key: settings.secret_key,
            path_style: settings.path_style,
            redirect: settings.redirect,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
