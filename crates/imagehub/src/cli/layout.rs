//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/ALG/HEX`), as skopeo,
//! buildah and umoci write them: `imagehub push oci:DIR[:TAG]` reads one,
//! `imagehub pull … --output oci:DIR` writes one. The format is three small files and
//! a directory of blobs; written by hand (no maintained crate reads and writes it
//! both ways without pulling in a runtime of its own).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use imagehub_client::{BlobStream, FetchedManifest};
use imagehub_oci::Digest;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::Failure;

/// The annotation naming a manifest of `index.json` (its tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The most of `index.json` read (it lists the layout's images).
const MAX_INDEX: u64 = 64 << 20;
/// The most of a manifest read: registries refuse larger ones (distribution's limit).
const MAX_MANIFEST: u64 = 4 << 20;

pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.algorithm().as_str()).join(digest.hex())
    }

    fn failure(&self, what: impl std::fmt::Display) -> Failure {
        Failure::new(format!("{}: {what}", self.dir.display()))
    }

    fn index(&self) -> Result<Value, Failure> {
        let path = self.dir.join("index.json");
        match super::read_small(&path, MAX_INDEX) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| self.failure(format!("index.json: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}),
            ),
            Err(e) => Err(self.failure(e)),
        }
    }

    /// The manifest named `tag`, or the layout's only one: its descriptor.
    pub fn find(&self, tag: Option<&str>) -> Result<Value, Failure> {
        let index = self.index()?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        let named = |d: &&Value| tag.is_none_or(|t| d["annotations"][REF_NAME].as_str() == Some(t));
        let found: Vec<&Value> = manifests.iter().filter(named).collect();
        match (found.as_slice(), tag) {
            ([one], _) => Ok((*one).clone()),
            ([], Some(tag)) => Err(Failure {
                code: super::NOT_FOUND,
                ..self.failure(format!("no image tagged {tag}"))
            }),
            ([], None) => Err(self.failure("holds no image")),
            (_, _) => Err(self.failure("holds several images: name one with oci:DIR:TAG")),
        }
    }

    /// A blob's bytes (a manifest), read whole.
    pub fn read_manifest(&self, descriptor: &Value) -> Result<FetchedManifest, Failure> {
        let digest: Digest =
            descriptor["digest"].as_str().unwrap_or("").parse().map_err(|e| self.failure(e))?;
        let bytes = super::read_small(&self.blob_path(&digest), MAX_MANIFEST)
            .map_err(|e| self.failure(format!("{digest}: {e}")))?;
        let media_type = descriptor["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json");
        let manifest = FetchedManifest::new(Bytes::from(bytes), media_type);
        if manifest.digest != digest {
            return Err(self.failure(format!("{digest} holds other bytes ({})", manifest.digest)));
        }
        Ok(manifest)
    }

    /// Starts a layout (its `oci-layout` file) if the directory holds none.
    pub fn create(&self) -> Result<(), Failure> {
        std::fs::create_dir_all(self.dir.join("blobs")).map_err(|e| self.failure(e))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            std::fs::write(&marker, r#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| self.failure(e))?;
        }
        Ok(())
    }

    pub fn write_manifest(&self, manifest: &FetchedManifest) -> Result<(), Failure> {
        write_blob_bytes(&self.blob_path(&manifest.digest), &manifest.bytes)
            .map_err(|e| self.failure(e))
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Writes a blob from the (verifying) stream; `on_bytes` hears of each piece.
    pub async fn write_blob(
        &self,
        digest: &Digest,
        mut stream: BlobStream,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(), Failure> {
        let path = self.blob_path(digest);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| self.failure(e))?;
        let partial = path.with_extension("partial");
        let file = tokio::fs::File::create(&partial).await.map_err(|e| self.failure(e))?;
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Failure::from_client(e, ""))?;
            file.write_all(&chunk).await.map_err(|e| self.failure(e))?;
            on_bytes(chunk.len() as u64);
        }
        // Flushed, not synced: a pulled layout is a copy that can be pulled again, and
        // the rename below still keeps a half-written blob from taking the name.
        file.flush().await.map_err(|e| self.failure(e))?;
        // Only verified, whole blobs take their name.
        tokio::fs::rename(&partial, &path).await.map_err(|e| self.failure(e))
    }

    /// Names `manifest` `tag` in `index.json` (replacing what had that name).
    pub fn tag(&self, manifest: &FetchedManifest, tag: Option<&str>) -> Result<(), Failure> {
        let mut index = self.index()?;
        let mut descriptor = json!({"mediaType": manifest.media_type, "digest": manifest.digest.to_string(), "size": manifest.bytes.len()});
        if let Some(tag) = tag {
            descriptor["annotations"] = json!({REF_NAME: tag});
        }
        let manifests = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| self.failure("index.json has no manifests"))?;
        manifests.retain(|d| {
            tag.is_none_or(|t| d["annotations"][REF_NAME].as_str() != Some(t))
                && d["digest"] != descriptor["digest"]
        });
        manifests.push(descriptor);
        let text = serde_json::to_vec_pretty(&index).unwrap_or_default();
        write_blob_bytes(&self.dir.join("index.json"), &text).map_err(|e| self.failure(e))
    }
}

/// Writes a file whole: a temporary file renamed over it.
fn write_blob_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, path)
}
