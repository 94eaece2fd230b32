//! The files in `deploy/` and the `Dockerfile` stay true to the server they run: they
//! parse, name only settings it has, and probe paths it answers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imagehub_testkit::TestServer;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `IMAGEHUB_…` name in `text`.
fn imagehub_variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (start, _) in text.match_indices("IMAGEHUB_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        found.insert(name);
    }
    found
}

/// The environment variables `imagehub serve --help` lists, one per setting.
fn settings_the_server_has() -> BTreeSet<String> {
    let out = std::process::Command::new(crate::process::imagehub_bin())
        .args(["serve", "--help"])
        .output()
        .expect("imagehub serve --help");
    assert!(out.status.success());
    imagehub_variables(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn deploy_files_parse_and_name_only_settings_the_server_has() {
    let known = settings_the_server_has();
    assert!(known.contains("IMAGEHUB_METADATA__URL"), "{known:?}");
    // Nested settings (`storage.s3`) are listed once, their fields set with `__FIELD`;
    // the first admin's password is read at start, outside the configuration.
    let is_known = |name: &str| {
        name == "IMAGEHUB_ADMIN_PASSWORD"
            || known.iter().any(|k| name == k || name.starts_with(&format!("{k}__")))
    };
    for file in ["deploy/compose/compose.yaml", "deploy/kubernetes/imagehub.yaml", "Dockerfile"] {
        let text = read(file);
        if file.ends_with(".yaml") {
            for document in text.split("\n---\n") {
                let parsed = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(document);
                parsed.unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
            }
        }
        let named = imagehub_variables(&text);
        assert!(!named.is_empty(), "{file} configures imagehub");
        let unknown: Vec<_> = named.iter().filter(|n| !is_known(n)).collect();
        assert!(unknown.is_empty(), "{file} names settings the server does not have: {unknown:?}");
    }
}

#[tokio::test]
async fn the_paths_deploy_files_probe_answer_200() {
    let kubernetes = read("deploy/kubernetes/imagehub.yaml");
    let haproxy = read("deploy/compose/haproxy.cfg");
    let compose = read("deploy/compose/compose.yaml");
    let server = TestServer::start();
    let mut probed = BTreeSet::new();
    for text in [&kubernetes, &haproxy, &compose] {
        for path in ["/readyz", "/healthz"] {
            if text.contains(path) {
                probed.insert(path);
            }
        }
    }
    assert!(probed.contains("/readyz"), "readiness is probed");
    for path in probed {
        let reply = reqwest::get(format!("{}{path}", server.url())).await.expect("GET");
        assert_eq!(reply.status(), 200, "{path}");
    }
}
