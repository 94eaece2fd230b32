//! Image references as people type them (`nginx`, `ghcr.io/owner/repo:v1`,
//! `localhost:5000/x@sha256:…`), normalised by the rules docker and distribution use, so
//! that `nginx:latest` here names the very image `docker pull nginx:latest` pulls.
//!
//! The first `/`-separated component names a registry only when it is `localhost` or
//! contains a `.` or a `:`; otherwise the reference is on Docker Hub (`docker.io`), where
//! a one-component name is in `library/`. `index.docker.io` and `registry-1.docker.io`
//! are Docker Hub's other names. Without a tag or a digest the tag is `latest`.

use std::fmt;
use std::str::FromStr;

use imagehub_oci::{Digest, NameError, Reference, RepoName, Tag};

/// Docker Hub, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// Longest reference accepted (a name of 255, a registry, a tag and a digest fit).
const MAX_REFERENCE_LEN: usize = 512;

/// An image in some registry: `docker.io/library/nginx:latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteReference {
    /// The registry as references name it: `docker.io`, `ghcr.io`, `localhost:5000`.
    pub registry: String,
    pub repository: RepoName,
    /// The tag; `None` only when a digest was given without one.
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

/// Why a reference was refused, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the reference is empty")]
    Empty,
    #[error("the reference is longer than {MAX_REFERENCE_LEN} characters")]
    TooLong,
    #[error("{0:?}: repository names must be lower case")]
    UpperCase(String),
    #[error("{0:?} is not a valid registry host (host, host:port or [ipv6]:port)")]
    InvalidRegistry(String),
    #[error("{input:?}: {source}")]
    Invalid {
        input: String,
        #[source]
        source: NameError,
    },
}

impl RemoteReference {
    /// The host and port the registry's API answers at (Docker Hub's differs from its name).
    pub fn endpoint(&self) -> &str {
        endpoint_of(&self.registry)
    }

    /// What to ask the registry's `/manifests/` for: the digest when there is one.
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => Reference::Digest(digest.clone()),
            (None, Some(tag)) => Reference::Tag(tag.clone()),
            (None, None) => unreachable!("a reference has a tag or a digest"),
        }
    }

    /// The repository's last path component (`nginx` of `docker.io/library/nginx`): the
    /// name an import gives the image by default.
    pub fn short_name(&self) -> &str {
        self.repository.as_str().rsplit('/').next().unwrap_or(self.repository.as_str())
    }
}

/// The host and port a registry's API answers at.
pub fn endpoint_of(registry: &str) -> &str {
    if registry == DOCKER_HUB { DOCKER_HUB_ENDPOINT } else { registry }
}

impl FromStr for RemoteReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() > MAX_REFERENCE_LEN {
            return Err(ReferenceError::TooLong);
        }
        let invalid = |source: NameError| ReferenceError::Invalid { input: input.into(), source };
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                (rest, Some(digest.parse::<Digest>().map_err(|e| invalid(e.into()))?))
            }
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (name, tag) = rest.split_at(last_slash + i);
                (name, Some(tag[1..].parse::<Tag>().map_err(invalid)?))
            }
            None => (rest, None),
        };
        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(host) => normalise_registry(host)?,
            None => DOCKER_HUB.to_string(),
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UpperCase(input.to_string()));
        }
        let path = match registry == DOCKER_HUB && !path.contains('/') {
            true => format!("library/{path}"),
            false => path.to_string(),
        };
        let repository: RepoName = path.parse().map_err(invalid)?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".parse().map_err(invalid)?),
            (tag, _) => tag,
        };
        Ok(RemoteReference { registry, repository, tag, digest })
    }
}

/// Splits `name` into its registry (when its first component names one) and the path.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Checks a registry host and gives Docker Hub's other names its one name.
fn normalise_registry(host: &str) -> Result<String, ReferenceError> {
    let invalid = || ReferenceError::InvalidRegistry(host.to_string());
    let (hostname, port) = match host.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, after) = bracketed.split_once(']').ok_or_else(invalid)?;
            ip.parse::<std::net::Ipv6Addr>().map_err(|_| invalid())?;
            (None, after.strip_prefix(':').map(Some).unwrap_or(Some("")).filter(|p| !p.is_empty()))
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        },
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid());
    }
    if let Some(name) = hostname {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.is_empty() || !name.split('.').all(label_ok) {
            return Err(invalid());
        }
    }
    let host = host.to_ascii_lowercase();
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    })
}

impl fmt::Display for RemoteReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn normalised(input: &str) -> String {
        input.parse::<RemoteReference>().unwrap_or_else(|e| panic!("{input:?}: {e}")).to_string()
    }

    #[track_caller]
    fn refused(input: &str) -> ReferenceError {
        match input.parse::<RemoteReference>() {
            Ok(r) => panic!("{input:?} was accepted as {r}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_seeds_examples() {
        assert_eq!(normalised("docker.io/library/nginx:latest"), "docker.io/library/nginx:latest");
        assert_eq!(normalised("nginx:latest"), "docker.io/library/nginx:latest");
        assert_eq!(normalised("user/nginx:1.20"), "docker.io/user/nginx:1.20");
        assert_eq!(normalised("ghcr.io/owner/repo:latest"), "ghcr.io/owner/repo:latest");
        assert_eq!(normalised("ghcr.io/owner/repo:v1.0.0"), "ghcr.io/owner/repo:v1.0.0");
        assert_eq!(
            normalised("quay.io/prometheus/prometheus:latest"),
            "quay.io/prometheus/prometheus:latest"
        );
        assert_eq!(normalised("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
        assert_eq!(
            normalised("registry.example.com/namespace/image:tag"),
            "registry.example.com/namespace/image:tag"
        );
    }

    #[test]
    fn docker_hub_and_its_other_names() {
        assert_eq!(normalised("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalised("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalised("index.docker.io/nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(
            normalised("registry-1.docker.io/bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        let hub: RemoteReference = "nginx".parse().expect("valid");
        assert_eq!((hub.endpoint(), hub.short_name()), (DOCKER_HUB_ENDPOINT, "nginx"));
        let ghcr: RemoteReference = "ghcr.io/a/b".parse().expect("valid");
        assert_eq!(ghcr.endpoint(), "ghcr.io");
    }

    #[test]
    fn registries_with_ports_and_local_names() {
        assert_eq!(normalised("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalised("localhost/x:1"), "localhost/x:1");
        assert_eq!(normalised("host:5000/ns/img"), "host:5000/ns/img:latest");
        assert_eq!(normalised("127.0.0.1:5001/a/b:v2"), "127.0.0.1:5001/a/b:v2");
        assert_eq!(normalised("[::1]:5000/a:v1"), "[::1]:5000/a:v1");
        // Without a '.', a ':' or "localhost" the first component is a namespace.
        assert_eq!(normalised("myhost/ns/img"), "docker.io/myhost/ns/img:latest");
        assert_eq!(normalised("Registry.Example.com/a"), "registry.example.com/a:latest");
    }

    #[test]
    fn nested_paths_tags_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(normalised("ghcr.io/o/group/sub/img:1.0"), "ghcr.io/o/group/sub/img:1.0");
        assert_eq!(
            normalised(&format!("nginx@{digest}")),
            format!("docker.io/library/nginx@{digest}")
        );
        assert_eq!(
            normalised(&format!("nginx:1.25@{digest}")),
            format!("docker.io/library/nginx:1.25@{digest}")
        );
        let pinned: RemoteReference = format!("a.io/b:c@{digest}").parse().expect("valid");
        assert_eq!(pinned.reference().to_string(), digest, "a digest wins over the tag");
        let tagged: RemoteReference = "a.io/b:V1_Upper".parse().expect("tags may have upper case");
        assert_eq!(tagged.reference().to_string(), "V1_Upper");
    }

    #[test]
    fn clear_refusals() {
        assert!(matches!(
            refused("Nginx:latest"),
            ReferenceError::InvalidRegistry(_) | ReferenceError::UpperCase(_)
        ));
        assert!(matches!(refused("docker.io/Library/nginx"), ReferenceError::UpperCase(_)));
        assert!(refused("ghcr.io/Owner/Repo").to_string().contains("must be lower case"));
        assert_eq!(refused(""), ReferenceError::Empty);
        assert_eq!(refused(&"a".repeat(600)), ReferenceError::TooLong);
        assert!(matches!(refused("nginx:"), ReferenceError::Invalid { .. }));
        assert!(matches!(refused("nginx@sha256:short"), ReferenceError::Invalid { .. }));
        assert!(matches!(refused("host:port/x"), ReferenceError::InvalidRegistry(_)));
        assert!(matches!(refused("bad_host.io/x"), ReferenceError::InvalidRegistry(_)));
        assert!(matches!(refused("a.io//x"), ReferenceError::Invalid { .. }));
        assert!(matches!(refused("a.io/x y"), ReferenceError::Invalid { .. }));
    }
}
