//! An image's page (`/r/{name}/-/{tag or digest}`): for each platform its digest, size,
//! layers with the build step that made each, and config (environment values behind a
//! click, as they may hold what their author did not mean to publish widely); the
//! artifacts that refer to it, grouped by kind; and the manifest as pretty JSON. Whoever
//! may not pull the repository gets the page a missing image gets.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::HeaderMap;
use axum::response::Response;
use imagehub_auth::Action;
use imagehub_core::{Access, CoreError, ImageContents, PlatformContents, Referrer};
use imagehub_oci::{Reference, RepoName};

use super::format::{When, bytes, now, platform_label, short_digest, when_rfc3339};
use super::session::Visitor;
use super::{Chrome, PageError, host, render};
use crate::api::ApiState;

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    chrome: Chrome,
    name: String,
    repository_href: String,
    /// The tag or digest as the visitor named it.
    reference: String,
    /// `name:tag` or `name@digest`.
    pull: String,
    host: String,
    digest: String,
    media_type: String,
    platforms: Vec<PlatformView>,
    platforms_left_out: usize,
    referrers: Vec<ReferrerGroup>,
    manifest_json: String,
}

struct PlatformView {
    label: String,
    digest: String,
    size: String,
    layers: Vec<LayerRow>,
    created: Option<When>,
    entrypoint: Option<String>,
    cmd: Option<String>,
    working_dir: Option<String>,
    user: Option<String>,
    ports: Vec<String>,
    labels: Vec<(String, String)>,
    env: Vec<(String, String)>,
    problem: Option<String>,
}

struct LayerRow {
    short_digest: String,
    digest: String,
    size: String,
    media_type: String,
    created_by: Option<String>,
}

struct ReferrerGroup {
    kind: String,
    items: Vec<ReferrerRow>,
}

struct ReferrerRow {
    short_digest: String,
    digest: String,
    artifact_type: String,
    size: String,
}

/// `GET /r/{name}/-/{reference}`, dispatched from the repository route (a repository
/// name never has a `-` component, so the split is unambiguous).
pub async fn image(
    state: &ApiState,
    visitor: Visitor,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let not_found = || PageError::not_found(format!("There is no image {name}:{reference}."));
    let repository: RepoName = name.parse().map_err(|_| not_found())?;
    let parsed: Reference = reference.parse().map_err(|_| not_found())?;
    if state.accounts.authorize(&visitor.caller, &repository, Action::Pull).await?
        != Access::Allowed
    {
        return Err(not_found());
    }
    let contents = match state.registry.image_contents(&repository, &parsed).await {
        Ok(contents) => contents,
        Err(CoreError::ManifestUnknown(_) | CoreError::NameUnknown(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let now = now();
    let pull = match &parsed {
        Reference::Tag(tag) => format!("{repository}:{tag}"),
        Reference::Digest(digest) => format!("{repository}@{digest}"),
    };
    let page = ImagePage {
        chrome: visitor.chrome(""),
        repository_href: format!("/r/{repository}"),
        name: repository.to_string(),
        reference: reference.to_string(),
        pull,
        host: host(state, headers),
        digest: contents.manifest.digest.to_string(),
        media_type: contents.manifest.media_type.clone(),
        platforms: contents.platforms.iter().map(|p| PlatformView::new(p, now)).collect(),
        platforms_left_out: contents.platforms_left_out,
        referrers: group_referrers(&contents.referrers),
        manifest_json: pretty(&contents),
    };
    Ok(render(&page))
}

impl PlatformView {
    fn new(platform: &PlatformContents, now: i64) -> PlatformView {
        let label = match &platform.platform {
            Some(p) => platform_label(&p.os, &p.architecture, p.variant.as_deref()),
            None => "artifact".to_string(),
        };
        let run = platform.config.config.clone().unwrap_or_default();
        let env = run
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (pair, String::new()),
            })
            .collect();
        PlatformView {
            label,
            digest: platform.digest.to_string(),
            size: bytes(platform.size),
            layers: platform.layers.iter().map(LayerRow::new).collect(),
            created: platform.config.created.as_deref().and_then(|at| when_rfc3339(at, now)),
            entrypoint: run.entrypoint.map(|args| shell_words(&args)),
            cmd: run.cmd.map(|args| shell_words(&args)),
            working_dir: run.working_dir.filter(|d| !d.is_empty()),
            user: run.user.filter(|u| !u.is_empty()),
            ports: run.exposed_ports.map(|p| p.into_keys().collect()).unwrap_or_default(),
            labels: run.labels.map(|l| l.into_iter().collect()).unwrap_or_default(),
            env,
            problem: platform.problem.clone(),
        }
    }
}

impl LayerRow {
    fn new(layer: &imagehub_core::LayerView) -> LayerRow {
        let digest = layer.descriptor.digest.to_string();
        LayerRow {
            short_digest: short_digest(&digest),
            digest,
            size: bytes(layer.descriptor.size),
            media_type: layer.descriptor.media_type.clone(),
            created_by: layer.created_by.clone(),
        }
    }
}

/// Arguments as one line, quoted where a shell would need it.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| match arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
            true => format!("{arg:?}"),
            false => arg.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Referrers by what they are to a reader: signatures, SBOMs, attestations, or their
/// artifact type as it is.
fn group_referrers(referrers: &[Referrer]) -> Vec<ReferrerGroup> {
    let mut groups: BTreeMap<String, Vec<ReferrerRow>> = BTreeMap::new();
    for referrer in referrers {
        let artifact_type = referrer.artifact_type.clone().unwrap_or_default();
        let digest = referrer.digest.to_string();
        groups.entry(referrer_kind(&artifact_type)).or_default().push(ReferrerRow {
            short_digest: short_digest(&digest),
            digest,
            artifact_type,
            size: bytes(referrer.size),
        });
    }
    groups.into_iter().map(|(kind, items)| ReferrerGroup { kind, items }).collect()
}

fn referrer_kind(artifact_type: &str) -> String {
    let t = artifact_type.to_ascii_lowercase();
    let kind = if ["signature", "cosign", "notary", "sigstore"].iter().any(|s| t.contains(s)) {
        "Signatures"
    } else if ["sbom", "spdx", "cyclonedx", "syft"].iter().any(|s| t.contains(s)) {
        "SBOMs"
    } else if ["in-toto", "intoto", "attestation", "provenance", "vex"]
        .iter()
        .any(|s| t.contains(s))
    {
        "Attestations"
    } else if t.is_empty() {
        "Other artifacts"
    } else {
        return artifact_type.to_string();
    };
    kind.to_string()
}

/// The manifest re-indented for reading; the bytes served to clients are untouched.
fn pretty(contents: &ImageContents) -> String {
    serde_json::from_slice::<serde_json::Value>(&contents.manifest.content)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| String::from_utf8_lossy(&contents.manifest.content).into_owned())
}
