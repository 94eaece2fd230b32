//! `docker save` tarballs (`docker-archive:FILE[:REPO:TAG]`): `manifest.json` naming a
//! config and layer tars. Pushing one builds a Docker v2 manifest over its files (layers
//! as they are, gzipped or not); pulling into one writes a single-platform image as
//! `docker load` reads it. The format is a JSON file and plain tar members; written by
//! hand, as no maintained crate reads and writes it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use imagehub_client::{BlobStream, FetchedManifest};
use imagehub_oci::Digest;
use serde_json::{Value, json};

use super::Failure;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The most of `manifest.json` read: it names a few files per image.
const MAX_JSON: u64 = 16 << 20;

/// A blob of the archive: its file, digest and size.
pub struct ArchiveBlob {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// An image read from an archive: the manifest built over it and its blobs.
pub struct ArchiveImage {
    pub manifest: FetchedManifest,
    pub blobs: Vec<ArchiveBlob>,
    pub _unpacked: tempfile::TempDir,
}

fn fail(path: &Path, what: impl std::fmt::Display) -> Failure {
    Failure::new(format!("{}: {what}", path.display()))
}

/// Reads the image of `file` tagged `name` (`repo:tag`), or its only one.
pub fn read(file: &Path, name: Option<&str>) -> Result<ArchiveImage, Failure> {
    let unpacked = tempfile::tempdir().map_err(|e| fail(file, e))?;
    super::unpack::unpack(file, unpacked.path())?;
    let manifest: Value = super::read_small(&unpacked.path().join("manifest.json"), MAX_JSON)
        .map_err(|e| fail(file, format!("manifest.json: {e}")))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| fail(file, format!("manifest.json: {e}")))
        })?;
    let images = manifest.as_array().cloned().unwrap_or_default();
    let named = |image: &&Value| {
        name.is_none_or(|n| {
            image["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t.as_str().is_some_and(|t| t == n || t.ends_with(&format!("/{n}"))))
        })
    };
    let chosen: Vec<&Value> = images.iter().filter(named).collect();
    let image = match chosen.as_slice() {
        [one] => *one,
        [] => return Err(Failure { code: super::NOT_FOUND, ..fail(file, "holds no such image") }),
        _ => {
            return Err(fail(
                file,
                "holds several images: name one with docker-archive:FILE:REPO:TAG",
            ));
        }
    };
    let member = |value: &Value| -> Result<ArchiveBlob, Failure> {
        let relative = value.as_str().ok_or_else(|| fail(file, "manifest.json names no file"))?;
        let path = unpacked.path().join(relative);
        // Only files were unpacked, each inside the directory; a name must stay there too.
        if !path.starts_with(unpacked.path()) || relative.contains("..") {
            return Err(fail(file, format!("{relative:?} is outside the archive")));
        }
        let (digest, size) = digest_of_file(&path)?;
        Ok(ArchiveBlob { path, digest, size })
    };
    let config = member(&image["Config"])?;
    let layers: Vec<ArchiveBlob> =
        image["Layers"].as_array().into_iter().flatten().map(member).collect::<Result<_, _>>()?;
    let mut descriptors = Vec::new();
    for layer in &layers {
        let mut magic = [0u8; 2];
        let gzipped =
            std::fs::File::open(&layer.path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
                && magic == [0x1f, 0x8b];
        let media_type = if gzipped { LAYER_GZIP } else { LAYER_TAR };
        descriptors.push(json!({"mediaType": media_type, "digest": layer.digest.to_string(), "size": layer.size}));
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config.digest.to_string(), "size": config.size},
        "layers": descriptors,
    });
    let manifest = FetchedManifest::new(bytes::Bytes::from(body.to_string()), DOCKER_MANIFEST);
    let mut blobs = vec![config];
    blobs.extend(layers);
    Ok(ArchiveImage { manifest, blobs, _unpacked: unpacked })
}

fn digest_of_file(path: &Path) -> Result<(Digest, u64), Failure> {
    let mut file = std::fs::File::open(path).map_err(|e| fail(path, e))?;
    let mut hasher = imagehub_oci::Hasher::new(imagehub_oci::Algorithm::Sha256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0;
    loop {
        let read = file.read(&mut buffer).map_err(|e| fail(path, e))?;
        if read == 0 {
            return Ok((hasher.finish(), size));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}

/// Builds a docker archive of one image in a temporary directory, packed by `finish`.
pub struct ArchiveWriter {
    dir: tempfile::TempDir,
    layers: Vec<String>,
    config: Option<String>,
}

impl ArchiveWriter {
    pub fn new() -> Result<ArchiveWriter, Failure> {
        let dir =
            tempfile::tempdir().map_err(|e| Failure::new(format!("a temporary directory: {e}")))?;
        Ok(ArchiveWriter { dir, layers: Vec::new(), config: None })
    }

    /// Writes a blob (verified as it streams) as the config or the next layer;
    /// `on_bytes` hears of each piece.
    pub async fn blob(
        &mut self,
        digest: &Digest,
        mut stream: BlobStream,
        config: bool,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(), Failure> {
        let name = format!("{}.{}", digest.hex(), if config { "json" } else { "tar" });
        let path = self.dir.path().join(&name);
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(&path).await.map_err(|e| fail(&path, e))?,
        );
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Failure::from_client(e, ""))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|e| fail(&path, e))?;
            on_bytes(chunk.len() as u64);
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(|e| fail(&path, e))?;
        match config {
            true => self.config = Some(name),
            false => self.layers.push(name),
        }
        Ok(())
    }

    /// Writes `manifest.json` naming the image `repo_tag` and packs the archive into
    /// `file` (written whole, then renamed).
    pub fn finish(self, file: &Path, repo_tag: &str) -> Result<(), Failure> {
        let manifest =
            json!([{"Config": self.config, "RepoTags": [repo_tag], "Layers": self.layers}]);
        std::fs::write(self.dir.path().join("manifest.json"), manifest.to_string())
            .map_err(|e| fail(file, e))?;
        let partial = file.with_extension("partial");
        let tar = std::fs::File::create(&partial).map_err(|e| fail(file, e))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(tar));
        builder.append_dir_all(".", self.dir.path()).map_err(|e| fail(file, e))?;
        builder
            .into_inner()
            .map_err(|e| fail(file, e))?
            .into_inner()
            .map_err(|e| fail(file, e.into_error()))?;
        std::fs::rename(&partial, file).map_err(|e| fail(file, e))
    }
}
