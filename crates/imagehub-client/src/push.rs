//! The write half of the client, and copying an image between registries: blobs the
//! target has are skipped, blobs of another repository of the same registry are
//! mounted, the others streamed from the source into an upload (in resumable chunks
//! when large); manifests are written byte for byte (children before their index), so
//! every digest stays the same.

use imagehub_oci::{Descriptor, Digest, Manifest, ManifestKind, Reference};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use crate::chunks::{ChunkSource, StreamChunks, UPLOAD_CHUNK};
use crate::error::ClientError;
use crate::registry::{FetchedManifest, RegistryClient, Target, describe};

/// What a copy did with each blob, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCopy {
    /// The target had it.
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Hears how a copy goes, blob by blob.
pub trait CopyProgress: Sync {
    /// The bytes of the blobs to copy, in all (some may turn out to be there).
    fn planned(&self, _bytes: u64) {}
    /// A blob is about to be copied.
    fn started(&self, _blob: &Descriptor) {}
    /// `bytes` more of it are at the destination.
    fn bytes(&self, _blob: &Descriptor, _bytes: u64) {}
    /// It is done, and how.
    fn done(&self, blob: &Descriptor, how: BlobCopy);
}

/// What a copy did in all.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub digest: Option<Digest>,
    pub manifests: usize,
    pub skipped: usize,
    pub mounted: usize,
    pub uploaded: usize,
    pub bytes_uploaded: u64,
}

fn push_scope(target: &Target<'_>) -> String {
    format!("repository:{}:pull,push", target.repository)
}

impl RegistryClient {
    /// Whether the target repository has the blob.
    pub async fn blob_exists(
        &self,
        target: &Target<'_>,
        digest: &Digest,
    ) -> Result<bool, ClientError> {
        let path = format!("/v2/{}/blobs/{digest}", target.repository);
        let response =
            self.send_scoped(target, Method::HEAD, &path, "*/*", &push_scope(target), None).await?;
        Ok(response.status().is_success())
    }

    /// Mounts a blob from `from` (a repository of the same registry); `false` when the
    /// registry did not (then it must be uploaded).
    pub async fn mount_blob(
        &self,
        target: &Target<'_>,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, ClientError> {
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}&from={from}", target.repository);
        let scope = format!("{} repository:{from}:pull", push_scope(target));
        let response = self.send_scoped(target, Method::POST, &path, "*/*", &scope, None).await?;
        Ok(response.status() == StatusCode::CREATED)
    }

    /// Opens an upload session; the session's absolute URL.
    async fn open_upload(&self, target: &Target<'_>, what: &str) -> Result<Url, ClientError> {
        let path = format!("/v2/{}/blobs/uploads/", target.repository);
        let opened =
            self.send_scoped(target, Method::POST, &path, "*/*", &push_scope(target), None).await?;
        let opened = self.expect_success(target, opened, what).await?;
        self.session_url(target, opened.headers(), what).await
    }

    /// The session URL a registry answered in `Location`, made absolute.
    async fn session_url(
        &self,
        target: &Target<'_>,
        headers: &reqwest::header::HeaderMap,
        what: &str,
    ) -> Result<Url, ClientError> {
        let protocol =
            |message: String| ClientError::Protocol { registry: target.registry.into(), message };
        let location = headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| protocol(format!("{what}: no Location")))?;
        let base = self.base_url(target.registry).await?;
        Url::parse(&base)
            .and_then(|b| b.join(location))
            .map_err(|e| protocol(format!("{what}: {e}")))
    }

    /// Uploads a blob of `size` bytes that `source` gives, in chunks of `chunk` bytes.
    /// When a chunk fails (a dropped connection, a 5xx), the session is asked how much
    /// it holds and the rest of that chunk is sent again: a failure costs at most one
    /// chunk. `on_chunk` hears of each one sent.
    pub async fn upload_blob_resumable(
        &self,
        target: &Target<'_>,
        digest: &Digest,
        size: u64,
        source: &mut impl ChunkSource,
        chunk: u64,
        on_chunk: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ClientError> {
        let what = format!("upload of {digest} to {}/{}", target.registry, target.repository);
        let scope = push_scope(target);
        let mut url = self.open_upload(target, &what).await?;
        let mut offset = 0u64;
        while offset < size {
            let (body, len) = source.read(offset, chunk.min(size - offset)).await?;
            let end = offset + len;
            self.send_chunk(target, &mut url, (offset, end), body, source, &scope, &what).await?;
            on_chunk(len);
            offset = end;
        }
        source.finish().await?;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let request = self.http(target.registry).put(url).header(CONTENT_LENGTH, 0);
        let response = self
            .authorize(request, target.registry, &scope, target.credentials)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                registry: target.registry.into(),
                message: describe(&e),
            })?;
        self.expect_success(target, response, &what).await.map(drop)
    }

    /// Sends the chunk `start..end` of the upload at `url`, resuming it from where the
    /// session stands after a failure; `url` becomes the session's next URL.
    #[allow(clippy::too_many_arguments)] // one upload's state, passed down once
    async fn send_chunk(
        &self,
        target: &Target<'_>,
        url: &mut Url,
        (start, end): (u64, u64),
        body: reqwest::Body,
        source: &mut impl ChunkSource,
        scope: &str,
        what: &str,
    ) -> Result<(), ClientError> {
        let (mut from, mut body, mut failures) = (start, body, 0u32);
        loop {
            let request = self
                .http(target.registry)
                .patch(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("content-range", format!("{from}-{}", end - 1))
                .header(CONTENT_LENGTH, end - from)
                .body(body);
            let sent =
                self.authorize(request, target.registry, scope, target.credentials).send().await;
            let outcome = match sent {
                Ok(response) if response.status().is_success() => {
                    *url = self.session_url(target, response.headers(), what).await?;
                    return Ok(());
                }
                outcome => outcome,
            };
            failures += 1;
            if failures >= self.settings().max_attempts {
                return match outcome {
                    Ok(response) => self.expect_success(target, response, what).await.map(drop),
                    Err(e) => Err(ClientError::Unreachable {
                        registry: target.registry.into(),
                        message: describe(&e),
                    }),
                };
            }
            tracing::debug!(%what, from, "a chunk failed; asking the session where it stands");
            let (session, held) = self.upload_offset(target, url, scope, what, start).await?;
            if !(start..=end).contains(&held) {
                return Err(ClientError::Protocol {
                    registry: target.registry.into(),
                    message: format!(
                        "{what}: the session holds {held} bytes, not between {start} and {end}"
                    ),
                });
            }
            *url = session;
            if held == end {
                return Ok(()); // it arrived; only the answer was lost
            }
            from = held;
            body = source.read(from, end - from).await?.0;
        }
    }

    /// Where an upload session stands: its URL and the bytes it holds (`Range: 0-N`).
    /// Registries answer `0-0` for an empty session as for one holding a byte; with
    /// nothing confirmed yet (`confirmed` 0) it means empty.
    async fn upload_offset(
        &self,
        target: &Target<'_>,
        url: &Url,
        scope: &str,
        what: &str,
        confirmed: u64,
    ) -> Result<(Url, u64), ClientError> {
        let request = self.http(target.registry).get(url.clone());
        let response = self
            .authorize(request, target.registry, scope, target.credentials)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                registry: target.registry.into(),
                message: describe(&e),
            })?;
        let response = self.expect_success(target, response, what).await?;
        let range = response.headers().get("range").and_then(|r| r.to_str().ok()).unwrap_or("");
        let held = match range.rsplit('-').next().and_then(|last| last.parse::<u64>().ok()) {
            Some(0) if confirmed == 0 => 0,
            Some(last) => last + 1,
            None => 0,
        };
        let url = self
            .session_url(target, response.headers(), what)
            .await
            .unwrap_or_else(|_| url.clone());
        Ok((url, held))
    }

    /// Uploads a blob of `size` bytes from `body` in one request, after opening a session.
    pub async fn upload_blob<S, E>(
        &self,
        target: &Target<'_>,
        digest: &Digest,
        size: u64,
        body: S,
    ) -> Result<(), ClientError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let what = format!("upload of {digest} to {}/{}", target.registry, target.repository);
        let scope = push_scope(target);
        let mut url = self.open_upload(target, &what).await?;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let request = self
            .http(target.registry)
            .put(url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        let request = self.authorize(request, target.registry, &scope, target.credentials);
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            registry: target.registry.to_string(),
            message: describe(&e),
        })?;
        self.expect_success(target, response, &what).await.map(drop)
    }

    /// Writes a manifest under `reference`, byte for byte; its digest.
    pub async fn put_manifest(
        &self,
        target: &Target<'_>,
        reference: &Reference,
        manifest: &FetchedManifest,
    ) -> Result<Digest, ClientError> {
        let path = format!("/v2/{}/manifests/{reference}", target.repository);
        let body = Some((manifest.media_type.as_str(), manifest.bytes.clone()));
        let response =
            self.send_scoped(target, Method::PUT, &path, "*/*", &push_scope(target), body).await?;
        let what = format!("manifest {reference} of {}/{}", target.registry, target.repository);
        self.expect_success(target, response, &what).await?;
        Ok(manifest.digest.clone())
    }
}

/// Copies `reference` of `source` (read with `from`) to `destination` (written with
/// `to`) under `tag` (or by digest): all platforms of an index, digests kept.
/// `progress` hears of each blob.
pub async fn copy_image(
    from: &RegistryClient,
    source: &Target<'_>,
    reference: &Reference,
    to: &RegistryClient,
    destination: &Target<'_>,
    tag: Option<&str>,
    progress: &impl CopyProgress,
) -> Result<CopyReport, ClientError> {
    let mut report = CopyReport::default();
    let top = from.manifest(source, reference).await?;
    let parsed = parse(source, &top)?;
    // Every manifest first, so that the bytes to copy are known before the first blob.
    let mut children = Vec::new();
    if parsed.kind == ManifestKind::Index {
        for child in &parsed.manifests {
            let fetched = from.manifest(source, &Reference::Digest(child.digest.clone())).await?;
            let manifest = parse(source, &fetched)?;
            children.push((fetched, manifest));
        }
    }
    let images: Vec<&Manifest> = match children.is_empty() {
        true => vec![&parsed],
        false => children.iter().map(|(_, manifest)| manifest).collect(),
    };
    let mut blobs: Vec<&Descriptor> = Vec::new();
    for blob in images.iter().flat_map(|image| image.blob_references()) {
        let foreign =
            blob.media_type.contains("foreign") || blob.media_type.contains("nondistributable");
        if !foreign && !blobs.iter().any(|b| b.digest == blob.digest) {
            blobs.push(blob);
        }
    }
    progress.planned(blobs.iter().map(|b| b.size).sum());
    for blob in blobs {
        copy_blob(from, source, to, destination, blob, progress, &mut report).await?;
    }
    for (fetched, _) in &children {
        to.put_manifest(destination, &Reference::Digest(fetched.digest.clone()), fetched).await?;
        report.manifests += 1;
    }
    let reference = match tag {
        Some(tag) => Reference::Tag(tag.parse().map_err(|e| ClientError::Protocol {
            registry: destination.registry.into(),
            message: format!("tag {tag:?}: {e}"),
        })?),
        None => Reference::Digest(top.digest.clone()),
    };
    report.digest = Some(to.put_manifest(destination, &reference, &top).await?);
    report.manifests += 1;
    Ok(report)
}

fn parse(source: &Target<'_>, manifest: &FetchedManifest) -> Result<Manifest, ClientError> {
    Manifest::parse(Some(&manifest.media_type), &manifest.bytes).map_err(|e| {
        ClientError::Protocol {
            registry: source.registry.to_string(),
            message: format!("manifest {}: {e}", manifest.digest),
        }
    })
}

async fn copy_blob(
    from: &RegistryClient,
    source: &Target<'_>,
    to: &RegistryClient,
    destination: &Target<'_>,
    blob: &Descriptor,
    progress: &impl CopyProgress,
    report: &mut CopyReport,
) -> Result<(), ClientError> {
    progress.started(blob);
    let same_registry = source.registry == destination.registry;
    let done = if to.blob_exists(destination, &blob.digest).await? {
        report.skipped += 1;
        BlobCopy::Skipped
    } else if same_registry
        && source.repository != destination.repository
        && to.mount_blob(destination, &blob.digest, source.repository.as_str()).await?
    {
        report.mounted += 1;
        BlobCopy::Mounted
    } else {
        let stream = from.blob(source, &blob.digest, Some(blob.size)).await?;
        if blob.size > UPLOAD_CHUNK {
            let on_chunk = |bytes| progress.bytes(blob, bytes);
            let mut chunks = StreamChunks::new(stream, UPLOAD_CHUNK);
            let (digest, size) = (&blob.digest, blob.size);
            to.upload_blob_resumable(
                destination,
                digest,
                size,
                &mut chunks,
                UPLOAD_CHUNK,
                &on_chunk,
            )
            .await?;
        } else {
            to.upload_blob(destination, &blob.digest, blob.size, stream).await?;
            progress.bytes(blob, blob.size);
        }
        report.uploaded += 1;
        report.bytes_uploaded += blob.size;
        BlobCopy::Uploaded
    };
    progress.done(blob, done);
    Ok(())
}
