//! Manifest parsing and validation: OCI image manifest and index, Docker schema 2
//! manifest and manifest list, with artifacts (`artifactType`) and `subject`.
//!
//! The stored bytes are always the client's bytes; this module only reads them to learn
//! the media type and every descriptor the manifest points at.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::media_type;

/// Largest manifest accepted, as distribution and the spec's guidance (4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Whether a manifest describes one image (or artifact) or a list of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema 2 manifest: a config and layers (blobs).
    Image,
    /// OCI image index or Docker manifest list: child manifests.
    Index,
}

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image runs on, as index entries and image configs name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Descriptor {
    /// Whether this names a manifest for `wanted` (as [`Platform::matches`] says).
    pub fn is_for(&self, wanted: &Platform) -> bool {
        self.platform.as_ref().is_some_and(|p| p.matches(wanted))
    }
}

impl Platform {
    /// Whether this (a manifest's platform) is what `wanted` asks for: the same OS and
    /// architecture, and the same variant when `wanted` names one.
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && wanted.variant.as_ref().is_none_or(|v| self.variant.as_ref() == Some(v))
    }
}

/// `os/arch` or `os/arch/variant`, as `--platform` flags and build recipes write it.
impl std::str::FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Platform, PlatformError> {
        let word = |w: &str| {
            !w.is_empty()
                && w.len() <= 32
                && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(architecture), variant, None)
                if word(os) && word(architecture) && variant.is_none_or(word) =>
            {
                Ok(Platform {
                    os: os.into(),
                    architecture: architecture.into(),
                    variant: variant.map(String::from),
                })
            }
            _ => Err(PlatformError(text.chars().take(64).collect())),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// A platform that is not `os/arch[/variant]` (the text, cut at 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a platform: os/arch or os/arch/variant, such as linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformError(String);

/// A parsed, validated manifest: what it is and what it refers to.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The media type the manifest is served with.
    pub media_type: String,
    pub kind: ManifestKind,
    /// The config blob of an image manifest.
    pub config: Option<Descriptor>,
    /// Layer blobs of an image manifest (plus `blobs` of legacy artifact manifests).
    pub layers: Vec<Descriptor>,
    /// Child manifests of an index.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, or for an image manifest without one, its config media type
    /// (the value the referrers API reports, per the spec).
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than the 4 MiB limit")]
    TooLarge(usize),
    #[error("media type {0:?} is not a supported manifest type")]
    UnsupportedMediaType(String),
    #[error("manifest is not valid: {0}")]
    Invalid(String),
}

/// The wire shape shared by all four manifest formats; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The kind a known manifest media type denotes, or `None` if it is not one we store.
pub fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => Some(ManifestKind::Image),
        media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

impl Manifest {
    /// Parses and validates `bytes` sent with `content_type` (the request's `Content-Type`,
    /// without parameters; `None` or a generic JSON type when the client sent none).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::Invalid(format!("not a JSON manifest: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::Invalid(
                "schemaVersion must be 2 (schema 1 manifests are not supported)".into(),
            ));
        }
        let media_type = resolve_media_type(content_type, &raw)?;
        let kind = kind_of(&media_type)
            .ok_or_else(|| ManifestError::UnsupportedMediaType(media_type.clone()))?;
        match kind {
            ManifestKind::Image => {
                if raw.config.is_none() || raw.layers.is_none() {
                    return Err(ManifestError::Invalid(
                        "an image manifest needs config and layers".into(),
                    ));
                }
                if raw.manifests.is_some() {
                    return Err(ManifestError::Invalid(
                        "an image manifest cannot carry manifests".into(),
                    ));
                }
            }
            ManifestKind::Index => {
                if raw.manifests.is_none() {
                    return Err(ManifestError::Invalid("an index needs manifests".into()));
                }
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(ManifestError::Invalid(
                        "an index cannot carry config or layers".into(),
                    ));
                }
            }
        }
        let artifact_type = raw.artifact_type.clone().or_else(|| match kind {
            ManifestKind::Image => raw.config.as_ref().map(|c| c.media_type.clone()),
            ManifestKind::Index => None,
        });
        Ok(Manifest {
            media_type,
            kind,
            config: raw.config,
            layers: raw.layers.unwrap_or_default(),
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }

    /// Every blob this manifest needs to exist: the config and the layers.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }
}

/// The declared media type: the body's `mediaType` and the `Content-Type` must agree when
/// both are specific; a missing one is taken from the other, then from the structure.
fn resolve_media_type(
    content_type: Option<&str>,
    raw: &RawManifest,
) -> Result<String, ManifestError> {
    let header = content_type.filter(|ct| !is_generic_json(ct));
    match (header, raw.media_type.as_deref()) {
        (Some(header), Some(body)) if header != body => Err(ManifestError::Invalid(format!(
            "Content-Type {header:?} does not match the manifest's mediaType {body:?}"
        ))),
        (_, Some(body)) => Ok(body.to_owned()),
        (Some(header), None) => Ok(header.to_owned()),
        // OCI makes mediaType optional; fall back to the shape, as distribution does.
        (None, None) if raw.manifests.is_some() => Ok(media_type::OCI_INDEX.to_owned()),
        (None, None) if raw.config.is_some() => Ok(media_type::OCI_MANIFEST.to_owned()),
        (None, None) => Err(ManifestError::Invalid("manifest has no media type".into())),
    }
}

fn is_generic_json(content_type: &str) -> bool {
    matches!(content_type, "application/json" | "application/octet-stream" | "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}",
              "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
              "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":3}}]}}"#,
            digest('a'),
            digest('b')
        )
    }

    #[test]
    fn parses_oci_image() {
        let m = Manifest::parse(
            Some(media_type::OCI_MANIFEST),
            image(media_type::OCI_MANIFEST).as_bytes(),
        )
        .expect("valid");
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blob_references().count(), 2);
        assert_eq!(m.artifact_type.as_deref(), Some(media_type::OCI_CONFIG));
    }

    #[test]
    fn rejects_disagreeing_media_types() {
        let err = Manifest::parse(
            Some(media_type::DOCKER_MANIFEST),
            image(media_type::OCI_MANIFEST).as_bytes(),
        );
        assert!(matches!(err, Err(ManifestError::Invalid(_))));
    }

    #[test]
    fn rejects_unknown_media_type() {
        let err = Manifest::parse(Some("application/x-foo"), image("application/x-foo").as_bytes());
        assert!(matches!(err, Err(ManifestError::UnsupportedMediaType(_))));
    }

    #[test]
    fn takes_media_type_from_header_or_shape() {
        let body = image(media_type::DOCKER_MANIFEST)
            .replace(&format!(r#""mediaType":"{}","#, media_type::DOCKER_MANIFEST), "");
        let m = Manifest::parse(Some(media_type::DOCKER_MANIFEST), body.as_bytes()).expect("valid");
        assert_eq!(m.media_type, media_type::DOCKER_MANIFEST);
        let m = Manifest::parse(None, body.as_bytes()).expect("valid");
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
    }

    #[test]
    fn rejects_bad_json_and_bad_digests() {
        assert!(Manifest::parse(None, b"{").is_err());
        assert!(Manifest::parse(None, b"[]").is_err());
        let bad = image(media_type::OCI_MANIFEST).replace(&digest('a'), "sha256:nothex");
        assert!(Manifest::parse(None, bad.as_bytes()).is_err());
        let schema1 =
            image(media_type::OCI_MANIFEST).replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(Manifest::parse(None, schema1.as_bytes()).is_err());
    }

    #[test]
    fn parses_index_with_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x-sig",
               "manifests":[{{"mediaType":"{}","digest":"{}","size":5}}],
               "subject":{{"mediaType":"{}","digest":"{}","size":7}}}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            digest('c'),
            media_type::OCI_MANIFEST,
            digest('d')
        );
        let m = Manifest::parse(None, body.as_bytes()).expect("valid");
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.subject.map(|s| s.digest.to_string()), Some(digest('d')));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
    }

    #[test]
    fn rejects_oversized() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(Manifest::parse(None, &big), Err(ManifestError::TooLarge(_))));
    }

    #[test]
    fn platforms_are_read_written_and_matched() {
        let arm: Platform = "linux/arm64/v8".parse().expect("with a variant");
        assert_eq!((arm.os.as_str(), arm.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        let any_arm: Platform = "linux/arm64".parse().expect("without");
        assert_eq!(any_arm.to_string(), "linux/arm64");
        assert!(arm.matches(&any_arm), "no variant asked: any");
        assert!(!any_arm.matches(&arm), "a variant asked: that one");
        assert!(!arm.matches(&"linux/amd64".parse().expect("amd64")));
        for bad in ["", "linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/am d64", "a/b\n"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
        let hostile = format!("linux/{}", "x".repeat(1 << 20));
        let refused = hostile.parse::<Platform>().expect_err("too long");
        assert!(refused.to_string().len() < 200, "the message stays short");
    }
}
