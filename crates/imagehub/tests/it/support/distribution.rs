//! CNCF distribution (Debian's `docker-registry`) as an upstream registry for the tests:
//! started on a free loopback port over a storage directory it may share with a later
//! run (so content pushed without auth can be served with htpasswd auth), ready once its
//! log says it listens, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BINARY: &str = "/usr/bin/docker-registry";

pub struct Distribution {
    child: Child,
    pub host: String,
}

impl Distribution {
    /// Starts distribution over `storage`; with `htpasswd` (`user`, `password`) it asks
    /// for those Basic credentials.
    pub fn start(storage: &Path, htpasswd: Option<(&str, &str)>) -> Distribution {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = storage.parent().expect("the storage has a parent").to_path_buf();
        let auth = match htpasswd {
            None => String::new(),
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 5).expect("bcrypt");
                let file: PathBuf = dir.join(format!("htpasswd-{port}"));
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n", file.display())
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: imagehub-tests-{port}\n{auth}",
            storage.display()
        );
        let config_path = dir.join(format!("distribution-{port}.yml"));
        std::fs::write(&config_path, config).expect("write the config");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{BINARY} (Debian package docker-registry): {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let listening = format!("listening on 127.0.0.1:{port}");
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains(&listening) => break,
                Some(Ok(_)) => {}
                _ => panic!("distribution exited before listening"),
            }
        }
        // Keep draining its log, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Distribution { child, host: format!("127.0.0.1:{port}") }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
