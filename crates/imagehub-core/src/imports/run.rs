//! Running import jobs. A job `HEAD`s the upstream manifest first, so an image the
//! target already holds costs no pull; reads the manifest (and an index's children, or
//! the platforms asked for) byte for byte; links every blob the hub already stores
//! anywhere and downloads the others into the target, a few at a time; then stores the
//! children before their index, as a push does, so the image is indexed like any
//! other. A job that fails in a way that may pass (rate limits, an upstream down) goes
//! back to the queue with the time it runs again; what it stored stays, so the next
//! try downloads only what is missing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use imagehub_client::{ClientError, RemoteReference, Target};
use imagehub_metadata::{AuditAction, ImportJobRow, ImportState, NewAuditEvent};
use imagehub_oci::{
    Descriptor, Digest, Manifest, ManifestKind, Platform, Reference, RepoName, Tag,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::ImportError;
use crate::{CoreError, Registry};

/// A running job is leased this long between progress reports; a runner that died
/// leaves it due again afterwards.
const LEASE_SECS: i64 = 300;
/// How often a running job reports the bytes of the blobs still arriving.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Most child manifests of an index one import copies.
const MAX_CHILDREN: usize = 128;
/// The first wait before a job whose failure may pass runs again; it doubles per try.
const FIRST_RETRY_SECS: u64 = 15;

/// How far a job got, as its JSON `progress`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub blobs_done: u64,
    pub blobs_total: u64,
    /// Blobs the hub already held, linked rather than downloaded.
    pub blobs_linked: u64,
    /// The target already held this very image: nothing was pulled.
    pub unchanged: bool,
    pub platforms: Vec<PlatformProgress>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlatformProgress {
    pub platform: String,
    pub digest: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub blobs_done: u64,
    pub blobs_total: u64,
}

/// Why a job stopped before its end.
enum Stop {
    Cancelled,
    Upstream(ClientError),
    /// What was asked cannot be done; the message says why.
    Invalid(String),
    Core(CoreError),
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        Stop::Upstream(e)
    }
}

impl From<CoreError> for Stop {
    fn from(e: CoreError) -> Self {
        Stop::Core(e)
    }
}

impl From<imagehub_metadata::MetadataError> for Stop {
    fn from(e: imagehub_metadata::MetadataError) -> Self {
        Stop::Core(e.into())
    }
}

/// A manifest to store: its bytes, media type and digest.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
}

/// What an upstream image holds, before importing it.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub digest: String,
    pub media_type: String,
    /// Per platform (`linux/amd64`; `image` for a single-platform manifest), its size.
    pub platforms: Vec<(String, u64)>,
    /// Bytes of all its blobs, each counted once.
    pub size: u64,
}

/// One blob to transfer, and the platform it is counted under.
struct BlobJob {
    descriptor: Descriptor,
    platform: usize,
}

impl Registry {
    /// Runs import jobs for as long as the server runs, `workers` at a time; jobs a
    /// previous run left running are taken up again.
    pub async fn run_imports(&self) {
        if let Err(e) = self.meta.requeue_running_imports().await {
            tracing::error!(error = %e, "could not take up the imports of an earlier run");
        }
        if let Err(e) = self.meta.fail_running_sync_runs().await {
            tracing::error!(error = %e, "could not close the sync runs of an earlier run");
        }
        let workers = self.imports.settings().workers.max(1);
        let permits = Arc::new(tokio::sync::Semaphore::new(workers));
        loop {
            self.start_due_sync_runs().await;
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            match self.meta.claim_import_job(LEASE_SECS).await {
                Ok(Some(job)) => {
                    let registry = self.clone();
                    tokio::spawn(async move {
                        registry.run_import(job).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    // Woken by a new job; otherwise look again for one whose wait ended.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.imports.wake.notified())
                            .await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "could not claim an import job");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    async fn run_import(&self, job: ImportJobRow) {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let result = self.import(&job, &progress).await;
        let settings = self.imports.settings();
        let retry = |stop_reason: String, wait: Duration| async move {
            let run_after = SystemTime::now() + wait;
            let at = unix(run_after);
            let reason = format!("{stop_reason}; trying again at {}", rfc3339(run_after));
            if let Err(e) = self.meta.requeue_import_job(job.id, at, &reason).await {
                tracing::error!(job = job.id, error = %e, "could not requeue an import");
            }
        };
        let backoff =
            Duration::from_secs(FIRST_RETRY_SECS << job.attempts.saturating_sub(1).min(8));
        let may_retry = job.attempts < settings.max_attempts;
        let failed = |reason: String| async move {
            let json =
                serde_json::to_string(&*progress.lock().unwrap_or_else(|e| e.into_inner())).ok();
            let finish = self.meta.finish_import_job(
                job.id,
                ImportState::Failed,
                Some(&reason),
                None,
                json.as_deref(),
            );
            if let Err(e) = finish.await {
                tracing::error!(job = job.id, error = %e, "could not record an import's failure");
            }
        };
        match result {
            Ok((digest, done)) => {
                let json = serde_json::to_string(&done).ok();
                let digest = digest.to_string();
                let finish = self.meta.finish_import_job(
                    job.id,
                    ImportState::Succeeded,
                    None,
                    Some(&digest),
                    json.as_deref(),
                );
                if let Err(e) = finish.await {
                    tracing::error!(job = job.id, error = %e, "could not record an import's success");
                }
                tracing::info!(job = job.id, source = %job.source, target = %job.target_repository, %digest, "imported");
            }
            Err(Stop::Cancelled) => tracing::info!(job = job.id, "import cancelled"),
            Err(Stop::Upstream(ClientError::RateLimited { registry, retry_at })) if may_retry => {
                let wait = retry_at.duration_since(SystemTime::now()).unwrap_or_default();
                retry(format!("rate limited by {registry}"), wait.max(Duration::from_secs(1)))
                    .await;
            }
            Err(Stop::Upstream(e)) if e.is_transient() && may_retry => {
                retry(e.to_string(), backoff).await
            }
            Err(Stop::Upstream(e)) => failed(e.to_string()).await,
            Err(Stop::Invalid(reason)) => failed(reason).await,
            Err(Stop::Core(e)) if may_retry => {
                tracing::error!(job = job.id, error = %e, "an import could not store what it pulled");
                retry("the hub could not store the image".into(), backoff).await;
            }
            Err(Stop::Core(e)) => {
                tracing::error!(job = job.id, error = %e, "an import could not store what it pulled");
                failed("the hub could not store the image; the server log says why".into()).await;
            }
        }
        self.imports.forget(job.id);
        self.imports.changed();
    }

    async fn import(
        &self,
        job: &ImportJobRow,
        progress: &Arc<Mutex<Progress>>,
    ) -> Result<(Digest, Progress), Stop> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| Stop::Invalid(format!("{what}: {e}"));
        let source: RemoteReference = job.source.parse().map_err(|e| invalid("source_url", &e))?;
        let target: RepoName =
            job.target_repository.parse().map_err(|e| invalid("target_image", &e))?;
        let tag: Option<Tag> = job
            .target_tag
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| invalid("target_tag", &e))?;
        let filters: Option<Vec<Platform>> = match &job.platforms {
            None => None,
            Some(json) => {
                let names: Vec<String> =
                    serde_json::from_str(json).map_err(|e| invalid("platforms", &e))?;
                Some(
                    names
                        .iter()
                        .map(|n| n.parse::<Platform>())
                        .collect::<Result<_, _>>()
                        .map_err(|e| Stop::Invalid(format!("platforms: {e}")))?,
                )
            }
        };
        let credentials = self.imports.sealer.open(job.credentials.as_deref())?;
        let client = self.imports.client()?;
        let upstream = Target::of(&source, &credentials);

        let head = client.head_manifest(&upstream, &source.reference()).await?;
        let Some(head) = head else {
            return Err(Stop::Upstream(ClientError::NotFound {
                what: format!("manifest {source}"),
            }));
        };
        if let Some(digest) = &head.digest
            && filters.is_none()
            && self.holds(&target, tag.as_ref(), digest).await?
        {
            let unchanged = Progress { unchanged: true, ..Progress::default() };
            return Ok((digest.clone(), unchanged));
        }
        let reference = head.digest.clone().map_or_else(|| source.reference(), Reference::Digest);
        let top = client.manifest(&upstream, &reference).await?;
        let top =
            Fetched { bytes: top.bytes.to_vec(), media_type: top.media_type, digest: top.digest };
        let parsed = Manifest::parse(Some(&top.media_type), &top.bytes)
            .map_err(|e| invalid("manifest", &e))?;

        let mut children = Vec::new();
        let mut blobs = Vec::new();
        let top = match parsed.kind {
            ManifestKind::Index => {
                let chosen: Vec<&Descriptor> = parsed
                    .manifests
                    .iter()
                    .filter(|d| filters.as_ref().is_none_or(|f| f.iter().any(|f| d.is_for(f))))
                    .collect();
                if chosen.len() > MAX_CHILDREN {
                    return Err(Stop::Invalid(format!(
                        "{source} lists {} manifests; an import copies at most {MAX_CHILDREN} (choose platforms)",
                        chosen.len()
                    )));
                }
                if chosen.is_empty() {
                    let offered: Vec<String> = parsed
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(Platform::to_string)
                        .collect();
                    return Err(Stop::Invalid(format!(
                        "platforms: none of those asked for is in {source}, which has {}",
                        offered.join(", ")
                    )));
                }
                for descriptor in &chosen {
                    let child = client
                        .manifest(&upstream, &Reference::Digest(descriptor.digest.clone()))
                        .await?;
                    let child = Fetched {
                        bytes: child.bytes.to_vec(),
                        media_type: child.media_type,
                        digest: child.digest,
                    };
                    let manifest = Manifest::parse(Some(&child.media_type), &child.bytes)
                        .map_err(|e| invalid("manifest", &e))?;
                    if manifest.kind == ManifestKind::Index {
                        return Err(Stop::Invalid(format!(
                            "{source} nests an index in its index, which imports do not copy yet"
                        )));
                    }
                    let platform = descriptor
                        .platform
                        .as_ref()
                        .map_or_else(|| "unknown".into(), Platform::to_string);
                    push_platform(progress, &mut blobs, platform, &child.digest, &manifest);
                    children.push(child);
                }
                if chosen.len() == parsed.manifests.len() {
                    top
                } else {
                    narrowed_index(&top, &chosen)?
                }
            }
            ManifestKind::Image => {
                push_platform(progress, &mut blobs, "image".into(), &top.digest, &parsed);
                top
            }
        };
        // The plan is known: show its totals before the first byte moves.
        let planned = serde_json::to_string(&*progress.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default();
        if !self.meta.import_progress(job.id, LEASE_SECS, &planned).await? {
            return Err(Stop::Cancelled);
        }
        self.imports.changed();
        self.transfer(job, &client, &upstream, &target, blobs, progress).await?;
        for child in &children {
            let reference = Reference::Digest(child.digest.clone());
            self.put_manifest(
                &target,
                &reference,
                Some(&child.media_type),
                &child.bytes,
                Some(&job.created_by),
            )
            .await?;
        }
        if self.imports.is_cancelled(job.id) {
            return Err(Stop::Cancelled);
        }
        let reference =
            tag.clone().map_or_else(|| Reference::Digest(top.digest.clone()), Reference::Tag);
        self.put_manifest(
            &target,
            &reference,
            Some(&top.media_type),
            &top.bytes,
            Some(&job.created_by),
        )
        .await?;
        let event = NewAuditEvent {
            actor: Some(&job.created_by),
            action: AuditAction::ImageImport,
            namespace: target.namespace(),
            target: Some(&format!(
                "{target}:{}",
                tag.as_ref().map_or(top.digest.to_string(), Tag::to_string)
            )),
            client: None,
            detail: Some(
                json!({"source": job.source, "digest": top.digest.to_string(), "job": job.id}),
            ),
        };
        if let Err(e) = self.meta.record_audit(event).await {
            tracing::error!(error = %e, "could not record an import in the audit log");
        }
        let done = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok((top.digest, done))
    }

    /// Reads what `source` holds (its manifest, and an index's children) without pulling
    /// a blob: what the import page shows before importing.
    pub async fn inspect_remote(
        &self,
        source: &RemoteReference,
        credentials: &imagehub_client::Credentials,
    ) -> Result<RemoteImage, ImportError> {
        let settings = self.imports.settings();
        if !settings.enabled {
            return Err(ImportError::Disabled);
        }
        super::check_reachable(&settings, source)?;
        let client = self.imports.client()?;
        let upstream = Target::of(source, credentials);
        let top = client.manifest(&upstream, &source.reference()).await?;
        let parsed = Manifest::parse(Some(&top.media_type), &top.bytes)
            .map_err(|e| ImportError::Refused(format!("source_url: {e}")))?;
        let mut seen = std::collections::HashSet::new();
        let mut size = 0;
        let mut count = |manifest: &Manifest| {
            let mut platform_size = 0;
            for blob in manifest.blob_references() {
                platform_size += blob.size;
                if seen.insert(blob.digest.clone()) {
                    size += blob.size;
                }
            }
            platform_size
        };
        let mut platforms = Vec::new();
        match parsed.kind {
            ManifestKind::Image => platforms.push(("image".to_string(), count(&parsed))),
            ManifestKind::Index => {
                // The children an index lists for platforms, not its attestations.
                for child in parsed
                    .manifests
                    .iter()
                    .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
                    .take(32)
                {
                    let fetched = client
                        .manifest(&upstream, &Reference::Digest(child.digest.clone()))
                        .await?;
                    let manifest = Manifest::parse(Some(&fetched.media_type), &fetched.bytes)
                        .map_err(|e| ImportError::Refused(format!("source_url: {e}")))?;
                    let name = child
                        .platform
                        .as_ref()
                        .map_or_else(|| "unknown".into(), Platform::to_string);
                    platforms.push((name, count(&manifest)));
                }
            }
        }
        Ok(RemoteImage {
            digest: top.digest.to_string(),
            media_type: top.media_type,
            platforms,
            size,
        })
    }

    /// Whether `target` already holds `digest` under `tag` (or at all, without a tag).
    async fn holds(
        &self,
        target: &RepoName,
        tag: Option<&Tag>,
        digest: &Digest,
    ) -> Result<bool, Stop> {
        let stored = match tag {
            Some(tag) => self.meta.manifest_by_tag(target, tag).await?,
            None => self.meta.manifest_by_digest(target, digest).await?,
        };
        Ok(stored.is_some_and(|m| m.digest == *digest))
    }

    /// Transfers the blobs, `transfers` at a time, reporting progress after each.
    async fn transfer(
        &self,
        job: &ImportJobRow,
        client: &imagehub_client::RegistryClient,
        upstream: &Target<'_>,
        target: &RepoName,
        blobs: Vec<BlobJob>,
        progress: &Arc<Mutex<Progress>>,
    ) -> Result<(), Stop> {
        let transfers = self.imports.settings().transfers.max(1);
        // Bytes received of blobs still arriving, so that a big layer shows progress
        // before it ends.
        let arriving = Arc::new(AtomicU64::new(0));
        let work = futures_util::stream::iter(blobs)
            .map(|blob| {
                let arriving = arriving.clone();
                async move {
                    let received = Arc::new(AtomicU64::new(0));
                    let counted = (arriving.clone(), received.clone());
                    let result = self
                        .transfer_blob(job, client, upstream, target, &blob.descriptor, counted)
                        .await;
                    arriving.fetch_sub(received.load(Ordering::Relaxed), Ordering::Relaxed);
                    let linked = result?;
                    let json = {
                        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                        let size = blob.descriptor.size;
                        (p.bytes_done, p.blobs_done) = (p.bytes_done + size, p.blobs_done + 1);
                        p.blobs_linked += u64::from(linked);
                        let platform = &mut p.platforms[blob.platform];
                        (platform.bytes_done, platform.blobs_done) =
                            (platform.bytes_done + size, platform.blobs_done + 1);
                        serde_json::to_string(&*p).unwrap_or_default()
                    };
                    self.report(job, &json).await
                }
            })
            .buffer_unordered(transfers)
            .try_collect::<Vec<()>>();
        tokio::pin!(work);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return done.map(drop),
                _ = tick.tick() => {
                    let json = {
                        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        p.bytes_done += arriving.load(Ordering::Relaxed);
                        serde_json::to_string(&p).unwrap_or_default()
                    };
                    self.report(job, &json).await?;
                }
            }
        }
    }

    /// Records a job's progress (extending its lease); `Cancelled` once it was cancelled.
    async fn report(&self, job: &ImportJobRow, progress: &str) -> Result<(), Stop> {
        let running = self.meta.import_progress(job.id, LEASE_SECS, progress).await?;
        self.imports.changed();
        match running {
            true => Ok(()),
            false => Err(Stop::Cancelled),
        }
    }

    /// Links a blob the hub holds, or downloads it; `true` when it was linked.
    async fn transfer_blob(
        &self,
        job: &ImportJobRow,
        client: &imagehub_client::RegistryClient,
        upstream: &Target<'_>,
        target: &RepoName,
        blob: &Descriptor,
        (arriving, received): (Arc<AtomicU64>, Arc<AtomicU64>),
    ) -> Result<bool, Stop> {
        if self.imports.is_cancelled(job.id) {
            return Err(Stop::Cancelled);
        }
        if self.link_stored_blob(target, &blob.digest).await? {
            return Ok(true);
        }
        let stream = client.blob(upstream, &blob.digest, Some(blob.size)).await?;
        let imports = self.imports.clone();
        let id = job.id;
        // The store sees only that the body failed; keep the upstream's reason.
        let failure: Arc<Mutex<Option<ClientError>>> = Arc::default();
        let seen = failure.clone();
        let stream = stream
            .inspect_ok(move |chunk| {
                arriving.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            })
            .inspect_err(move |e| *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone()))
            // A cancellation ends the download at its next chunk.
            .take_while(move |_| std::future::ready(!imports.is_cancelled(id)));
        match self.push_blob(target, &blob.digest, stream, Some(blob.size)).await {
            Ok(_) => Ok(false),
            Err(_) if self.imports.is_cancelled(job.id) => Err(Stop::Cancelled),
            Err(e) => match failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(upstream) => Err(Stop::Upstream(upstream)),
                None => Err(Stop::Core(e)),
            },
        }
    }
}

/// Counts a platform's blobs into the plan and the progress.
fn push_platform(
    progress: &Arc<Mutex<Progress>>,
    blobs: &mut Vec<BlobJob>,
    platform: String,
    digest: &Digest,
    manifest: &Manifest,
) {
    let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
    let index = p.platforms.len();
    let mut line = PlatformProgress { platform, digest: digest.to_string(), ..Default::default() };
    for descriptor in
        manifest.blob_references().filter(|d| crate::registry::is_distributable(&d.media_type))
    {
        if blobs.iter().any(|b| b.descriptor.digest == descriptor.digest) {
            continue;
        }
        (line.bytes_total, line.blobs_total) =
            (line.bytes_total + descriptor.size, line.blobs_total + 1);
        (p.bytes_total, p.blobs_total) = (p.bytes_total + descriptor.size, p.blobs_total + 1);
        blobs.push(BlobJob { descriptor: descriptor.clone(), platform: index });
    }
    p.platforms.push(line);
}

/// The index with only the `chosen` manifests: a new, valid index (its own digest).
fn narrowed_index(index: &Fetched, chosen: &[&Descriptor]) -> Result<Fetched, Stop> {
    let mut value: Value = serde_json::from_slice(&index.bytes)
        .map_err(|e| Stop::Invalid(format!("manifest: {e}")))?;
    let keep: Vec<String> = chosen.iter().map(|d| d.digest.to_string()).collect();
    if let Some(manifests) = value.get_mut("manifests").and_then(Value::as_array_mut) {
        manifests.retain(|m| m["digest"].as_str().is_some_and(|d| keep.iter().any(|k| k == d)));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| Stop::Invalid(format!("manifest: {e}")))?;
    Ok(Fetched { digest: Digest::sha256_of(&bytes), bytes, media_type: index.media_type.clone() })
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339(at: SystemTime) -> String {
    let seconds = unix(at);
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_string())
}
