//! Which registries may be reached over plain HTTP, as the containers tools decide it:
//! `registries.conf` (`$CONTAINERS_REGISTRIES_CONF`, else
//! `~/.config/containers/registries.conf`, else `/etc/containers/registries.conf`), in
//! its version 2 form (`[[registry]] location = "…" insecure = true`) or its version 1
//! form (`[registries.insecure] registries = ["…"]`).

use std::path::{Path, PathBuf};

/// The file the containers tools would read.
fn file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let user = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/containers/registries.conf"));
    user.filter(|p| p.exists()).or_else(|| Some(PathBuf::from("/etc/containers/registries.conf")))
}

/// Whether `registry` is listed as insecure where the containers tools look.
pub fn is_insecure(registry: &str) -> bool {
    file().is_some_and(|path| insecure_in(&path, registry))
}

/// Whether `registry` is listed as insecure in the file at `path` (a file that cannot
/// be read or parsed lists nothing).
pub fn insecure_in(path: &Path, registry: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let Ok(config) = text.parse::<toml::Table>() else { return false };
    let v2 = config.get("registry").and_then(|r| r.as_array()).into_iter().flatten().any(|entry| {
        let location = entry.get("location").and_then(|l| l.as_str());
        let insecure = entry.get("insecure").and_then(|i| i.as_bool()) == Some(true);
        insecure && location == Some(registry)
    });
    let v1 = config
        .get("registries")
        .and_then(|r| r.get("insecure"))
        .and_then(|i| i.get("registries"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .any(|r| r.as_str() == Some(registry));
    v2 || v1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let v2 = dir.path().join("v2.conf");
        std::fs::write(&v2, "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nlocation = \"reg.lan:5000\"\ninsecure = true\n\n[[registry]]\nlocation = \"secure.lan\"\n").expect("write");
        assert!(insecure_in(&v2, "reg.lan:5000"));
        assert!(!insecure_in(&v2, "secure.lan"));
        let v1 = dir.path().join("v1.conf");
        std::fs::write(&v1, "[registries.insecure]\nregistries = [\"old.lan:5000\"]\n")
            .expect("write");
        assert!(insecure_in(&v1, "old.lan:5000"));
        assert!(!insecure_in(&dir.path().join("missing.conf"), "old.lan:5000"));
        std::fs::write(&v1, "not = [toml").expect("write");
        assert!(!insecure_in(&v1, "old.lan:5000"));
    }
}
