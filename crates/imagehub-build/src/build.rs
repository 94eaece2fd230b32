//! A build: the recipe's images saved into `registry/`, then for each platform the
//! Kubefile applied over its base (layers from `COPY`, config from `ENV`, `LABEL`,
//! `CMD`, `ENTRYPOINT`), written into an OCI layout with an index over the platforms
//! when there are several. Everything is reproducible: the same recipe and epoch give
//! the same digests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use imagehub_client::{Credentials, FetchedManifest, RegistryClient, RemoteReference, Target};
use imagehub_oci::{Digest, Manifest, ManifestKind, Platform, Reference};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::BuildError;
use crate::images::{ImageList, find_images};
use crate::kubefile::{Base, Instruction, Kubefile};
use crate::layer::{
    BuiltLayer, Compression, Entry, EntryKind, cache_key, copy_entries, write_layer,
};
use crate::registry_dir::{RegistryDir, SaveOptions, SaveReport, save_images};

/// The builder's own folder in a build context (per-platform `registry/` folders when
/// building for several); never copied into an image.
pub const WORK_DIR: &str = ".imagehub";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation naming a manifest of an OCI layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What to build, and how.
pub struct BuildRequest<'a> {
    /// The build context: the recipe's folder.
    pub context: PathBuf,
    /// When not empty, one folder per platform to build it from instead of `context`
    /// (copies `init.sh` prepared for that architecture), each with its own `registry/`.
    pub platform_contexts: Vec<PathBuf>,
    pub kubefile: PathBuf,
    pub args: HashMap<String, String>,
    pub platforms: Vec<Platform>,
    /// The time in every layer and config (`SOURCE_DATE_EPOCH`, or 0).
    pub epoch: u64,
    pub compression: Compression,
    /// A README to put into the image as `/README.md`.
    pub readme: Option<PathBuf>,
    /// Save whole indexes into `registry/` rather than each platform's image.
    pub all: bool,
    /// Images fetched at once.
    pub parallel: usize,
    pub credentials: &'a (dyn Fn(&RemoteReference) -> Credentials + Sync),
    /// Where blobs of the recipe's images may be found before their registry is asked.
    pub local: Option<&'a dyn crate::registry_dir::LocalBlobs>,
    /// The OCI layout written (created if missing).
    pub output: PathBuf,
    /// The name given to the result in the layout.
    pub tag: String,
    /// Hears what the build is doing, a line at a time.
    pub log: &'a (dyn Fn(String) + Sync),
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    /// The top manifest: the index over the platforms, or the one image.
    pub manifest: FetchedManifest,
    /// Each platform's image manifest.
    pub platforms: Vec<(Platform, FetchedManifest)>,
    pub images: ImageList,
    pub saved: SaveReport,
}

/// Builds `request`'s recipe into its output layout.
pub async fn build(
    client: &RegistryClient,
    request: &BuildRequest<'_>,
) -> Result<Built, BuildError> {
    let text = std::fs::read_to_string(&request.kubefile)
        .map_err(|e| BuildError::io(&request.kubefile, e))?;
    // Parsed once up front so that a refused Kubefile fails before anything is fetched.
    Kubefile::parse(
        &request.kubefile,
        &text,
        &platform_args(&request.args, &request.platforms[0]),
    )?;
    let layout = OutputLayout::create(&request.output)?;
    let several = request.platforms.len() > 1;
    let mut platforms = Vec::new();
    let mut saved = SaveReport::default();
    let mut all_images = ImageList::default();
    for (i, platform) in request.platforms.iter().enumerate() {
        let context = request.platform_contexts.get(i).unwrap_or(&request.context);
        let kubefile_path = match request.kubefile.strip_prefix(&request.context) {
            Ok(relative) => context.join(relative),
            Err(_) => request.kubefile.clone(),
        };
        let text = std::fs::read_to_string(&kubefile_path)
            .map_err(|e| BuildError::io(&kubefile_path, e))?;
        let kubefile =
            Kubefile::parse(&kubefile_path, &text, &platform_args(&request.args, platform))?;
        let images = find_images(context)?;
        for warning in &images.warnings {
            if !all_images.warnings.contains(warning) {
                (request.log)(format!("warning: {warning}"));
            }
        }
        // Several platforms from one folder save into a folder each, read in its place.
        let shared = several && request.platform_contexts.is_empty();
        let registry = match shared {
            true => {
                context.join(WORK_DIR).join("registry").join(platform.to_string().replace('/', "-"))
            }
            false => context.join("registry"),
        };
        (request.log)(format!(
            "{}: saving {} images into {}",
            platform,
            images.images.len(),
            registry.strip_prefix(context).unwrap_or(&registry).display()
        ));
        let options = SaveOptions {
            platform,
            all: request.all,
            parallel: request.parallel,
            credentials: request.credentials,
            local: request.local,
        };
        let report =
            save_images(client, &images.images, &RegistryDir::new(&registry), &options).await?;
        let local = match report.blobs_local {
            0 => String::new(),
            n => format!(", {n} copied from the hub"),
        };
        (request.log)(format!(
            "{}: {} images saved, {} already there; {} blobs fetched{local}",
            platform, report.saved, report.present, report.blobs_fetched
        ));
        saved.saved += report.saved;
        saved.present += report.present;
        saved.blobs_fetched += report.blobs_fetched;
        saved.bytes_fetched += report.bytes_fetched;
        saved.blobs_local += report.blobs_local;
        all_images.merge(images);
        let own_registry = context.join("registry");
        let resolve = |path: &Path| match (shared, path.strip_prefix(&own_registry)) {
            (true, Ok(rest)) => registry.join(rest),
            _ => path.to_path_buf(),
        };
        let place = Place { context, platform, layout: &layout, resolve: &resolve };
        let image = assemble(client, request, &kubefile, &place).await?;
        (request.log)(format!("{platform}: {}", image.digest));
        platforms.push((platform.clone(), image));
    }
    let manifest = match several {
        true => {
            let children: Vec<Value> = platforms
                .iter()
                .map(|(platform, image)| {
                    json!({"mediaType": OCI_MANIFEST, "digest": image.digest.to_string(),
                           "size": image.bytes.len(), "platform": platform_json(platform)})
                })
                .collect();
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
            let index = FetchedManifest::new(
                Bytes::from(serde_json::to_vec(&index).unwrap_or_default()),
                OCI_INDEX,
            );
            layout.put(&index.digest, &index.bytes)?;
            index
        }
        false => platforms[0].1.clone(),
    };
    layout.tag(&manifest, &request.tag)?;
    let used = platforms.iter().flat_map(|(_, image)| layer_digests(image)).collect();
    for context in request.platform_contexts.iter().chain([&request.context]) {
        prune_cache(&context.join(WORK_DIR).join("cache"), &used);
    }
    Ok(Built { manifest, platforms, images: all_images, saved })
}

/// The hex digests of an image manifest's layers.
fn layer_digests(image: &FetchedManifest) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(&image.bytes).unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    layers
        .iter()
        .filter_map(|layer| {
            layer["digest"].as_str()?.split_once(':').map(|(_, hex)| hex.to_string())
        })
        .collect()
}

/// Forgets the cached layers this build did not use, so that the cache holds one build's
/// layers, not every version of them. Best effort: a file left behind is only space.
fn prune_cache(cache: &Path, used: &std::collections::HashSet<String>) {
    let unused = |path: &Path, hex: Option<String>| {
        if hex.is_none_or(|hex| !used.contains(&hex)) {
            let _ = std::fs::remove_file(path);
        }
    };
    for entry in std::fs::read_dir(cache.join("blobs")).into_iter().flatten().flatten() {
        unused(&entry.path(), entry.file_name().to_str().map(str::to_string));
    }
    for entry in std::fs::read_dir(cache.join("layers")).into_iter().flatten().flatten() {
        let layer = std::fs::read(entry.path())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BuiltLayer>(&bytes).ok());
        unused(&entry.path(), layer.map(|layer| layer.digest.hex().to_string()));
    }
}

/// The build arguments with the platform's (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
/// and `ARCH` as seed 003's recipes use it).
fn platform_args(args: &HashMap<String, String>, platform: &Platform) -> HashMap<String, String> {
    let mut all = args.clone();
    for (name, value) in [
        ("TARGETPLATFORM", platform.to_string()),
        ("TARGETOS", platform.os.clone()),
        ("TARGETARCH", platform.architecture.clone()),
        ("ARCH", platform.architecture.clone()),
    ] {
        all.entry(name.to_string()).or_insert(value);
    }
    all
}

fn platform_json(platform: &Platform) -> Value {
    let mut value = json!({"os": platform.os, "architecture": platform.architecture});
    if let Some(variant) = &platform.variant {
        value["variant"] = json!(variant);
    }
    value
}

/// Where one platform's image is built from and into.
struct Place<'a> {
    /// The folder its `COPY` sources are in.
    context: &'a Path,
    platform: &'a Platform,
    layout: &'a OutputLayout,
    /// Maps a source path to where its files really are (a platform's `registry/`).
    resolve: &'a (dyn Fn(&Path) -> PathBuf + Sync),
}

/// One platform's image: the base's layers and config, then the Kubefile's.
async fn assemble(
    client: &RegistryClient,
    request: &BuildRequest<'_>,
    kubefile: &Kubefile,
    place: &Place<'_>,
) -> Result<FetchedManifest, BuildError> {
    let Place { context, platform, layout, resolve } = *place;
    let (mut config, mut layers) = match &kubefile.base {
        Base::Scratch => (json!({}), Vec::new()),
        Base::Image(image) => base_image(client, request, image, platform, layout).await?,
    };
    let created = rfc3339(request.epoch);
    let mut diff_ids: Vec<Value> =
        config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    let mut history: Vec<Value> = config["history"].as_array().cloned().unwrap_or_default();
    let mut settings = config["config"].as_object().cloned().unwrap_or_default();
    let mut labeled_type = false;
    let mut labeled_version = false;
    let mut steps: Vec<(String, Option<Vec<Entry>>)> = Vec::new();
    for instruction in &kubefile.instructions {
        match instruction {
            Instruction::Copy { sources, destination, chmod, .. } => {
                let entries = copy_entries(context, sources, destination, *chmod, resolve)?;
                steps.push((format!("COPY {} {destination}", sources.join(" ")), Some(entries)));
            }
            Instruction::Env(pairs) => {
                let env = settings.entry("Env").or_insert_with(|| json!([]));
                for (key, value) in pairs {
                    set_env(env, key, value);
                }
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                steps.push((format!("ENV {}", shown.join(" ")), None));
            }
            Instruction::Label(pairs) => {
                let labels = settings.entry("Labels").or_insert_with(|| json!({}));
                for (key, value) in pairs {
                    labeled_type |= key == "sealos.io.type";
                    labeled_version |= key == "sealos.io.version";
                    labels[key.as_str()] = json!(value);
                }
                let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                steps.push((format!("LABEL {}", shown.join(" ")), None));
            }
            Instruction::Cmd(command) => {
                settings.insert("Cmd".into(), json!(command));
                steps.push((format!("CMD {}", json!(command)), None));
            }
            Instruction::Entrypoint(command) => {
                settings.insert("Entrypoint".into(), json!(command));
                steps.push((format!("ENTRYPOINT {}", json!(command)), None));
            }
        }
    }
    if let Some(readme) = &request.readme {
        let entry =
            Entry { path: "README.md".into(), kind: EntryKind::File(readme.clone()), mode: 0o644 };
        steps.push(("COPY README.md /README.md".into(), Some(vec![entry])));
    }
    let labels = settings.entry("Labels").or_insert_with(|| json!({}));
    if !labeled_type {
        labels["sealos.io.type"] = json!("application");
    }
    if !labeled_version {
        labels["sealos.io.version"] = json!("v1beta1");
    }
    for (created_by, entries) in steps {
        let mut step = json!({"created": created, "created_by": created_by});
        match entries {
            Some(entries) => {
                let cache = context.join(WORK_DIR).join("cache");
                let layer = layout.layer(&entries, request.epoch, request.compression, &cache)?;
                diff_ids.push(json!(layer.diff_id.to_string()));
                layers.push(json!({"mediaType": layer.media_type, "digest": layer.digest.to_string(), "size": layer.size}));
            }
            None => step["empty_layer"] = json!(true),
        }
        history.push(step);
    }
    config["architecture"] = json!(platform.architecture);
    config["os"] = json!(platform.os);
    if let Some(variant) = &platform.variant {
        config["variant"] = json!(variant);
    }
    config["created"] = json!(created);
    config["config"] = Value::Object(settings);
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    config["history"] = json!(history);
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = Digest::sha256_of(&config);
    layout.put(&config_digest, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    let manifest = FetchedManifest::new(
        Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default()),
        OCI_MANIFEST,
    );
    layout.put(&manifest.digest, &manifest.bytes)?;
    Ok(manifest)
}

/// Replaces or adds `KEY=value` in a config's `Env`.
fn set_env(env: &mut Value, key: &str, value: &str) {
    let Some(list) = env.as_array_mut() else { return };
    let prefix = format!("{key}=");
    list.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
    list.push(json!(format!("{key}={value}")));
}

/// The base image's config and layer descriptors, its blobs fetched into the layout.
async fn base_image(
    client: &RegistryClient,
    request: &BuildRequest<'_>,
    image: &str,
    platform: &Platform,
    layout: &OutputLayout,
) -> Result<(Value, Vec<Value>), BuildError> {
    let reference: RemoteReference =
        image.parse().map_err(|e| BuildError::Recipe { message: format!("FROM {image}: {e}") })?;
    let fail = |error| BuildError::Image {
        image: image.to_string(),
        source_of: "FROM".into(),
        error: Box::new(error),
    };
    let credentials = (request.credentials)(&reference);
    let target = Target::of(&reference, &credentials);
    let mut manifest = client.manifest(&target, &reference.reference()).await.map_err(fail)?;
    let mut parsed = parse(&manifest).map_err(fail)?;
    if parsed.kind == ManifestKind::Index {
        let child = parsed.manifests.iter().find(|c| c.is_for(platform)).ok_or_else(|| {
            BuildError::Recipe { message: format!("FROM {image}: it has no image for {platform}") }
        })?;
        manifest = client
            .manifest(&target, &Reference::Digest(child.digest.clone()))
            .await
            .map_err(fail)?;
        parsed = parse(&manifest).map_err(fail)?;
    }
    let config = parsed.config.clone().ok_or_else(|| BuildError::Recipe {
        message: format!("FROM {image}: not an image (no config)"),
    })?;
    let mut layers = Vec::new();
    for blob in parsed.blob_references() {
        if !layout.has(&blob.digest) {
            let stream = client.blob(&target, &blob.digest, Some(blob.size)).await.map_err(fail)?;
            layout.put_stream(&blob.digest, stream).await?;
        }
    }
    for layer in &parsed.layers {
        layers.push(serde_json::to_value(layer).unwrap_or_default());
    }
    let bytes = std::fs::read(layout.path(&config.digest))
        .map_err(|e| BuildError::io(&layout.path(&config.digest), e))?;
    let config: Value = serde_json::from_slice(&bytes)
        .map_err(|e| BuildError::Recipe { message: format!("FROM {image}: its config: {e}") })?;
    Ok((config, layers))
}

fn parse(manifest: &FetchedManifest) -> Result<Manifest, imagehub_client::ClientError> {
    Manifest::parse(Some(&manifest.media_type), &manifest.bytes).map_err(|e| {
        imagehub_client::ClientError::Protocol {
            registry: String::new(),
            message: format!("manifest {}: {e}", manifest.digest),
        }
    })
}

fn rfc3339(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The OCI layout a build writes.
struct OutputLayout {
    dir: PathBuf,
}

impl OutputLayout {
    fn create(dir: &Path) -> Result<OutputLayout, BuildError> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| BuildError::io(&blobs, e))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            std::fs::write(&marker, r#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| BuildError::io(&marker, e))?;
        }
        Ok(OutputLayout { dir: dir.to_path_buf() })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.algorithm().as_str()).join(digest.hex())
    }

    fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), BuildError> {
        let path = self.path(digest);
        let temporary = path.with_extension("partial");
        std::fs::write(&temporary, bytes).map_err(|e| BuildError::io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| BuildError::io(&path, e))
    }

    async fn put_stream(
        &self,
        digest: &Digest,
        mut stream: imagehub_client::BlobStream,
    ) -> Result<(), BuildError> {
        let path = self.path(digest);
        let temporary = path.with_extension("partial");
        let mut file =
            tokio::fs::File::create(&temporary).await.map_err(|e| BuildError::io(&temporary, e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| BuildError::Image {
                image: digest.to_string(),
                source_of: "FROM".into(),
                error: Box::new(error),
            })?;
            file.write_all(&chunk).await.map_err(|e| BuildError::io(&temporary, e))?;
        }
        file.flush().await.map_err(|e| BuildError::io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| BuildError::io(&path, e))
    }

    /// A layer of `entries`, from `cache` when it holds one with the same key (nothing
    /// changed since it was written), else written there first; then linked into the
    /// layout.
    fn layer(
        &self,
        entries: &[Entry],
        epoch: u64,
        compression: Compression,
        cache: &Path,
    ) -> Result<BuiltLayer, BuildError> {
        let key = cache_key(entries, epoch, compression)?;
        let record = cache.join("layers").join(format!("{}.json", key.hex()));
        let blobs = cache.join("blobs");
        std::fs::create_dir_all(record.parent().unwrap_or(cache))
            .map_err(|e| BuildError::io(cache, e))?;
        std::fs::create_dir_all(&blobs).map_err(|e| BuildError::io(&blobs, e))?;
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BuiltLayer>(&bytes).ok())
            .filter(|layer| blobs.join(layer.digest.hex()).is_file());
        let layer = match cached {
            Some(layer) => layer,
            None => {
                let temporary = blobs.join(format!("{}.partial", key.hex()));
                let layer = write_layer(entries, epoch, compression, &temporary)?;
                let blob = blobs.join(layer.digest.hex());
                std::fs::rename(&temporary, &blob).map_err(|e| BuildError::io(&blob, e))?;
                let text = serde_json::to_vec(&layer).unwrap_or_default();
                std::fs::write(&record, text).map_err(|e| BuildError::io(&record, e))?;
                layer
            }
        };
        let path = self.path(&layer.digest);
        if !path.is_file() {
            let blob = blobs.join(layer.digest.hex());
            // A hard link costs nothing; across filesystems the blob is copied.
            if std::fs::hard_link(&blob, &path).is_err() {
                let temporary = path.with_extension("partial");
                std::fs::copy(&blob, &temporary).map_err(|e| BuildError::io(&temporary, e))?;
                std::fs::rename(&temporary, &path).map_err(|e| BuildError::io(&path, e))?;
            }
        }
        Ok(layer)
    }

    /// Names `manifest` `tag` in `index.json`, replacing what had that name.
    fn tag(&self, manifest: &FetchedManifest, tag: &str) -> Result<(), BuildError> {
        let path = self.dir.join("index.json");
        let mut index: Value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BuildError::Recipe { message: format!("{}: {e}", path.display()) })?,
            Err(_) => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        };
        let mut manifests: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        manifests.retain(|d| d["annotations"][REF_NAME].as_str() != Some(tag));
        let mut annotations = Map::new();
        annotations.insert(REF_NAME.into(), json!(tag));
        manifests
            .push(json!({"mediaType": manifest.media_type, "digest": manifest.digest.to_string(),
                              "size": manifest.bytes.len(), "annotations": annotations}));
        index["manifests"] = json!(manifests);
        let text = serde_json::to_vec_pretty(&index).unwrap_or_default();
        let temporary = path.with_extension("partial");
        std::fs::write(&temporary, text).map_err(|e| BuildError::io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| BuildError::io(&path, e))
    }
}
