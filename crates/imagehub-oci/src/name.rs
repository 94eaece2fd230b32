//! Repository names, tags and references, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Longest repository name accepted, as distribution does (its path component limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag, from the spec's tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

/// Why a name, tag or reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name {0:?} does not match the OCI name grammar")]
    InvalidName(String),
    #[error(
        "account name {0:?} must be 1 to 64 lower-case letters and digits, joined by '.', '_', '__' or '-'"
    )]
    InvalidAccountName(String),
    #[error("tag {0:?} does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
}

/// A repository name such as `library/nginx`, checked against the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace (user or organization) the repository belongs to: its first
    /// component when there are several. `alpine` has none (site admins manage such
    /// top-level names); `acme/tools/cli` belongs to `acme`.
    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('/').map(|(first, _)| first)
    }
}

/// Longest user or organization name.
pub const MAX_ACCOUNT_NAME_LEN: usize = 64;

/// A user or organization name: one lower-case component of the repository name
/// grammar, so that it can head a repository name (`alice/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(String);

impl AccountName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_ACCOUNT_NAME_LEN || !is_path_component(s) {
            return Err(NameError::InvalidAccountName(s.to_owned()));
        }
        Ok(AccountName(s.to_owned()))
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(is_path_component) {
            return Err(NameError::InvalidName(s.to_owned()));
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// One `/`-separated component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run_start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[sep_start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag such as `latest` or `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let first_ok = bytes.first().is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok =
            bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !first_ok || !rest_ok || s.len() > MAX_TAG_LEN {
            return Err(NameError::InvalidTag(s.to_owned()));
        }
        Ok(Tag(s.to_owned()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A tag can never contain ':', so a colon means the client meant a digest.
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// An image as people write it on this hub: `org/repo:tag`, `org/repo@digest`, or
/// `org/repo` (its latest image). The registry host is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    pub repository: RepoName,
    /// `None` for the repository's latest image.
    pub reference: Option<Reference>,
}

impl FromStr for ImageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A digest follows '@'; a tag follows the last ':' when no '/' comes after it
        // (a ':' before a '/' would be a registry port, which names are not given with).
        let (repository, reference) = if let Some((repository, digest)) = s.split_once('@') {
            (repository, Some(Reference::Digest(digest.parse()?)))
        } else if let Some((repository, tag)) =
            s.rsplit_once(':').filter(|(_, tag)| !tag.contains('/'))
        {
            (repository, Some(Reference::Tag(tag.parse()?)))
        } else {
            (s, None)
        };
        Ok(ImageName { repository: repository.parse()?, reference })
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            None => self.repository.fmt(f),
            Some(Reference::Tag(tag)) => write!(f, "{}:{tag}", self.repository),
            Some(Reference::Digest(digest)) => write!(f, "{}@{digest}", self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_image(input: &str, expected: Option<(&str, Option<&str>)>) {
        let parsed = input.parse::<ImageName>().ok();
        let got = parsed
            .as_ref()
            .map(|i| (i.repository.as_str(), i.reference.as_ref().map(ToString::to_string)));
        let expected = expected.map(|(repo, reference)| (repo, reference.map(str::to_string)));
        assert_eq!(got, expected, "{input:?}");
        if let Some(parsed) = parsed {
            assert_eq!(parsed.to_string(), input, "{input:?} prints back as written");
        }
    }

    #[test]
    fn image_names() {
        let digest = format!("sha256:{}", "0".repeat(64));
        check_image("labring/mysql:v8.0.25", Some(("labring/mysql", Some("v8.0.25"))));
        check_image("labring/mysql", Some(("labring/mysql", None)));
        check_image(&format!("ns/team/app@{digest}"), Some(("ns/team/app", Some(&digest))));
        check_image("nginx:1", Some(("nginx", Some("1"))));
        check_image("Bad/Name:1", None);
        check_image("a/b:bad tag", None);
        check_image("a/b@sha256:nothex", None);
        check_image("a/b:", None);
        check_image(":tag", None);
        check_image("", None);
    }

    fn check_name(input: &str, ok: bool) {
        assert_eq!(input.parse::<RepoName>().is_ok(), ok, "{input:?}");
    }

    fn check_tag(input: &str, ok: bool) {
        assert_eq!(input.parse::<Tag>().is_ok(), ok, "{input:?}");
    }

    #[test]
    fn repo_names() {
        check_name("nginx", true);
        check_name("library/nginx", true);
        check_name("a/b/c/d", true);
        check_name("my-app", true);
        check_name("my--app", true);
        check_name("my_app", true);
        check_name("my__app", true);
        check_name("my.app", true);
        check_name("a0.b1-c2_d3", true);
        check_name("my___app", false);
        check_name("my..app", false);
        check_name("my._app", false);
        check_name("-app", false);
        check_name("app-", false);
        check_name("App", false);
        check_name("a//b", false);
        check_name("/a", false);
        check_name("a/", false);
        check_name("", false);
        check_name("a b", false);
        check_name(&"a".repeat(256), false);
        check_name(&"a".repeat(255), true);
    }

    #[test]
    fn tags() {
        check_tag("latest", true);
        check_tag("v1.2.3-rc_1", true);
        check_tag("_x", true);
        check_tag(".x", false);
        check_tag("-x", false);
        check_tag("", false);
        check_tag("a:b", false);
        check_tag(&"a".repeat(128), true);
        check_tag(&"a".repeat(129), false);
    }

    #[test]
    fn references() {
        assert!(matches!("latest".parse::<Reference>(), Ok(Reference::Tag(_))));
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(matches!(digest.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!(matches!("sha256:xyz".parse::<Reference>(), Err(NameError::InvalidDigest(_))));
    }
}
