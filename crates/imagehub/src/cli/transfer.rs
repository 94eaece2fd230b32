//! `imagehub push oci:DIR[:TAG] IMAGE` and `imagehub pull IMAGE --output oci:DIR[:TAG]`:
//! images between an OCI layout on disk and a registry, byte for byte. A push can
//! attach a README (`-o README.md`, seed 000) and details in the same step.

use futures_util::{StreamExt as _, TryStreamExt as _};
use imagehub_client::{
    CredentialStore, FetchedManifest, FileChunks, RemoteReference, Target, UPLOAD_CHUNK,
};
use imagehub_oci::{Digest, Manifest, ManifestKind, Reference};
use reqwest::Method;
use serde_json::json;

use super::api::Hub;
use super::docker_archive;
use super::layout::Layout;
use super::progress::Progress;
use super::{ClientArgs, Failure, block_on, client};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  imagehub push oci:./app:v1 127.0.0.1:5000/acme/app:v1\n  \
                        imagehub push oci:./app 127.0.0.1:5000/acme/app:v1 -o README.md --keyword web\n  \
                        imagehub push docker-archive:app.tar 127.0.0.1:5000/acme/app:v1   # from docker save")]
pub struct PushArgs {
    /// An OCI layout (`oci:DIR`, its only image, or `oci:DIR:TAG`), an OCI archive
    /// (`oci-archive:FILE[:TAG]`) or a `docker save` tarball (`docker-archive:FILE[:REPO:TAG]`).
    source: String,
    /// Where to: `HOST/org/repo:tag`.
    target: String,
    /// A README to show as the image's documentation (markdown).
    #[arg(short = 'o', long = "readme", value_name = "README.md")]
    readme: Option<std::path::PathBuf>,
    /// A description of the image.
    #[arg(long)]
    description: Option<String>,
    /// A keyword (repeatable).
    #[arg(long = "keyword")]
    keywords: Vec<String>,
    /// The address of the image's icon.
    #[arg(long)]
    icon: Option<String>,
    /// The project's address.
    #[arg(long)]
    url: Option<String>,
    /// Print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  imagehub pull 127.0.0.1:5000/acme/app:v1 --output oci:./app\n  \
                        imagehub pull nginx:1.27 --output oci:./nginx:1.27 --platform linux/arm64\n  \
                        imagehub pull 127.0.0.1:5000/acme/app:v1 --output docker-archive:app.tar   # for docker load"
)]
pub struct PullArgs {
    /// The image, as docker names it.
    image: String,
    /// Where to: an OCI layout (`oci:DIR[:TAG]`), an OCI archive (`oci-archive:FILE[:TAG]`)
    /// or a `docker save` tarball (`docker-archive:FILE[:REPO:TAG]`, one platform).
    #[arg(long)]
    output: String,
    /// Only this platform of a multi-platform image (`linux/arm64`); all by default.
    #[arg(long)]
    platform: Option<imagehub_oci::Platform>,
    /// Print only the outcome.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Pushes a blob from a file unless the target has it: in one request when small, else
/// in resumable chunks.
async fn push_blob(
    client: &imagehub_client::RegistryClient,
    to: &Target<'_>,
    digest: &Digest,
    size: u64,
    path: &std::path::Path,
    progress: &Progress,
) -> Result<(), imagehub_client::ClientError> {
    let bar = progress.blob(digest, size);
    if client.blob_exists(to, digest).await? {
        bar.done("already there");
        return Ok(());
    }
    if size > UPLOAD_CHUNK {
        let mut file = FileChunks { path: path.to_path_buf(), size };
        let on_chunk = |bytes| bar.inc(bytes);
        client.upload_blob_resumable(to, digest, size, &mut file, UPLOAD_CHUNK, &on_chunk).await?;
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| imagehub_client::ClientError::Local(format!("{}: {e}", path.display())))?;
        let counted = bar.clone();
        let stream = futures_util::StreamExt::inspect(
            tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
            move |chunk| {
                if let Ok(chunk) = chunk {
                    counted.inc(chunk.len() as u64);
                }
            },
        );
        client.upload_blob(to, digest, size, stream).await?;
    }
    bar.done("uploaded");
    Ok(())
}

/// Blobs transferred at once.
const PARALLEL_BLOBS: usize = 4;

/// An image's place on disk: an OCI layout directory, or an OCI archive (a tar of one)
/// unpacked into, or packed from, a temporary layout.
pub(super) struct Place {
    pub(super) layout: Layout,
    /// The archive file, for `oci-archive:`.
    archive: Option<std::path::PathBuf>,
    _unpacked: Option<tempfile::TempDir>,
}

/// `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]` → (the place, TAG). With `read`, an
/// archive is unpacked (its files only, see [`super::unpack`]).
pub(super) fn place_of(spec: &str, read: bool) -> Result<(Place, Option<String>), Failure> {
    let usage = |message: String| Failure { code: 2, ..Failure::new(message) };
    let (archive, rest) = match (spec.strip_prefix("oci:"), spec.strip_prefix("oci-archive:")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        _ => {
            return Err(usage(format!(
                "{spec}: give oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REPO:TAG]"
            )));
        }
    };
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => {
            (path, Some(tag.to_string()))
        }
        _ => (rest, None),
    };
    if !archive {
        return Ok((Place { layout: Layout::new(path), archive: None, _unpacked: None }, tag));
    }
    let temporary =
        tempfile::tempdir().map_err(|e| Failure::new(format!("a temporary directory: {e}")))?;
    if read {
        super::unpack::unpack(std::path::Path::new(path), temporary.path())?;
    }
    let place = Place {
        layout: Layout::new(temporary.path()),
        archive: Some(path.into()),
        _unpacked: Some(temporary),
    };
    Ok((place, tag))
}

impl Place {
    /// Packs the layout into the archive, if this place is one (written whole, then renamed).
    pub(super) fn finish(&self) -> Result<(), Failure> {
        let Some(archive) = &self.archive else { return Ok(()) };
        let fail = |e: std::io::Error| Failure::new(format!("{}: {e}", archive.display()));
        let partial = archive.with_extension("partial");
        let file = std::fs::File::create(&partial).map_err(fail)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.append_dir_all(".", &self.layout.dir).map_err(fail)?;
        builder.into_inner().map_err(fail)?.into_inner().map_err(|e| fail(e.into_error()))?;
        std::fs::rename(&partial, archive).map_err(fail)
    }
}

fn bar(quiet: bool, message: String) -> Progress {
    Progress::new(quiet, message)
}

fn parse(manifest: &FetchedManifest) -> Result<Manifest, Failure> {
    Manifest::parse(Some(&manifest.media_type), &manifest.bytes)
        .map_err(|e| Failure::new(format!("manifest {}: {e}", manifest.digest)))
}

pub fn push(args: PushArgs) -> Result<(), Failure> {
    if let Some(rest) = args.source.strip_prefix("docker-archive:") {
        return push_docker_archive(&args, rest);
    }
    let (place, layout_tag) = place_of(&args.source, true)?;
    let layout = &place.layout;
    let target: RemoteReference =
        args.target.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let tag = push_tag(&args, &target, layout_tag.clone());
    let credentials =
        CredentialStore::from_env().get(&target.registry, Some(target.repository.as_str()))?;
    let client = client(&args.client, &target.registry)?;
    let bar = bar(args.quiet, format!("pushing {}", args.target));
    let mut top = None;
    block_on(async {
        let to = Target::of(&target, &credentials);
        let pushed = push_layout(layout, layout_tag.as_deref(), &client, &to, &tag, &bar).await?;
        top = Some(pushed.0);
        details(&args, &target, &tag).await
    })?;
    bar.finish();
    let digest = top.map(|t| t.digest.to_string()).unwrap_or_default();
    println!(
        "Pushed {} as {}/{}:{tag} ({digest})",
        args.source, target.registry, target.repository
    );
    Ok(())
}

/// Pushes the image `layout` names `layout_tag` (or its only one) to `to` as `tag`:
/// blobs the target lacks, children, then the top manifest. The top manifest and the
/// children.
pub(super) async fn push_layout(
    layout: &Layout,
    layout_tag: Option<&str>,
    client: &imagehub_client::RegistryClient,
    to: &Target<'_>,
    tag: &str,
    bar: &Progress,
) -> Result<(FetchedManifest, Vec<FetchedManifest>), Failure> {
    let fail = |e| Failure::from_client(e, to.registry);
    let top = layout.read_manifest(&layout.find(layout_tag)?)?;
    let parsed = parse(&top)?;
    let mut children = Vec::new();
    if parsed.kind == ManifestKind::Index {
        for child in &parsed.manifests {
            let descriptor =
                json!({"digest": child.digest.to_string(), "mediaType": child.media_type});
            children.push(layout.read_manifest(&descriptor)?);
        }
    }
    let images: Vec<&FetchedManifest> =
        if children.is_empty() { vec![&top] } else { children.iter().collect() };
    let mut blobs: Vec<imagehub_oci::Descriptor> = Vec::new();
    for image in images {
        for blob in parse(image)?.blob_references() {
            if !blobs.iter().any(|b| b.digest == blob.digest) {
                blobs.push(blob.clone());
            }
        }
    }
    bar.set_total(blobs.iter().map(|b| b.size).sum());
    for blob in &blobs {
        let path = layout.blob_path(&blob.digest);
        push_blob(client, to, &blob.digest, blob.size, &path, bar).await.map_err(fail)?;
    }
    for child in &children {
        client
            .put_manifest(to, &Reference::Digest(child.digest.clone()), child)
            .await
            .map_err(fail)?;
    }
    let reference = Reference::Tag(
        tag.parse()
            .map_err(|e| Failure { code: 2, ..Failure::new(format!("tag {tag:?}: {e}")) })?,
    );
    client.put_manifest(to, &reference, &top).await.map_err(fail)?;
    Ok((top, children))
}

/// Attaches the README and details given with a push, through the hub's API.
async fn details(args: &PushArgs, target: &RemoteReference, tag: &str) -> Result<(), Failure> {
    let mut edit = serde_json::Map::new();
    for (key, value) in
        [("description", &args.description), ("icon", &args.icon), ("url", &args.url)]
    {
        if let Some(value) = value {
            edit.insert(key.into(), json!(value));
        }
    }
    if !args.keywords.is_empty() {
        edit.insert("keywords".into(), json!(args.keywords));
    }
    if args.readme.is_none() && edit.is_empty() {
        return Ok(());
    }
    let (org, repo) = target.repository.as_str().split_once('/').ok_or_else(|| {
        Failure::new("a README and details need an image in a namespace: HOST/org/repo:tag")
    })?;
    let hub = Hub::new(&target.registry, &args.client)?;
    let path = format!("/api/v1/orgs/{org}/repos/{repo}/images/{tag}");
    if let Some(readme) = &args.readme {
        let text = std::fs::read_to_string(readme)
            .map_err(|e| Failure::new(format!("{}: {e}", readme.display())))?;
        hub.exchange(Method::PUT, &format!("{path}/readme"), Some(("text/markdown", text))).await?;
    }
    if !edit.is_empty() {
        hub.send(Method::PATCH, &path, Some(serde_json::Value::Object(edit))).await?;
    }
    Ok(())
}

pub fn pull(args: PullArgs) -> Result<(), Failure> {
    if let Some(rest) = args.output.strip_prefix("docker-archive:") {
        return pull_docker_archive(&args, rest);
    }
    let (place, output_tag) = place_of(&args.output, false)?;
    let layout = &place.layout;
    let source: RemoteReference =
        args.image.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let credentials =
        CredentialStore::from_env().get(&source.registry, Some(source.repository.as_str()))?;
    let client = client(&args.client, &source.registry)?;
    let bar = bar(args.quiet, format!("pulling {}", args.image));
    layout.create()?;
    let tag = output_tag.or(source.tag.as_ref().map(ToString::to_string));
    let mut pulled = None;
    block_on(async {
        let from = Target::of(&source, &credentials);
        let fail = |e| Failure::from_client(e, &source.registry);
        let mut top = client.manifest(&from, &source.reference()).await.map_err(fail)?;
        let parsed = parse(&top)?;
        let mut images = Vec::new();
        if parsed.kind == ManifestKind::Index {
            let chosen: Vec<_> = parsed
                .manifests
                .iter()
                .filter(|d| args.platform.as_ref().is_none_or(|p| d.is_for(p)))
                .collect();
            if chosen.is_empty() {
                return Err(Failure {
                    code: super::NOT_FOUND,
                    ..Failure::new(format!(
                        "{} has no platform {}",
                        args.image,
                        args.platform.as_ref().map(ToString::to_string).unwrap_or_default()
                    ))
                });
            }
            for child in &chosen {
                images.push(
                    client
                        .manifest(&from, &Reference::Digest(child.digest.clone()))
                        .await
                        .map_err(fail)?,
                );
            }
            if args.platform.is_some() {
                top = images.remove(0); // that platform's image alone
                images.clear();
            }
        }
        let all: Vec<&FetchedManifest> =
            if images.is_empty() { vec![&top] } else { images.iter().collect() };
        let mut blobs: Vec<imagehub_oci::Descriptor> = Vec::new();
        for image in &all {
            for blob in parse(image)?.blob_references() {
                if !blobs.iter().any(|b| b.digest == blob.digest) {
                    blobs.push(blob.clone());
                }
            }
        }
        // A few blobs at a time: one stream rarely fills the link.
        bar.set_total(blobs.iter().map(|b| b.size).sum());
        let (client, from, bar) = (&client, &from, &bar);
        futures_util::stream::iter(blobs)
            .map(|blob| async move {
                let blob_bar = bar.blob(&blob.digest, blob.size);
                if layout.has_blob(&blob.digest) {
                    blob_bar.done("already there");
                    return Ok(());
                }
                let stream =
                    client.blob(from, &blob.digest, Some(blob.size)).await.map_err(fail)?;
                layout.write_blob(&blob.digest, stream, &|n| blob_bar.inc(n)).await?;
                blob_bar.done("downloaded");
                Ok::<(), Failure>(())
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        for image in all {
            layout.write_manifest(image)?;
        }
        layout.write_manifest(&top)?;
        layout.tag(&top, tag.as_deref())?;
        pulled = Some(top.digest.clone());
        Ok(())
    })?;
    place.finish()?;
    bar.finish();
    let digest: Option<Digest> = pulled;
    println!(
        "Pulled {} into {} ({})",
        args.image,
        args.output,
        digest.map(|d| d.to_string()).unwrap_or_default()
    );
    Ok(())
}

/// `FILE[:REPO:TAG]` (as skopeo takes a docker archive) → (FILE, the name).
fn archive_name(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((file, name)) => (file, Some(name)),
        None => (rest, None),
    }
}

/// The tag a push goes to: the target's, if it names one, else `fallback`, else `latest`.
fn push_tag(args: &PushArgs, target: &RemoteReference, fallback: Option<String>) -> String {
    let explicit = args.target.rsplit('/').next().is_some_and(|last| last.contains(':'));
    match explicit {
        true => target.tag.as_ref().map(ToString::to_string),
        false => fallback,
    }
    .unwrap_or_else(|| "latest".into())
}

fn push_docker_archive(args: &PushArgs, rest: &str) -> Result<(), Failure> {
    let (file, name) = archive_name(rest);
    let image = docker_archive::read(std::path::Path::new(file), name)?;
    let target: RemoteReference =
        args.target.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let fallback = name.and_then(|n| n.rsplit_once(':')).map(|(_, t)| t.to_string());
    let tag = push_tag(args, &target, fallback);
    let credentials =
        CredentialStore::from_env().get(&target.registry, Some(target.repository.as_str()))?;
    let client = client(&args.client, &target.registry)?;
    let bar = bar(args.quiet, format!("pushing {}", args.source));
    block_on(async {
        let to = Target::of(&target, &credentials);
        let fail = |e| Failure::from_client(e, &target.registry);
        bar.set_total(image.blobs.iter().map(|b| b.size).sum());
        for blob in &image.blobs {
            push_blob(&client, &to, &blob.digest, blob.size, &blob.path, &bar)
                .await
                .map_err(fail)?;
        }
        let reference = Reference::Tag(
            tag.parse()
                .map_err(|e| Failure { code: 2, ..Failure::new(format!("tag {tag:?}: {e}")) })?,
        );
        client.put_manifest(&to, &reference, &image.manifest).await.map_err(fail)?;
        details(args, &target, &tag).await
    })?;
    bar.finish();
    println!(
        "Pushed {} as {}/{}:{tag} ({})",
        args.source, target.registry, target.repository, image.manifest.digest
    );
    Ok(())
}

fn pull_docker_archive(args: &PullArgs, rest: &str) -> Result<(), Failure> {
    let (file, name) = archive_name(rest);
    let source: RemoteReference =
        args.image.parse().map_err(|e| Failure { code: 2, ..Failure::new(format!("{e}")) })?;
    let repo_tag = name.map(String::from).unwrap_or_else(|| {
        format!(
            "{}/{}:{}",
            source.registry,
            source.repository,
            source.tag.as_ref().map_or("latest".into(), ToString::to_string)
        )
    });
    let credentials =
        CredentialStore::from_env().get(&source.registry, Some(source.repository.as_str()))?;
    let client = client(&args.client, &source.registry)?;
    let bar = bar(args.quiet, format!("pulling {}", args.image));
    let mut writer = docker_archive::ArchiveWriter::new()?;
    let mut pulled = None;
    block_on(async {
        let from = Target::of(&source, &credentials);
        let fail = |e| Failure::from_client(e, &source.registry);
        let mut image = client.manifest(&from, &source.reference()).await.map_err(fail)?;
        let mut parsed = parse(&image)?;
        if parsed.kind == ManifestKind::Index {
            // A docker archive holds one platform.
            let chosen: Vec<_> = parsed
                .manifests
                .iter()
                .filter(|d| match &args.platform {
                    Some(p) => d.is_for(p),
                    None => d.platform.as_ref().is_none_or(|dp| dp.os != "unknown"),
                })
                .collect();
            let child = match chosen.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Failure {
                        code: super::NOT_FOUND,
                        ..Failure::new(format!("{} has no such platform", args.image))
                    });
                }
                _ => {
                    return Err(Failure::new(format!(
                        "{} is a multi-platform image: choose one with --platform",
                        args.image
                    )));
                }
            };
            image = client
                .manifest(&from, &Reference::Digest(child.digest.clone()))
                .await
                .map_err(fail)?;
            parsed = parse(&image)?;
        }
        let config = parsed
            .config
            .clone()
            .ok_or_else(|| Failure::new(format!("{} is not an image (no config)", args.image)))?;
        let stream = client.blob(&from, &config.digest, Some(config.size)).await.map_err(fail)?;
        bar.set_total(config.size + parsed.layers.iter().map(|l| l.size).sum::<u64>());
        let config_bar = bar.blob(&config.digest, config.size);
        writer.blob(&config.digest, stream, true, &|n| config_bar.inc(n)).await?;
        config_bar.done("downloaded");
        for layer in &parsed.layers {
            let layer_bar = bar.blob(&layer.digest, layer.size);
            let stream = client.blob(&from, &layer.digest, Some(layer.size)).await.map_err(fail)?;
            writer.blob(&layer.digest, stream, false, &|n| layer_bar.inc(n)).await?;
            layer_bar.done("downloaded");
        }
        pulled = Some(image.digest.clone());
        Ok(())
    })?;
    writer.finish(std::path::Path::new(file), &repo_tag)?;
    bar.finish();
    println!(
        "Pulled {} into {} ({})",
        args.image,
        args.output,
        pulled.map(|d| d.to_string()).unwrap_or_default()
    );
    Ok(())
}
