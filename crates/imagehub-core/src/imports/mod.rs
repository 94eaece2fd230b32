//! Importing images from other registries: a job per image, persisted, run in the
//! background by [`Registry::run_imports`] (`run.rs`), with sealed upstream credentials
//! (`seal.rs`). Who may import where is decided above, at the edge, by the same policy
//! as a push; this module decides what may be reached (the operator's settings) and
//! keeps the job's promises: resumable, never failed while it will still retry.

mod run;
mod seal;
mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use imagehub_client::{ClientSettings, Credentials, RegistryClient, RemoteReference, is_public};
use imagehub_metadata::{ImportGroupRow, ImportJobRow, ImportsOf, NewImportJob};
use imagehub_oci::{RepoName, Tag};
use tokio::sync::Notify;

use crate::{CoreError, Registry};
pub use run::RemoteImage;
pub use seal::Sealer;
pub use sync::{MIN_INTERVAL, Schedule, SyncRuleSpec, TagOutcome};

/// What the operator configured (`[import]`).
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub enabled: bool,
    /// Jobs run at once.
    pub workers: usize,
    /// Blobs one job transfers at once.
    pub transfers: usize,
    /// Tries of a job whose failures may pass (rate limits, upstream down) before it fails.
    pub max_attempts: u32,
    pub client: ClientSettings,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            enabled: true,
            workers: 2,
            transfers: 4,
            max_attempts: 8,
            client: ClientSettings::default(),
        }
    }
}

/// Why an import was not started.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("imports are turned off on this hub ([import] enabled = false)")]
    Disabled,
    /// The operator's rules refuse the source; the message names the field.
    #[error("{0}")]
    Refused(String),
    #[error("no import job {0}")]
    NoSuchJob(i64),
    /// A bound on what one namespace may have waiting.
    #[error("{0}")]
    TooMany(String),
    #[error("no import group {0}")]
    NoSuchGroup(i64),
    #[error("no sync rule {0}")]
    NoSuchRule(i64),
    /// The upstream registry answered with a failure (reading an image to show it).
    #[error(transparent)]
    Upstream(#[from] imagehub_client::ClientError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<imagehub_metadata::MetadataError> for ImportError {
    fn from(e: imagehub_metadata::MetadataError) -> Self {
        ImportError::Core(e.into())
    }
}

/// One image to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub source: RemoteReference,
    pub target: RepoName,
    /// The tag to give it; `None` keeps it by digest only.
    pub tag: Option<Tag>,
    /// `os/arch[/variant]` to keep of an index; `None` keeps all.
    pub platforms: Option<Vec<String>>,
    pub credentials: Credentials,
    /// The user who asked.
    pub user: String,
}

/// Most images in one batch.
pub const MAX_BATCH: usize = 100;
/// Most unfinished import jobs of one namespace.
pub const MAX_PENDING: u64 = 1000;
/// Most sync rules of one namespace.
pub const MAX_RULES: usize = 100;

/// A request checked and ready to store.
struct Prepared {
    namespace: String,
    source: String,
    platforms: Option<String>,
    credentials: Option<Vec<u8>>,
}

impl Prepared {
    fn job<'a>(&'a self, request: &'a ImportRequest, group: Option<i64>) -> NewImportJob<'a> {
        NewImportJob {
            namespace: &self.namespace,
            created_by: &request.user,
            source: &self.source,
            target_repository: request.target.as_str(),
            target_tag: request.tag.as_ref().map(Tag::as_str),
            platforms: self.platforms.clone(),
            credentials: self.credentials.clone(),
            group,
        }
    }
}

/// The importer's shared state: settings, the client built from them, the runner's
/// wake-up and the jobs cancelled while they run.
pub(crate) struct Imports {
    settings: RwLock<ImportSettings>,
    client: RwLock<Option<Arc<RegistryClient>>>,
    wake: Notify,
    /// Told whenever a job changes (progress, a wait, its end).
    changed: Notify,
    cancelled: Mutex<HashMap<i64, bool>>,
    sealer: Sealer,
}

impl Imports {
    pub(crate) fn new(sealer: Sealer) -> Imports {
        Imports {
            settings: RwLock::new(ImportSettings::default()),
            client: RwLock::new(None),
            wake: Notify::new(),
            changed: Notify::new(),
            cancelled: Mutex::new(HashMap::new()),
            sealer,
        }
    }

    fn settings(&self) -> ImportSettings {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn client(&self) -> Result<Arc<RegistryClient>, CoreError> {
        if let Some(client) = self.client.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(client);
        }
        let client = RegistryClient::new(self.settings().client)
            .map(Arc::new)
            .map_err(|e| CoreError::Internal(e.to_string().into()))?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    pub(crate) fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// Another process queued or changed a job: waits look again, an idle worker too.
    pub(crate) fn changed_elsewhere(&self) {
        self.changed.notify_waiters();
        self.wake.notify_one();
    }

    fn cancel(&self, id: i64) {
        self.cancelled.lock().unwrap_or_else(|e| e.into_inner()).insert(id, true);
    }

    fn is_cancelled(&self, id: i64) -> bool {
        self.cancelled.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id)
    }

    fn forget(&self, id: i64) {
        self.cancelled.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

impl Registry {
    /// Applies the operator's `[import]` settings.
    pub fn configure_imports(&self, settings: ImportSettings) {
        *self.imports.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        *self.imports.client.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Queues an import; the runner starts it as soon as a worker is free.
    pub async fn create_import(&self, request: ImportRequest) -> Result<ImportJobRow, ImportError> {
        let prepared = self.prepare_import(&request)?;
        self.check_pending(&prepared.namespace, 1).await?;
        let job = self.meta.create_import_job(prepared.job(&request, None)).await?;
        self.imports.wake.notify_one();
        Ok(job)
    }

    /// Queues a batch: one group of jobs, all checked before any is made.
    pub async fn create_import_group(
        &self,
        namespace: &str,
        user: &str,
        requests: &[ImportRequest],
    ) -> Result<(ImportGroupRow, Vec<ImportJobRow>), ImportError> {
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return Err(ImportError::Refused(format!("sources: 1 to {MAX_BATCH} images")));
        }
        let mut prepared = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            let ready = self.prepare_import(request).map_err(|e| match e {
                ImportError::Refused(message) => {
                    ImportError::Refused(format!("sources[{i}].{message}"))
                }
                other => other,
            })?;
            prepared.push(ready);
        }
        self.check_pending(namespace, requests.len() as u64).await?;
        let jobs = prepared.iter().zip(requests).map(|(p, r)| p.job(r, None)).collect();
        let created = self.meta.create_import_group(namespace, user, jobs).await?;
        self.imports.wake.notify_one();
        Ok(created)
    }

    /// Refuses more than [`MAX_PENDING`] unfinished jobs in a namespace.
    async fn check_pending(&self, namespace: &str, more: u64) -> Result<(), ImportError> {
        let pending = self.meta.pending_imports_in(namespace).await?;
        if pending + more > MAX_PENDING {
            return Err(ImportError::TooMany(format!(
                "{namespace} has {pending} imports queued or running; at most {MAX_PENDING} may wait at once"
            )));
        }
        Ok(())
    }

    /// Checks a request against the operator's rules and seals its credentials.
    fn prepare_import(&self, request: &ImportRequest) -> Result<Prepared, ImportError> {
        let settings = self.imports.settings();
        if !settings.enabled {
            return Err(ImportError::Disabled);
        }
        check_reachable(&settings, &request.source)?;
        if let Some(platforms) = &request.platforms {
            for platform in platforms {
                platform
                    .parse::<imagehub_oci::Platform>()
                    .map_err(|e| ImportError::Refused(format!("platforms: {e}")))?;
            }
        }
        Ok(Prepared {
            namespace: request.target.namespace().unwrap_or_default().to_string(),
            source: request.source.to_string(),
            platforms: request.platforms.as_ref().map(|p| serde_json::json!(p).to_string()),
            credentials: self.imports.sealer.seal(&request.credentials)?,
        })
    }

    /// A batch and its jobs.
    pub async fn import_group(
        &self,
        id: i64,
    ) -> Result<(ImportGroupRow, Vec<ImportJobRow>), ImportError> {
        self.meta.import_group(id).await?.ok_or(ImportError::NoSuchGroup(id))
    }

    /// Cancels every job of a batch that has not ended; how many were.
    pub async fn cancel_import_group(&self, id: i64, by: &str) -> Result<usize, ImportError> {
        let (_, jobs) = self.import_group(id).await?;
        let mut cancelled = 0;
        for job in jobs.iter().filter(|j| !j.state.is_final()) {
            cancelled += usize::from(self.cancel_import(job.id, by).await?);
        }
        Ok(cancelled)
    }

    pub async fn import_job(&self, id: i64) -> Result<ImportJobRow, ImportError> {
        self.meta.import_job(id).await?.ok_or(ImportError::NoSuchJob(id))
    }

    /// The job once it has ended, or as it is after `timeout` (a long poll).
    pub async fn wait_for_import(
        &self,
        id: i64,
        timeout: std::time::Duration,
    ) -> Result<ImportJobRow, ImportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Listen before looking, so that a change in between is not missed.
            let changed = self.imports.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let job = self.import_job(id).await?;
            if job.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            let _ = tokio::time::timeout_at(look_again(deadline), changed).await;
        }
    }

    /// The job as soon as it differs from `seen` (its state, progress or reason), or as
    /// it is after `timeout`: the steps of a live progress stream.
    pub async fn next_import_change(
        &self,
        seen: &ImportJobRow,
        timeout: std::time::Duration,
    ) -> Result<ImportJobRow, ImportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.imports.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let job = self.import_job(seen.id).await?;
            let differs = job.state != seen.state
                || job.progress != seen.progress
                || job.reason != seen.reason;
            if differs || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            let _ = tokio::time::timeout_at(look_again(deadline), changed).await;
        }
    }

    /// A namespace's or a user's jobs, newest first, older than `before`.
    pub async fn import_jobs(
        &self,
        of: ImportsOf<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ImportJobRow>, ImportError> {
        Ok(self.meta.import_jobs(of, before, limit).await?)
    }

    /// Cancels a job that has not ended: a queued one at once, a running one at its next
    /// step (what it stored stays, for a later import to reuse). `false` if it had ended.
    pub async fn cancel_import(&self, id: i64, by: &str) -> Result<bool, ImportError> {
        let reason = format!("cancelled by {by}");
        let cancelled = self
            .meta
            .finish_import_job(
                id,
                imagehub_metadata::ImportState::Cancelled,
                Some(&reason),
                None,
                None,
            )
            .await?;
        if cancelled {
            self.imports.cancel(id);
            self.imports.changed();
        }
        Ok(cancelled)
    }
}

/// Refuses a source the client would refuse anyway, before a job is made: a loopback,
/// private or link-local address, or `localhost`, that the operator did not list.
pub(crate) fn check_reachable(
    settings: &ImportSettings,
    source: &RemoteReference,
) -> Result<(), ImportError> {
    if settings.client.registries.contains_key(&source.registry) {
        return Ok(());
    }
    let host = match source.registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => source.registry.rsplit_once(':').map_or(source.registry.as_str(), |(host, _)| host),
    };
    let private = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !is_public(ip),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    };
    if private {
        return Err(ImportError::Refused(format!(
            "source_url: {} is a local or private address; the operator must list it under \
             [import.registries] (or IMAGEHUB_IMPORT__INSECURE_REGISTRIES) to import from it",
            source.registry
        )));
    }
    Ok(())
}

/// When a wait for a job's (or a sync run's) change looks at it again: on a change made here at
/// once, else within a second, for another replica (sharing the database) may be
/// running it, whose changes are not announced here.
pub(super) fn look_again(deadline: tokio::time::Instant) -> tokio::time::Instant {
    deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1))
}
