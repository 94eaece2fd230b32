//! The indexing job: after a manifest is pushed, its base info (platforms, size,
//! created, config digest) and its details (README in the image, labels) are computed
//! off the request path, from the queue in the database. A push never waits for this
//! and never fails because of it: a failure is recorded on the image.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use imagehub_extract::{
    Budget, DetailSource, Details, Layer, LimitExceeded, Limits, ReadmeSearch, details_from_labels,
    find_readme, parse_readme,
};
use imagehub_metadata::{ImageInfo, Job, JobOutcome};
use imagehub_oci::{Descriptor, Digest, Manifest, ManifestKind, RepoName};
use serde_json::json;
use tokio::sync::Notify;

use crate::image_config::ImageConfig;
use crate::{CoreError, Registry};

/// A job is leased for this long; if its runner dies, it is due again afterwards.
const LEASE_SECS: i64 = 600;
/// Jobs claimed, and their results written, at a time.
const BATCH: u32 = 64;
/// Attempts before a job's failure is recorded on the image and the job dropped.
const MAX_ATTEMPTS: u32 = 5;

/// How indexing reads images: the budget of each job and how many jobs run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    /// What reading one image (or index) may cost.
    pub limits: Limits,
    /// Jobs indexed at once, so that one slow image does not hold up the others.
    pub workers: usize,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings { limits: Limits::default(), workers: 2 }
    }
}

/// The indexer's shared state: it wakes the background runner when a push queued work,
/// lets one runner at a time work the queue (so that "run the queue now" returns only
/// when the jobs due when it was called are done, whoever ran them), and holds the flag
/// that stops extraction at shutdown.
#[derive(Default)]
pub struct Wakeup {
    notify: Notify,
    running: tokio::sync::Mutex<()>,
    cancel: Arc<AtomicBool>,
}

impl Wakeup {
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// What indexing one image manifest found.
struct Indexed {
    config_digest: Option<Digest>,
    config: ImageConfig,
    size: u64,
    readme: Option<Details>,
    labels: Details,
    error: Option<String>,
}

impl Registry {
    /// Stops extraction in progress at its next read and makes later jobs fail the same
    /// way (they stay queued for the next start): for shutdown, which must not wait on
    /// a hostile image.
    pub fn stop_indexing(&self) {
        self.indexer.cancel.store(true, Ordering::Relaxed);
    }

    fn indexing_stopped(&self) -> bool {
        self.indexer.cancel.load(Ordering::Relaxed)
    }

    /// Waits until a push queues indexing work or `timeout` passes; says which.
    pub async fn wait_for_index_work(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.indexer.notify.notified()).await.is_ok()
    }

    /// Indexing jobs waiting or running.
    pub async fn pending_index_jobs(&self) -> Result<u64, CoreError> {
        Ok(self.meta.pending_jobs().await?)
    }

    /// Runs due indexing jobs until none is left; returns how many ran.
    ///
    /// Jobs are claimed in batches and each batch's results are written in one
    /// transaction, so that indexing after a burst of pushes takes the database's write
    /// lock a few times rather than several times per image.
    pub async fn run_index_jobs(&self) -> Result<usize, CoreError> {
        let _one_runner = self.indexer.running.lock().await;
        // Job bookkeeping and results are redone if a crash loses them, so they commit
        // without waiting for fsync: pushes keep the disk to themselves.
        let relaxed = self.meta.relaxed();
        let mut ran = 0;
        loop {
            if self.indexing_stopped() {
                return Ok(ran);
            }
            let jobs = relaxed.claim_jobs(LEASE_SECS, BATCH).await?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            ran += jobs.len();
            let mut outcomes = Vec::with_capacity(jobs.len());
            let mut done = HashSet::new();
            // The same manifest pushed twice in a burst is indexed once.
            let (unique, repeated): (Vec<&Job>, Vec<&Job>) = jobs
                .iter()
                .partition(|job| done.insert((job.repository.as_str(), job.digest.as_str())));
            outcomes.extend(repeated.into_iter().map(nothing_stored));
            // Several at once, each within its own budget, so one slow image (a
            // decompression bomb, a huge image without a README) holds up one worker only.
            let workers = self.settings().index.workers.max(1);
            let work = unique.into_iter().cloned().map(|job| {
                let registry = self.clone();
                async move {
                    let result = registry.index(&job).await;
                    (job, result)
                }
            });
            let results: Vec<(Job, Result<JobOutcome, CoreError>)> =
                futures_util::stream::iter(work).buffer_unordered(workers).collect().await;
            for (job, result) in results {
                match result {
                    Ok(outcome) => outcomes.push(outcome),
                    // Interrupted by shutdown: the job is given back to run first next time.
                    Err(_) if self.indexing_stopped() => relaxed.release_job(job.id).await?,
                    Err(e) if job.attempts < MAX_ATTEMPTS => {
                        tracing::warn!(repository = %job.repository, digest = %job.digest, attempt = job.attempts, error = %e, "indexing failed; will retry");
                        relaxed.retry_job(job.id, &e.to_string(), 30 * (1 << job.attempts)).await?;
                    }
                    Err(e) => {
                        tracing::error!(repository = %job.repository, digest = %job.digest, error = %e, "indexing failed for good");
                        let info = ImageInfo {
                            platforms_json: "[]".into(),
                            error: Some(e.to_string()),
                            ..ImageInfo::default()
                        };
                        outcomes.push(JobOutcome { info: Some(info), ..nothing_stored(&job) });
                    }
                }
            }
            relaxed.finish_jobs(&outcomes).await?;
            let repositories: BTreeSet<&str> =
                outcomes.iter().map(|o| o.repository.as_str()).collect();
            self.refresh_search_of(&relaxed, repositories).await?;
        }
    }

    /// Indexes one manifest. Problems with the image's content are recorded on it;
    /// only failures of the registry itself (database, missing files) are errors, so
    /// the job is retried.
    async fn index(&self, job: &Job) -> Result<JobOutcome, CoreError> {
        let mut outcome = nothing_stored(job);
        let repository: RepoName = job
            .repository
            .parse()
            .map_err(|e: imagehub_oci::NameError| CoreError::Internal(Box::new(e)))?;
        let digest: Digest = job
            .digest
            .parse()
            .map_err(|e: imagehub_oci::DigestError| CoreError::Internal(Box::new(e)))?;
        // A manifest pushed again (under another tag, say) has the same content, so what
        // was extracted stands; only which image is the latest may have changed.
        if self.meta.image_indexed(repository.as_str(), &job.digest).await? {
            return Ok(outcome);
        }
        let Some(stored) = self.meta.manifest_by_digest(&repository, &digest).await? else {
            return Ok(outcome); // deleted since it was pushed
        };
        let manifest = Manifest::parse(Some(&stored.media_type), &stored.content)?;
        let settings = self.settings().index;
        let budget = Arc::new(Budget::new(settings.limits, self.indexer.cancel.clone()));
        let (info, readme, labels) = match manifest.kind {
            ManifestKind::Image => {
                let image = self.index_image(&manifest, &budget).await?;
                let platforms = json!([platform_json(&image.config, image.size)]);
                let info = ImageInfo {
                    config_digest: image.config_digest.as_ref().map(Digest::to_string),
                    platforms_json: platforms.to_string(),
                    size: Some(image.size),
                    created: image.config.created.clone(),
                    error: image.error.clone(),
                };
                (info, image.readme, with_annotations(image.labels, &manifest.annotations))
            }
            ManifestKind::Index => self.index_index(&repository, &manifest, &budget).await?,
        };
        // Details from the image meet the rules of details typed by a user: what fails
        // is dropped, and why is recorded on the image.
        let (readme, dropped_from_readme) = match readme {
            Some(details) => {
                let (details, dropped) = details.sanitized();
                (Some(details), dropped)
            }
            None => (None, Vec::new()),
        };
        let (labels, dropped_from_labels) = labels.sanitized();
        let dropped: Vec<String> = dropped_from_readme
            .iter()
            .map(|d| format!("README front matter {d}"))
            .chain(dropped_from_labels.iter().map(|d| format!("labels {d}")))
            .collect();
        let mut info = info;
        if !dropped.is_empty() {
            let note = format!("details dropped: {}", dropped.join("; "));
            info.error = Some(match info.error.take() {
                Some(error) => format!("{error}; {note}"),
                None => note,
            });
        }
        outcome.info = Some(info);
        let readme_json = readme.map(|d| serde_json::to_string(&d).expect("details serialise"));
        let labels_json = (!labels.is_empty())
            .then(|| serde_json::to_string(&labels).expect("details serialise"));
        outcome.details =
            vec![(DetailSource::ImageReadme, readme_json), (DetailSource::Labels, labels_json)];
        Ok(outcome)
    }

    /// Config, size, README and labels of an image manifest.
    async fn index_image(
        &self,
        manifest: &Manifest,
        budget: &Arc<Budget>,
    ) -> Result<Indexed, CoreError> {
        let mut indexed = Indexed {
            config_digest: None,
            config: ImageConfig::default(),
            size: 0,
            readme: None,
            labels: Details::default(),
            error: None,
        };
        if let Some(config) = &manifest.config {
            indexed.config_digest = Some(config.digest.clone());
            indexed.size += config.size;
            match self.read_config(config).await? {
                Ok(parsed) => indexed.config = parsed,
                Err(problem) => indexed.error = Some(problem),
            }
        }
        indexed.size += manifest.layers.iter().map(|l| l.size).sum::<u64>();
        if let Some(labels) = indexed.config.config.as_ref().and_then(|c| c.labels.as_ref()) {
            indexed.labels = details_from_labels(labels);
        }
        if manifest.layers.iter().all(|l| is_filesystem_layer(&l.media_type))
            && !manifest.layers.is_empty()
        {
            match self.search_readme(&manifest.layers, budget.clone()).await? {
                Ok(Some(readme)) => indexed.readme = Some(readme),
                Ok(None) => {}
                Err(problem) => indexed.error = Some(problem),
            }
        }
        Ok(indexed)
    }

    /// An index: platforms of its children; details from the first child with a README.
    async fn index_index(
        &self,
        repository: &RepoName,
        manifest: &Manifest,
        budget: &Arc<Budget>,
    ) -> Result<(ImageInfo, Option<Details>, Details), CoreError> {
        let mut platforms = Vec::new();
        let (mut readme, mut labels, mut first_size, mut errors) = (None, None, None, Vec::new());
        for child in &manifest.manifests {
            let Some(stored) = self.meta.manifest_by_digest(repository, &child.digest).await?
            else {
                continue;
            };
            let Ok(child_manifest) = Manifest::parse(Some(&stored.media_type), &stored.content)
            else {
                continue;
            };
            if child_manifest.kind != ManifestKind::Image {
                continue;
            }
            let image = self.index_image(&child_manifest, budget).await?;
            let mut platform = platform_json(&image.config, image.size);
            if let Some(p) = &child.platform {
                platform["os"] = p.os.clone().into();
                platform["architecture"] = p.architecture.clone().into();
                if let Some(v) = &p.variant {
                    platform["variant"] = v.clone().into();
                }
            }
            platforms.push(platform);
            first_size.get_or_insert(image.size);
            if readme.is_none() {
                readme = image.readme;
            }
            if labels.is_none() && !image.labels.is_empty() {
                labels = Some(image.labels);
            }
            errors.extend(image.error.map(|e| format!("{}: {e}", child.digest)));
        }
        let info = ImageInfo {
            config_digest: None,
            platforms_json: serde_json::Value::from(platforms).to_string(),
            size: first_size,
            created: None,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        };
        Ok((info, readme, with_annotations(labels.unwrap_or_default(), &manifest.annotations)))
    }

    /// The README found in `layers`, or why the layers could not be read.
    async fn search_readme(
        &self,
        layers: &[Descriptor],
        budget: Arc<Budget>,
    ) -> Result<Result<Option<Details>, String>, CoreError> {
        let refs: Vec<Layer> = layers
            .iter()
            .map(|l| Layer { digest: l.digest.to_string(), media_type: l.media_type.clone() })
            .collect();
        let digests: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
        let (blobs, handle) = (self.blobs.clone(), tokio::runtime::Handle::current());
        let search = tokio::task::spawn_blocking(move || {
            let open = |layer: &Layer| {
                let i = refs.iter().position(|r| r.digest == layer.digest).unwrap_or(0);
                blobs.blocking_reader(&digests[i], &handle)
            };
            find_readme(&refs, open, &budget)
        })
        .await
        .map_err(|e| CoreError::Internal(Box::new(e)))?;
        Ok(match search {
            Ok(ReadmeSearch::Found { text, truncated, .. }) => {
                let readme = parse_readme(&text, truncated);
                if let Some(problem) = readme.front_matter_error {
                    tracing::info!(%problem, "README front matter ignored");
                }
                Ok(Some(readme.details))
            }
            Ok(ReadmeSearch::Deleted { .. } | ReadmeSearch::NotFound { .. }) => Ok(None),
            // A layer file that cannot be opened is the registry's problem: retry.
            Err(imagehub_extract::LayerError::Io { source, .. }) => {
                return Err(CoreError::Internal(Box::new(source)));
            }
            // Shutdown is no fault of the image: the job runs again after the restart.
            Err(
                e @ imagehub_extract::LayerError::Limit { limit: LimitExceeded::Cancelled, .. },
            ) => {
                return Err(CoreError::Internal(Box::new(e)));
            }
            Err(e) => Err(e.to_string()),
        })
    }
}

/// The outcome of `job` that stores nothing and only ends it.
fn nothing_stored(job: &Job) -> JobOutcome {
    JobOutcome {
        job_id: job.id,
        repository: job.repository.clone(),
        digest: job.digest.clone(),
        info: None,
        details: Vec::new(),
    }
}

/// Layers that are filesystem tars (OCI and Docker), as opposed to artifact files.
fn is_filesystem_layer(media_type: &str) -> bool {
    media_type.contains(".tar") || media_type.contains("rootfs.diff")
}

fn platform_json(config: &ImageConfig, size: u64) -> serde_json::Value {
    let mut p = json!({"os": config.os, "architecture": config.architecture, "size": size});
    if let Some(v) = &config.variant {
        p["variant"] = v.clone().into();
    }
    p
}

/// Labels, with the manifest's own `org.opencontainers.image.*` annotations filling
/// what the config's labels leave empty.
fn with_annotations(labels: Details, annotations: &BTreeMap<String, String>) -> Details {
    Details::merge(vec![
        (DetailSource::Labels, labels),
        (DetailSource::Labels, details_from_labels(annotations)),
    ])
}
