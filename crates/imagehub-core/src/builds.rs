//! Build jobs: cluster images built on the server from the recipes repository the
//! operator configured (`[build]`, seed 003) and pushed into the build organization.
//! A job is persisted; [`Registry::run_builds`] runs them one at a time, each in a copy
//! of its recipe under the work folder (the operator's checkout is never written), and
//! stores the result as a push would. Who may build is decided at the edge.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use imagehub_build::{BuildError, BuildRequest, Compression, InitArgs};
use imagehub_client::Credentials;
use imagehub_metadata::{BuildJobRow, BuildState, NewBuildJob};
use imagehub_oci::{Digest, Manifest, Platform, Reference, RepoName, Tag};
use tokio::sync::Notify;

use crate::{CoreError, Registry};

/// What the operator configured (`[build]`).
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// A checkout of a cluster-image repository (`applications/APP/VERSION/`); builds
    /// are off without one.
    pub recipes_dir: Option<PathBuf>,
    /// The organization built images are pushed into (`ORG/APP:VERSION`).
    pub organization: String,
    /// Platforms built when a request names none.
    pub platforms: Vec<String>,
    /// Whether a recipe's `init.sh` runs (it is the recipe author's code).
    pub run_init: bool,
    pub init_timeout: Duration,
    /// Where recipes are copied and built; kept between builds of an app so that its
    /// saved images and layers are not fetched or written again.
    pub work_dir: PathBuf,
    /// The secret GitHub webhooks sign their bodies with; empty: webhooks are refused.
    pub webhook_secret: String,
    /// Whether each platform's image is also tagged `VERSION-ARCH`, as the sealos CI does.
    pub arch_tags: bool,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            recipes_dir: None,
            organization: "cluster-images".into(),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            run_init: false,
            init_timeout: Duration::from_secs(1800),
            work_dir: PathBuf::from("builds"),
            webhook_secret: String::new(),
            arch_tags: false,
        }
    }
}

/// Why a build was not started.
#[derive(Debug, thiserror::Error)]
pub enum BuildJobError {
    #[error("builds are turned off on this hub (set [build] recipes_dir)")]
    Disabled,
    /// The request names something that cannot be built; the message names the field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The recipes repository has no such app.
    #[error("{0}")]
    NoRecipe(String),
    #[error("no build job {0}")]
    NoSuchJob(i64),
    #[error("{0} builds are waiting already; try again when some have finished")]
    TooMany(u64),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<imagehub_metadata::MetadataError> for BuildJobError {
    fn from(e: imagehub_metadata::MetadataError) -> Self {
        BuildJobError::Core(e.into())
    }
}

/// One build to start.
#[derive(Debug, Clone)]
pub struct BuildJobRequest {
    pub app: String,
    pub version: String,
    /// `os/arch`; `None` for the configured ones.
    pub platforms: Option<Vec<String>>,
    pub user: String,
    /// `api`, `command`, `webhook` or `web`.
    pub origin: &'static str,
}

/// Most builds waiting or running.
pub const MAX_PENDING_BUILDS: u64 = 100;
/// Most of a build's log kept; what a build prints beyond it is dropped.
pub const MAX_LOG_BYTES: i64 = 1 << 20;
const LEASE_SECS: i64 = 120;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The build runner's shared state.
#[derive(Default)]
pub(crate) struct Builds {
    settings: RwLock<BuildSettings>,
    wake: Notify,
    /// Told whenever a job ends.
    ended: Notify,
}

impl Builds {
    /// Another process queued or changed a job: waits look again, an idle runner too.
    pub(crate) fn changed_elsewhere(&self) {
        self.ended.notify_waiters();
        self.wake.notify_one();
    }
}

impl Registry {
    /// Applies the `[build]` configuration.
    pub fn configure_builds(&self, settings: BuildSettings) {
        *self.builds.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    pub fn build_settings(&self) -> BuildSettings {
        self.builds.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The repository a build of `app` is pushed to.
    pub fn build_target(&self, app: &str) -> Result<RepoName, BuildJobError> {
        let organization = self.build_settings().organization;
        format!("{organization}/{}", app.to_ascii_lowercase())
            .parse()
            .map_err(|e| BuildJobError::Invalid { field: "app", message: format!("{e}") })
    }

    /// Queues a build; the runner starts it when the one before it has ended.
    pub async fn create_build(
        &self,
        request: BuildJobRequest,
    ) -> Result<BuildJobRow, BuildJobError> {
        let settings = self.build_settings();
        let recipes = settings.recipes_dir.as_ref().ok_or(BuildJobError::Disabled)?;
        let recipe = imagehub_build::locate(recipes, &request.app, &request.version).map_err(
            |e| match e {
                BuildError::NoRecipe { message } => BuildJobError::NoRecipe(message),
                other => BuildJobError::Invalid { field: "app", message: other.to_string() },
            },
        )?;
        let repository = self.build_target(&recipe.app)?;
        let tag: Tag = request
            .version
            .parse()
            .map_err(|e| BuildJobError::Invalid { field: "version", message: format!("{e}") })?;
        let platforms = request.platforms.unwrap_or(settings.platforms);
        if platforms.is_empty() || platforms.len() > 8 {
            let message = "1 to 8 platforms, such as linux/amd64".to_string();
            return Err(BuildJobError::Invalid { field: "platforms", message });
        }
        for platform in &platforms {
            platform.parse::<Platform>().map_err(|e| BuildJobError::Invalid {
                field: "platforms",
                message: e.to_string(),
            })?;
        }
        let pending = self.meta.pending_builds().await?;
        if pending >= MAX_PENDING_BUILDS {
            return Err(BuildJobError::TooMany(pending));
        }
        let platforms = serde_json::to_string(&platforms).unwrap_or_default();
        let job = NewBuildJob {
            app: &recipe.app,
            version: &recipe.version,
            platforms: &platforms,
            repository: repository.as_str(),
            tag: tag.as_str(),
            created_by: &request.user,
            origin: request.origin,
        };
        let row = self.meta.create_build_job(job).await?;
        self.builds.wake.notify_one();
        Ok(row)
    }

    pub async fn build_job(&self, id: i64) -> Result<BuildJobRow, BuildJobError> {
        self.meta.build_job(id).await?.ok_or(BuildJobError::NoSuchJob(id))
    }

    /// The job once it has ended, or as it is after `wait`.
    pub async fn wait_for_build(
        &self,
        id: i64,
        wait: Duration,
    ) -> Result<BuildJobRow, BuildJobError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ended = self.builds.ended.notified();
            let job = self.build_job(id).await?;
            if job.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            // Woken when any job ends; a second at most, as a job may be cancelled.
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            let _ = tokio::time::timeout_at(until, ended).await;
        }
    }

    /// Jobs newest first (without their logs), older than `before`.
    pub async fn build_jobs(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BuildJobRow>, BuildJobError> {
        Ok(self.meta.build_jobs(before, limit).await?)
    }

    /// Cancels a job that has not ended; a running build stops at its next log flush.
    pub async fn cancel_build(&self, id: i64) -> Result<BuildJobRow, BuildJobError> {
        let job = self.build_job(id).await?;
        let reason = "cancelled";
        self.meta.finish_build_job(job.id, BuildState::Cancelled, Some(reason), None, None).await?;
        self.builds.ended.notify_waiters();
        self.build_job(id).await
    }

    /// Runs build jobs, one at a time, for as long as the server runs; a job an earlier
    /// run left running starts again.
    pub async fn run_builds(&self) {
        if let Err(e) = self.meta.requeue_running_builds().await {
            tracing::error!(error = %e, "could not take up the builds of an earlier run");
        }
        loop {
            match self.meta.claim_build_job(LEASE_SECS).await {
                Ok(Some(job)) => self.run_build(job).await,
                Ok(None) => {
                    // Woken by a new job; otherwise look again for one whose lease ended.
                    let wait = self.builds.wake.notified();
                    let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not claim a build job");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    async fn run_build(&self, job: BuildJobRow) {
        let log = Arc::new(Mutex::new(String::new()));
        // The build's futures borrow across awaits in ways the compiler cannot prove
        // `Send` for every lifetime (stream combinators over borrowed images), so it
        // runs on a blocking thread of its own, driven by this runtime, and stops there
        // when it is cancelled.
        let stop = Arc::new(Notify::new());
        // When this task is dropped (the server stops), the build stops too rather than
        // holding the runtime's shutdown; the job is taken up again at the next start.
        let _stop_on_drop = StopOnDrop(stop.clone());
        let work = {
            let (registry, job, log, stop) = (self.clone(), job.clone(), log.clone(), stop.clone());
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(async {
                    tokio::select! {
                        result = registry.build(&job, log) => Some(result),
                        _ = stop.notified() => None,
                    }
                })
            })
        };
        tokio::pin!(work);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tick.tick() => {
                    if !self.flush_log(&job, &log).await {
                        stop.notify_one();
                        tracing::info!(job = job.id, "build cancelled");
                        return;
                    }
                }
            }
        };
        let result = match result {
            Ok(Some(result)) => result,
            Ok(None) => return,
            Err(e) => Err(format!("the build stopped unexpectedly: {e}")),
        };
        let (state, reason, digest, platforms) = match result {
            Ok((digest, platforms)) => {
                push_line(&log, format!("pushed {}:{} ({digest})", job.repository, job.tag));
                let platforms = serde_json::to_string(&platforms).ok();
                (BuildState::Succeeded, None, Some(digest.to_string()), platforms)
            }
            Err(reason) => {
                push_line(&log, format!("failed: {reason}"));
                (BuildState::Failed, Some(reason), None, None)
            }
        };
        self.flush_log(&job, &log).await;
        let finished = self.meta.finish_build_job(
            job.id,
            state,
            reason.as_deref(),
            digest.as_deref(),
            platforms.as_deref(),
        );
        if let Err(e) = finished.await {
            tracing::error!(job = job.id, error = %e, "could not record how a build ended");
        }
        self.builds.ended.notify_waiters();
    }

    /// Writes what the build printed since the last flush; `false` once it was cancelled.
    async fn flush_log(&self, job: &BuildJobRow, log: &Mutex<String>) -> bool {
        let text = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
        match self.meta.append_build_log(job.id, &text, MAX_LOG_BYTES, LEASE_SECS).await {
            Ok(running) => running,
            Err(e) => {
                tracing::error!(job = job.id, error = %e, "could not write a build's log");
                true
            }
        }
    }

    /// Builds the job's recipe and stores the image; its digest and each platform's, or
    /// why it failed in words.
    async fn build(
        &self,
        job: &BuildJobRow,
        log: Arc<Mutex<String>>,
    ) -> Result<(Digest, Vec<(String, String)>), String> {
        let settings = self.build_settings();
        let recipes = settings.recipes_dir.clone().ok_or("builds are turned off on this hub")?;
        let recipe =
            imagehub_build::locate(&recipes, &job.app, &job.version).map_err(|e| e.to_string())?;
        let names: Vec<String> = serde_json::from_str(&job.platforms).map_err(|e| e.to_string())?;
        let platforms = names
            .iter()
            .map(|p| p.parse::<Platform>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let lines = log.clone();
        let say = move |line: String| push_line(&lines, line);
        say(format!(
            "building {} {} ({}) from {}",
            job.app,
            job.version,
            names.join(", "),
            // Relative: where the operator keeps the checkout is not the builder's business.
            recipe.context.strip_prefix(&recipes).unwrap_or(&recipe.context).display()
        ));
        // Kept per app and version: its registry/ and layer cache serve the next build.
        let place = settings.work_dir.join(&recipe.app).join(&recipe.version);
        let failed = |e: BuildError| e.to_string();
        let context = place.join("recipe");
        imagehub_build::prepare_copy(&recipe.context, &context).map_err(failed)?;
        let mut platform_contexts = Vec::new();
        if settings.run_init {
            for platform in &platforms {
                let copy = place.join(format!("{}-{}", platform.os, platform.architecture));
                imagehub_build::prepare_copy(&recipe.context, &copy).map_err(failed)?;
                let init = InitArgs {
                    arch: &platform.architecture,
                    name: &recipe.app,
                    version: &recipe.version,
                    timeout: settings.init_timeout,
                };
                imagehub_build::run_init(&copy, &init, &say).await.map_err(failed)?;
                platform_contexts.push(copy);
            }
        } else if context.join("init.sh").is_file() {
            say("init.sh not run: the operator has not turned it on ([build] run_init)".into());
        }
        let kubefile = imagehub_build::KUBEFILE_NAMES
            .iter()
            .map(|name| context.join(name))
            // Not a link: the Kubefile is read, and a link could point anywhere.
            .find(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
            .ok_or(
                "the recipe has no Kubefile, Dockerfile or Containerfile (links are not read)",
            )?;
        let output = place.join("out");
        let _ = std::fs::remove_dir_all(&output);
        let client = self.imports.client().map_err(|e| e.to_string())?;
        let anonymous = |_: &imagehub_client::RemoteReference| Credentials::Anonymous;
        let args = [("NAME", &recipe.app), ("VERSION", &recipe.version)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let request = BuildRequest {
            context,
            platform_contexts,
            kubefile,
            args,
            platforms,
            epoch: 0,
            compression: Compression::Gzip,
            readme: recipe.readme.clone(),
            all: false,
            parallel: 5,
            credentials: &anonymous,
            local: Some(&HubBlobs(self)),
            output: output.clone(),
            tag: job.tag.clone(),
            log: &say,
        };
        let built = imagehub_build::build(&client, &request).await.map_err(failed)?;
        let repository: RepoName = job.repository.parse().map_err(|e| format!("{e}"))?;
        let tags = StoredTags { tag: &job.tag, arch_tags: settings.arch_tags };
        let stored = self.store_layout(&output, &repository, &tags, &built, &job.created_by);
        stored.await.map_err(|e| {
            tracing::error!(job = job.id, error = %e, "a build could not store its image");
            "the hub could not store the image; the server log says why".to_string()
        })?;
        let platforms =
            built.platforms.iter().map(|(p, m)| (p.to_string(), m.digest.to_string())).collect();
        Ok((built.manifest.digest.clone(), platforms))
    }

    /// Stores a built image from its OCI layout as a push would: blobs, each platform's
    /// manifest (tagged `TAG-ARCH` with `arch_tags`), then the top one under the tag.
    async fn store_layout(
        &self,
        layout: &Path,
        repository: &RepoName,
        tags: &StoredTags<'_>,
        built: &imagehub_build::Built,
        user: &str,
    ) -> Result<(), CoreError> {
        for (platform, image) in &built.platforms {
            let manifest = Manifest::parse(Some(&image.media_type), &image.bytes)
                .map_err(|e| CoreError::Internal(e.to_string().into()))?;
            for blob in manifest.blob_references() {
                if self.link_stored_blob(repository, &blob.digest).await? {
                    continue;
                }
                let path = layout.join("blobs").join(blob.digest.algorithm().as_str());
                let file = tokio::fs::File::open(path.join(blob.digest.hex())).await?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map_ok(Bytes::from);
                self.push_blob(repository, &blob.digest, stream, Some(blob.size)).await?;
            }
            let reference = match tags.arch_tags && built.platforms.len() > 1 {
                true => {
                    Reference::Tag(parse_tag(&format!("{}-{}", tags.tag, platform.architecture))?)
                }
                false => Reference::Digest(image.digest.clone()),
            };
            self.put_manifest(
                repository,
                &reference,
                Some(&image.media_type),
                &image.bytes,
                Some(user),
            )
            .await?;
        }
        let tag = parse_tag(tags.tag)?;
        let top = &built.manifest;
        self.put_manifest(
            repository,
            &Reference::Tag(tag),
            Some(&top.media_type),
            &top.bytes,
            Some(user),
        )
        .await?;
        Ok(())
    }
}

/// The hub's own store as a source of the blobs a recipe's images need: an image
/// imported or pushed before is not downloaded again.
struct HubBlobs<'a>(&'a Registry);

impl imagehub_build::LocalBlobs for HubBlobs<'_> {
    fn open<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> futures_util::future::BoxFuture<'a, Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>
    {
        Box::pin(async move { self.0.blobs.reader(digest).await.ok()? })
    }
}

/// Tells a build to stop when dropped.
struct StopOnDrop(Arc<Notify>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// The tags a build's image is stored under.
struct StoredTags<'a> {
    tag: &'a str,
    /// Each platform's image also as `TAG-ARCH`.
    arch_tags: bool,
}

fn parse_tag(text: &str) -> Result<Tag, CoreError> {
    text.parse().map_err(|e| CoreError::Internal(format!("tag {text:?}: {e}").into()))
}

fn push_line(log: &Mutex<String>, line: String) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    // The database keeps at most MAX_LOG_BYTES; this buffer never holds more either.
    if (log.len() as i64) < MAX_LOG_BYTES {
        log.push_str(&line);
        log.push('\n');
    }
}
