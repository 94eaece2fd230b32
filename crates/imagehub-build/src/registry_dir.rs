//! The `registry/` folder of a cluster image: the images the app deploys, saved as the
//! filesystem tree of a CNCF distribution registry (`docker/registry/v2/blobs/…`,
//! `repositories/NAME/_manifests/…`, `_layers/…`), which `sealos run` serves as is (and
//! so does Debian's `docker-registry` pointed at the folder). Names lose their registry
//! host (`docker.io/library/nginx:1.23.1` → `library/nginx:1.23.1`), as sealos saves
//! them. The layout is distribution's storage driver's; written by hand as no crate
//! writes it.

use std::path::{Path, PathBuf};

use futures_util::{StreamExt as _, TryStreamExt as _};
use imagehub_client::{BlobStream, Credentials, FetchedManifest, RegistryClient, Target};
use imagehub_oci::{Descriptor, Digest, Manifest, ManifestKind, Platform, Reference};
use tokio::io::AsyncWriteExt as _;

use crate::{BuildError, FoundImage};

/// A `registry/` folder.
pub struct RegistryDir {
    root: PathBuf,
}

/// What saving the images did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// Images fetched now.
    pub saved: usize,
    /// Images the folder already had under their tag.
    pub present: usize,
    /// Blobs downloaded (the others were in the folder).
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
    /// Blobs copied from [`LocalBlobs`] instead of their registry.
    pub blobs_local: usize,
}

/// Blobs a save may take from nearby instead of their registry: the hub's own store,
/// when the hub builds. What it gives is checked against the digest all the same.
pub trait LocalBlobs: Sync {
    /// The blob `digest` for reading, when it is held here.
    fn open<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> futures_util::future::BoxFuture<'a, Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>;
}

impl RegistryDir {
    pub fn new(root: impl Into<PathBuf>) -> RegistryDir {
        RegistryDir { root: root.into() }
    }

    fn v2(&self) -> PathBuf {
        self.root.join("docker/registry/v2")
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.v2()
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn repository(&self, name: &str) -> PathBuf {
        self.v2().join("repositories").join(name)
    }

    fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The digest tagged `tag` in repository `name`, if the folder has it whole.
    pub fn tagged(&self, name: &str, tag: &str) -> Option<Digest> {
        let link = self.repository(name).join("_manifests/tags").join(tag).join("current/link");
        let digest: Digest = std::fs::read_to_string(link).ok()?.trim().parse().ok()?;
        self.has_blob(&digest).then_some(digest)
    }

    /// Writes a file whole: a temporary file of its own, renamed into place.
    async fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
        let parent = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent).await.map_err(|e| BuildError::io(parent, e))?;
        let temporary = temporary_beside(path);
        tokio::fs::write(&temporary, bytes).await.map_err(|e| BuildError::io(&temporary, e))?;
        tokio::fs::rename(&temporary, path).await.map_err(|e| BuildError::io(path, e))
    }

    async fn write_stream(
        &self,
        digest: &Digest,
        mut stream: BlobStream,
    ) -> Result<u64, BuildError> {
        let path = self.blob_path(digest);
        let (temporary, mut file) = create_beside(&path).await?;
        let mut written = 0;
        let result: Result<(), BuildError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| BuildError::Image {
                    image: digest.to_string(),
                    source_of: "a blob".into(),
                    error: Box::new(error),
                })?;
                file.write_all(&chunk).await.map_err(|e| BuildError::io(&temporary, e))?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(|e| BuildError::io(&temporary, e))
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(e);
        }
        // Only verified, whole blobs take their name (the stream checks the digest).
        tokio::fs::rename(&temporary, &path).await.map_err(|e| BuildError::io(&path, e))?;
        Ok(written)
    }

    /// Copies the blob from `local` when it has it and its bytes match the digest;
    /// whether it did.
    async fn copy_local(
        &self,
        local: &dyn LocalBlobs,
        digest: &Digest,
    ) -> Result<bool, BuildError> {
        use tokio::io::AsyncReadExt as _;
        let Some(mut reader) = local.open(digest).await else { return Ok(false) };
        let path = self.blob_path(digest);
        let (temporary, mut file) = create_beside(&path).await?;
        let mut hasher = imagehub_oci::Hasher::new(digest.algorithm());
        let mut buffer = vec![0u8; 1 << 20];
        let copied: std::io::Result<()> = async {
            loop {
                let n = reader.read(&mut buffer).await?;
                if n == 0 {
                    return file.flush().await;
                }
                hasher.update(&buffer[..n]);
                file.write_all(&buffer[..n]).await?;
            }
        }
        .await;
        if copied.is_err() || hasher.finish() != *digest {
            // Fetched from the registry instead.
            let _ = tokio::fs::remove_file(&temporary).await;
            return Ok(false);
        }
        tokio::fs::rename(&temporary, &path).await.map_err(|e| BuildError::io(&path, e))?;
        Ok(true)
    }

    async fn link(&self, path: PathBuf, digest: &Digest) -> Result<(), BuildError> {
        self.write(&path, digest.to_string().as_bytes()).await
    }

    async fn link_layer(&self, name: &str, digest: &Digest) -> Result<(), BuildError> {
        let path = self
            .repository(name)
            .join("_layers")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
            .join("link");
        self.link(path, digest).await
    }

    /// Stores a manifest as a blob with its revision link.
    async fn put_manifest(&self, name: &str, manifest: &FetchedManifest) -> Result<(), BuildError> {
        let digest = &manifest.digest;
        if !self.has_blob(digest) {
            self.write(&self.blob_path(digest), &manifest.bytes).await?;
        }
        let revision = self
            .repository(name)
            .join("_manifests/revisions")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
            .join("link");
        self.link(revision, digest).await
    }

    async fn put_tag(&self, name: &str, tag: &str, digest: &Digest) -> Result<(), BuildError> {
        let tags = self.repository(name).join("_manifests/tags").join(tag);
        let index =
            tags.join("index").join(digest.algorithm().as_str()).join(digest.hex()).join("link");
        self.link(index, digest).await?;
        self.link(tags.join("current/link"), digest).await
    }
}

/// A new temporary file beside `path` (its folder created), to be renamed into place.
async fn create_beside(
    path: &Path,
) -> Result<(PathBuf, tokio::io::BufWriter<tokio::fs::File>), BuildError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent).await.map_err(|e| BuildError::io(parent, e))?;
    let temporary = temporary_beside(path);
    let file =
        tokio::fs::File::create(&temporary).await.map_err(|e| BuildError::io(&temporary, e))?;
    Ok((temporary, tokio::io::BufWriter::with_capacity(1 << 20, file)))
}

fn temporary_beside(path: &Path) -> PathBuf {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("tmp-{}-{n}", std::process::id()))
}

/// How to save the images.
pub struct SaveOptions<'a> {
    /// The platform whose single-platform manifest goes under each tag.
    pub platform: &'a Platform,
    /// Keep whole indexes (every platform) instead.
    pub all: bool,
    /// Images fetched at once.
    pub parallel: usize,
    /// The credentials for an image's registry.
    pub credentials: &'a (dyn Fn(&imagehub_client::RemoteReference) -> Credentials + Sync),
    /// Where blobs may be found before their registry is asked.
    pub local: Option<&'a dyn LocalBlobs>,
}

/// Saves `images` into `dir`: each image's manifest (for `options.platform`, or the
/// whole index) under its tag, its blobs once however many images share them. Images
/// the folder already has under their tag are not fetched again.
pub async fn save_images(
    client: &RegistryClient,
    images: &[FoundImage],
    dir: &RegistryDir,
    options: &SaveOptions<'_>,
) -> Result<SaveReport, BuildError> {
    let reports: Vec<SaveReport> = futures_util::stream::iter(images)
        .map(|image| save_image(client, image, dir, options))
        .buffer_unordered(options.parallel.max(1))
        .try_collect()
        .await?;
    let mut total = SaveReport::default();
    for report in reports {
        total.saved += report.saved;
        total.present += report.present;
        total.blobs_fetched += report.blobs_fetched;
        total.bytes_fetched += report.bytes_fetched;
        total.blobs_local += report.blobs_local;
    }
    Ok(total)
}

async fn save_image(
    client: &RegistryClient,
    image: &FoundImage,
    dir: &RegistryDir,
    options: &SaveOptions<'_>,
) -> Result<SaveReport, BuildError> {
    let reference = &image.reference;
    let name = reference.repository.as_str();
    let tag = reference.tag.as_ref().map(ToString::to_string);
    let mut report = SaveReport::default();
    if let Some(tag) = &tag
        && dir.tagged(name, tag).is_some()
        && reference.digest.is_none()
    {
        report.present = 1;
        return Ok(report);
    }
    let fail = |error| BuildError::Image {
        image: reference.to_string(),
        source_of: image.sources.join(", "),
        error: Box::new(error),
    };
    let credentials = (options.credentials)(reference);
    let target = Target::of(reference, &credentials);
    let top = client.manifest(&target, &reference.reference()).await.map_err(fail)?;
    let source = BlobSource { client, target: &target, local: options.local, fail: &fail };
    let parsed = parse(&top).map_err(fail)?;
    let mut chosen = top.clone();
    if parsed.kind == ManifestKind::Index {
        let children: Vec<&Descriptor> = match options.all {
            true => parsed.manifests.iter().collect(),
            false => {
                let child =
                    parsed.manifests.iter().find(|c| c.is_for(options.platform)).ok_or_else(
                        || BuildError::Recipe {
                            message: format!(
                                "{reference} (from {}) has no image for {}",
                                image.sources.join(", "),
                                options.platform
                            ),
                        },
                    )?;
                vec![child]
            }
        };
        for child in children {
            let fetched = client
                .manifest(&target, &Reference::Digest(child.digest.clone()))
                .await
                .map_err(fail)?;
            save_blobs(&source, dir, name, &fetched, &mut report).await?;
            dir.put_manifest(name, &fetched).await?;
            if !options.all {
                chosen = fetched;
            }
        }
        if options.all {
            dir.put_manifest(name, &top).await?;
        }
    } else {
        save_blobs(&source, dir, name, &top, &mut report).await?;
        dir.put_manifest(name, &top).await?;
    }
    if let Some(tag) = &tag {
        dir.put_tag(name, tag, &chosen.digest).await?;
    }
    report.saved = 1;
    Ok(report)
}

/// Where an image's blobs come from.
struct BlobSource<'a> {
    client: &'a RegistryClient,
    target: &'a Target<'a>,
    local: Option<&'a dyn LocalBlobs>,
    /// Names the image in a failure.
    fail: &'a (dyn Fn(imagehub_client::ClientError) -> BuildError + Sync),
}

async fn save_blobs(
    source: &BlobSource<'_>,
    dir: &RegistryDir,
    name: &str,
    manifest: &FetchedManifest,
    report: &mut SaveReport,
) -> Result<(), BuildError> {
    let BlobSource { client, target, local, fail } = *source;
    let parsed = parse(manifest).map_err(fail)?;
    for blob in parsed.blob_references() {
        let foreign =
            blob.media_type.contains("foreign") || blob.media_type.contains("nondistributable");
        if foreign {
            continue;
        }
        let local = match local {
            Some(local) if !dir.has_blob(&blob.digest) => {
                dir.copy_local(local, &blob.digest).await?
            }
            _ => false,
        };
        report.blobs_local += usize::from(local);
        if !dir.has_blob(&blob.digest) {
            let stream = client.blob(target, &blob.digest, Some(blob.size)).await.map_err(fail)?;
            report.bytes_fetched += dir.write_stream(&blob.digest, stream).await?;
            report.blobs_fetched += 1;
        }
        dir.link_layer(name, &blob.digest).await?;
    }
    Ok(())
}

fn parse(manifest: &FetchedManifest) -> Result<Manifest, imagehub_client::ClientError> {
    Manifest::parse(Some(&manifest.media_type), &manifest.bytes).map_err(|e| {
        imagehub_client::ClientError::Protocol {
            registry: String::new(),
            message: format!("manifest {}: {e}", manifest.digest),
        }
    })
}
