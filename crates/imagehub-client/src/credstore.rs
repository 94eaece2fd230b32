//! Credentials where people already keep them: docker's `config.json`
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with `credsStore` and
//! `credHelpers` asking a `docker-credential-NAME` helper) and the containers
//! `auth.json` that podman, buildah and skopeo write (`REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`; keys may
//! name a namespace or repository, the most specific wins). What `docker login` or
//! `podman login` wrote works here, and `store` writes as `docker login` does.
//!
//! The file formats and the helper protocol (`get`/`store`/`erase` over stdin and
//! stdout) are small and stable; no maintained crate implements them, hence this module.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::auth::Credentials;
use crate::reference::DOCKER_HUB;

/// The key docker uses for Docker Hub in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The files and helpers credentials are read from and written to.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    /// docker's `config.json` (it may not exist yet).
    pub docker_config: PathBuf,
    /// containers `auth.json` files, in the order they are read.
    pub auth_files: Vec<PathBuf>,
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the credential helper docker-credential-{helper} failed: {message}")]
    Helper { helper: String, message: String },
}

impl CredentialStore {
    /// The locations docker and podman use, from the environment.
    pub fn from_env() -> CredentialStore {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("."));
        let docker_config =
            var("DOCKER_CONFIG").unwrap_or_else(|| home.join(".docker")).join("config.json");
        let mut auth_files = Vec::new();
        match var("REGISTRY_AUTH_FILE") {
            Some(file) => auth_files.push(file),
            None => {
                if let Some(runtime) = var("XDG_RUNTIME_DIR") {
                    auth_files.push(runtime.join("containers/auth.json"));
                }
                auth_files.push(home.join(".config/containers/auth.json"));
            }
        }
        CredentialStore { docker_config, auth_files }
    }

    /// The credentials for `repository` (`namespace/name`) in `registry` (as references
    /// name it), or anonymous.
    pub fn get(&self, registry: &str, repository: Option<&str>) -> Result<Credentials, StoreError> {
        let docker = read_json(&self.docker_config)?;
        if let Some(helper) = docker["credHelpers"][registry].as_str() {
            return helper_get(helper, &server_url(registry));
        }
        for file in &self.auth_files {
            let auths = read_json(file)?;
            for key in namespaced_keys(registry, repository) {
                if let Some(found) = decode(&auths["auths"][key.as_str()]) {
                    return Ok(found);
                }
            }
        }
        for key in [
            server_url(registry),
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ] {
            if let Some(found) = decode(&docker["auths"][key.as_str()]) {
                return Ok(found);
            }
        }
        match docker["credsStore"].as_str() {
            Some(helper) => helper_get(helper, &server_url(registry)),
            None => Ok(Credentials::Anonymous),
        }
    }

    /// Stores credentials as `docker login` does: through the registry's helper, or the
    /// default store, or in `config.json` (mode 0600). Returns where they went.
    pub fn store(
        &self,
        registry: &str,
        username: &str,
        secret: &str,
    ) -> Result<String, StoreError> {
        let mut docker = read_json(&self.docker_config)?;
        let helper = writing_helper(&docker, registry);
        if let Some(helper) = helper {
            let input =
                json!({"ServerURL": server_url(registry), "Username": username, "Secret": secret});
            run_helper(&helper, "store", &input.to_string())?;
            return Ok(format!("the credential helper docker-credential-{helper}"));
        }
        let auth = STANDARD.encode(format!("{username}:{secret}"));
        let root = object(&mut docker);
        let auths = object(root.entry("auths").or_insert_with(|| json!({})));
        auths.insert(server_url(registry), json!({"auth": auth}));
        write_json(&self.docker_config, &docker)?;
        Ok(self.docker_config.display().to_string())
    }

    /// Forgets the credentials for `registry` (from its helper or `config.json`); `false`
    /// when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, StoreError> {
        let mut docker = read_json(&self.docker_config)?;
        let helper = writing_helper(&docker, registry);
        if let Some(helper) = helper {
            run_helper(&helper, "erase", &server_url(registry))?;
            return Ok(true);
        }
        let Some(auths) = docker.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let keys = [
            server_url(registry),
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ];
        // Every spelling is removed, not only the first found.
        let removed = keys.iter().filter(|key| auths.remove(key.as_str()).is_some()).count() > 0;
        if removed {
            write_json(&self.docker_config, &docker)?;
        }
        Ok(removed)
    }
}

/// The helper that keeps `registry`'s credentials when they are written: its own, or
/// the default store.
fn writing_helper(docker: &Value, registry: &str) -> Option<String> {
    docker["credHelpers"][registry].as_str().or(docker["credsStore"].as_str()).map(String::from)
}

/// The key `config.json` and helpers use for a registry.
fn server_url(registry: &str) -> String {
    if registry == DOCKER_HUB { DOCKER_HUB_KEY.to_string() } else { registry.to_string() }
}

/// `auth.json` keys for a repository, most specific first: `reg/ns/repo`, `reg/ns`, `reg`.
fn namespaced_keys(registry: &str, repository: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(repository) = repository {
        let parts: Vec<&str> = repository.split('/').collect();
        for end in (1..=parts.len()).rev() {
            keys.push(format!("{registry}/{}", parts[..end].join("/")));
        }
    }
    keys.push(registry.to_string());
    if registry == DOCKER_HUB {
        keys.push(DOCKER_HUB_KEY.to_string());
    }
    keys
}

/// An `auths` entry: `{"auth": base64("user:secret")}` (or `identitytoken`).
fn decode(entry: &Value) -> Option<Credentials> {
    if let Some(token) = entry["identitytoken"].as_str().filter(|t| !t.is_empty()) {
        let user = entry["username"].as_str().unwrap_or("<token>");
        return Some(Credentials::basic(user, token));
    }
    let decoded = STANDARD.decode(entry["auth"].as_str()?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, secret) = text.split_once(':')?;
    Some(Credentials::basic(user, secret))
}

fn helper_get(helper: &str, server: &str) -> Result<Credentials, StoreError> {
    let output = run_helper(helper, "get", server)?;
    let value: Value = serde_json::from_str(&output).map_err(|e| StoreError::Helper {
        helper: helper.to_string(),
        message: format!("its answer: {e}"),
    })?;
    match (value["Username"].as_str(), value["Secret"].as_str()) {
        (Some(user), Some(secret)) if !secret.is_empty() => Ok(Credentials::basic(user, secret)),
        _ => Ok(Credentials::Anonymous),
    }
}

/// Runs `docker-credential-HELPER ACTION` with `input` on stdin; its stdout. A `get` of
/// credentials the helper does not have is anonymous, not an error.
fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, StoreError> {
    let fail = |message: String| StoreError::Helper { helper: helper.to_string(), message };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        if action == "get" && stdout.contains("credentials not found") {
            return Ok("{}".to_string());
        }
        let said = format!("{}{}", stdout.trim(), String::from_utf8_lossy(&output.stderr).trim());
        return Err(fail(format!("{action} ended with {}: {said}", output.status)));
    }
    Ok(stdout)
}

fn read_json(path: &Path) -> Result<Value, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(json!({})),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::File {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(StoreError::File { path: path.to_path_buf(), message: e.to_string() }),
    }
}

/// Writes the file whole (a temporary file renamed over it), readable by its owner only.
/// A `config.json` that is a symbolic link (into a dotfiles repository, say) stays one:
/// the file it leads to is what is replaced.
fn write_json(path: &Path, value: &Value) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail =
        |e: std::io::Error| StoreError::File { path: path.to_path_buf(), message: e.to_string() };
    let linked = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let path = &match linked {
        true => std::fs::canonicalize(path).map_err(fail)?,
        false => path.to_path_buf(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // A fresh name, created only if nothing has it: never written through a link.
    let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}

fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    value.as_object_mut().expect("an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> CredentialStore {
        CredentialStore {
            docker_config: dir.join("docker/config.json"),
            auth_files: vec![dir.join("auth.json")],
        }
    }

    #[test]
    fn docker_config_round_trip_and_docker_hub_key() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store_in(dir.path());
        assert_eq!(store.get("r.io:5000", None).expect("get"), Credentials::Anonymous);
        store.store("r.io:5000", "alice", "s3cret").expect("store");
        store.store(DOCKER_HUB, "bob", "hub-pw").expect("store");
        assert_eq!(
            store.get("r.io:5000", Some("a/b")).expect("get"),
            Credentials::basic("alice", "s3cret")
        );
        let written: Value =
            serde_json::from_slice(&std::fs::read(&store.docker_config).expect("file"))
                .expect("json");
        assert!(written["auths"][DOCKER_HUB_KEY]["auth"].is_string(), "{written}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&store.docker_config).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.erase("r.io:5000").expect("erase"));
        assert_eq!(store.get("r.io:5000", None).expect("get"), Credentials::Anonymous);
        assert_eq!(store.get(DOCKER_HUB, None).expect("get"), Credentials::basic("bob", "hub-pw"));
    }

    #[test]
    fn a_linked_config_stays_a_link_and_a_readable_one_becomes_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let store = store_in(dir.path());
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir_all(&dotfiles).expect("dir");
        let real = dotfiles.join("docker.json");
        std::fs::write(&real, r#"{"auths": {}, "detachKeys": "ctrl-x"}"#).expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("mode");
        std::fs::create_dir_all(store.docker_config.parent().expect("dir")).expect("dir");
        std::os::unix::fs::symlink(&real, &store.docker_config).expect("link");
        store.store("r.io", "alice", "pw").expect("store");
        let meta = std::fs::symlink_metadata(&store.docker_config).expect("link");
        assert!(meta.file_type().is_symlink(), "still a link");
        let written: Value =
            serde_json::from_slice(&std::fs::read(&real).expect("file")).expect("json");
        assert!(written["auths"]["r.io"]["auth"].is_string(), "{written}");
        assert_eq!(written["detachKeys"], "ctrl-x", "other settings kept");
        let mode = std::fs::metadata(&real).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials are not left readable by others");
    }

    #[test]
    fn containers_auth_json_with_namespaced_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store_in(dir.path());
        let entry = |user: &str| json!({"auth": STANDARD.encode(format!("{user}:pw"))});
        let auths = json!({"auths": {"r.io": entry("any"), "r.io/team": entry("team"), "r.io/team/app": entry("app")}});
        std::fs::write(dir.path().join("auth.json"), auths.to_string()).expect("write");
        assert_eq!(
            store.get("r.io", Some("team/app")).expect("get"),
            Credentials::basic("app", "pw")
        );
        assert_eq!(
            store.get("r.io", Some("team/other")).expect("get"),
            Credentials::basic("team", "pw")
        );
        assert_eq!(
            store.get("r.io", Some("else/x")).expect("get"),
            Credentials::basic("any", "pw")
        );
        std::fs::write(dir.path().join("auth.json"), "not json").expect("write");
        assert!(store.get("r.io", None).is_err(), "a broken file is reported, not ignored");
    }
}
