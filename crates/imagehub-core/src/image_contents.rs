//! What the image page shows of one image (a tag or digest): for each platform its
//! manifest digest, size, layers with the command that made each, and config; the
//! artifacts that refer to it; and the manifest itself.

use imagehub_metadata::{Referrer, StoredManifest};
use imagehub_oci::{Descriptor, Digest, Manifest, ManifestKind, Platform, Reference, RepoName};

use crate::image_config::ImageConfig;
use crate::{CoreError, Registry};

/// Platforms of an index read for one page; an index with more is shown truncated.
pub const MAX_PLATFORMS: usize = 32;

/// One image, opened up.
#[derive(Debug)]
pub struct ImageContents {
    /// The manifest the reference names (an image manifest or an index), as stored.
    pub manifest: StoredManifest,
    /// One entry for an image manifest; an index's image children, up to
    /// [`MAX_PLATFORMS`].
    pub platforms: Vec<PlatformContents>,
    /// Children of an index beyond those read.
    pub platforms_left_out: usize,
    /// Manifests whose subject is this image or one of its platforms.
    pub referrers: Vec<Referrer>,
}

/// One platform's image manifest.
#[derive(Debug)]
pub struct PlatformContents {
    /// From the index entry, else from the config.
    pub platform: Option<Platform>,
    pub digest: Digest,
    /// Config and layers.
    pub size: u64,
    pub layers: Vec<LayerView>,
    pub config: ImageConfig,
    /// Why the config could not be read, if it could not.
    pub problem: Option<String>,
}

/// A layer and the build step that made it.
#[derive(Debug)]
pub struct LayerView {
    pub descriptor: Descriptor,
    pub created_by: Option<String>,
}

impl Registry {
    /// The contents of the image `reference` names, or `ManifestUnknown`.
    pub async fn image_contents(
        &self,
        repository: &RepoName,
        reference: &Reference,
    ) -> Result<ImageContents, CoreError> {
        let stored = self.get_manifest(repository, reference).await?;
        let manifest = parse(&stored)?;
        let mut platforms = Vec::new();
        let mut platforms_left_out = 0;
        match manifest.kind {
            ManifestKind::Image => {
                platforms.push(self.platform(&stored.digest, &manifest, None).await?);
            }
            ManifestKind::Index => {
                for (i, child) in manifest.manifests.iter().enumerate() {
                    if i >= MAX_PLATFORMS {
                        platforms_left_out = manifest.manifests.len() - i;
                        break;
                    }
                    let Some(stored) =
                        self.meta.manifest_by_digest(repository, &child.digest).await?
                    else {
                        continue;
                    };
                    let Ok(image) = parse(&stored) else { continue };
                    if image.kind == ManifestKind::Image {
                        let platform = child.platform.clone();
                        platforms.push(self.platform(&child.digest, &image, platform).await?);
                    }
                }
            }
        }
        let mut subjects = vec![stored.digest.clone()];
        if manifest.kind == ManifestKind::Index {
            subjects.extend(platforms.iter().map(|p| p.digest.clone()));
        }
        let referrers = self.meta.referrers_of_any(repository, &subjects, None).await?;
        Ok(ImageContents { manifest: stored, platforms, platforms_left_out, referrers })
    }

    async fn platform(
        &self,
        digest: &Digest,
        manifest: &Manifest,
        platform: Option<Platform>,
    ) -> Result<PlatformContents, CoreError> {
        let (config, problem) = match &manifest.config {
            Some(descriptor) => match self.read_config(descriptor).await? {
                Ok(config) => (config, None),
                Err(problem) => (ImageConfig::default(), Some(problem)),
            },
            None => (ImageConfig::default(), None),
        };
        let platform = platform.or_else(|| {
            (!config.os.is_empty()).then(|| Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
            })
        });
        let commands = config.layer_commands(manifest.layers.len());
        let layers = manifest
            .layers
            .iter()
            .zip(commands)
            .map(|(descriptor, created_by)| LayerView {
                descriptor: descriptor.clone(),
                created_by,
            })
            .collect();
        let size = manifest.config.iter().chain(&manifest.layers).map(|d| d.size).sum();
        Ok(PlatformContents { platform, digest: digest.clone(), size, layers, config, problem })
    }
}

/// A stored manifest parsed again; it was validated when pushed, so a failure here is
/// the registry's fault.
fn parse(stored: &StoredManifest) -> Result<Manifest, CoreError> {
    Manifest::parse(Some(&stored.media_type), &stored.content)
        .map_err(|e| CoreError::Internal(Box::new(e)))
}
