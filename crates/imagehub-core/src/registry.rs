//! `Registry`: the operations of the OCI Distribution API as registry rules.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use imagehub_blobstore::{BlobBytes, BlobStore, S3Settings, UploadId};
use imagehub_metadata::{
    BlobLink, Metadata, NewManifest, Referrer, RepositoryFilter, StoredManifest, Usage,
};
use imagehub_oci::{Digest, Manifest, Reference, RepoName, Tag};

use crate::CoreError;
use crate::settings::Settings;
use crate::tag_cache::{self, TagCache, Tags};

type Result<T, E = CoreError> = std::result::Result<T, E>;

/// The registry: blob store plus metadata, and the rules that keep them consistent.
///
/// Ordering rule: data is made durable before the metadata that points at it is
/// committed, so the index never names bytes that are not on disk.
#[derive(Clone)]
pub struct Registry {
    pub(crate) blobs: BlobStore,
    pub(crate) meta: Metadata,
    pub(crate) tags: Arc<TagCache>,
    pub(crate) indexer: Arc<crate::indexer::Wakeup>,
    pub(crate) pulls: Arc<crate::pulls::PullCounter>,
    pub(crate) imports: Arc<crate::imports::Imports>,
    pub(crate) builds: Arc<crate::builds::Builds>,
    pub(crate) heard: Arc<crate::replicas::Heard>,
    settings: Arc<std::sync::RwLock<Settings>>,
}

/// A blob a repository may serve, with its size, ready to be read.
pub struct BlobReader {
    pub size: u64,
    digest: Digest,
    blobs: BlobStore,
}

impl BlobReader {
    /// A presigned URL of the bucket to send the client to instead, when the operator
    /// chose redirects (`storage.s3.redirect`).
    pub async fn redirect_url(&self) -> Result<Option<String>> {
        Ok(self.blobs.redirect_url(&self.digest).await?)
    }

    /// `len` bytes from `start`.
    pub async fn read(self, start: u64, len: u64) -> Result<BlobBytes> {
        match self.blobs.read(&self.digest, start, len).await? {
            Some(bytes) => Ok(bytes),
            None => Err(CoreError::BlobUnknown(self.digest)),
        }
    }
}

/// What a manifest push stored.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// What a registry keeps outside its data directory; each `None` keeps it inside.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    /// Blobs and uploads in this S3 bucket.
    pub s3: Option<&'a S3Settings>,
    /// Metadata in this PostgreSQL database (a URL).
    pub postgres: Option<&'a str>,
    /// The key sealing import credentials (replicas share one), else `import.key`.
    pub import_key_file: Option<&'a Path>,
}

impl Registry {
    /// Opens the registry's storage under `data_dir`: blobs on the filesystem and the
    /// SQLite database `imagehub.db`.
    pub async fn open(data_dir: &Path) -> Result<Registry> {
        Registry::open_with(data_dir, &Placement::default()).await
    }

    /// [`Registry::open`], with what `placement` puts elsewhere.
    pub async fn open_with(data_dir: &Path, placement: &Placement<'_>) -> Result<Registry> {
        let Placement { s3, postgres, import_key_file } = *placement;
        tokio::fs::create_dir_all(data_dir).await?;
        let blobs = BlobStore::open(data_dir, s3).await?;
        // A bucket that cannot be reached is said at start, not at the first push.
        blobs.ping().await?;
        let meta = match postgres {
            Some(url) => Metadata::open_postgres(url).await?,
            None => Metadata::open_sqlite(&data_dir.join("imagehub.db")).await?,
        };
        Ok(Registry {
            blobs,
            meta,
            tags: Arc::default(),
            indexer: Arc::default(),
            pulls: Arc::default(),
            imports: Arc::new(crate::imports::Imports::new(crate::imports::Sealer::new(
                import_key_file.map_or_else(|| data_dir.join("import.key"), Path::to_path_buf),
            ))),
            builds: Arc::default(),
            heard: Arc::default(),
            settings: Arc::default(),
        })
    }

    /// Applies the server's configuration (it starts with [`Settings::default`]).
    pub fn configure(&self, settings: Settings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    pub(crate) fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The accounts kept in the same database.
    pub fn accounts(
        &self,
        settings: crate::AccountSettings,
    ) -> Result<crate::Accounts, crate::AccountError> {
        crate::Accounts::new(self.meta.clone(), settings)
    }

    /// Checks storage and database answer.
    pub async fn ping(&self) -> Result<()> {
        self.meta.ping().await?;
        self.blobs.ping().await?;
        Ok(())
    }

    /// Totals for monitoring.
    pub async fn usage(&self) -> Result<Usage> {
        Ok(self.meta.usage().await?)
    }

    /// Closes the database cleanly (pending pull counts first); call once the server
    /// has stopped serving.
    pub async fn close(&self) {
        if let Err(e) = self.flush_pulls().await {
            tracing::warn!(error = %e, "pull counts could not be saved");
        }
        self.meta.close().await;
    }

    // ---- pull ----

    /// The manifest `reference` names in `repository`.
    pub async fn get_manifest(
        &self,
        repository: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let found = match reference {
            Reference::Tag(tag) => self.meta.manifest_by_tag(repository, tag).await?,
            Reference::Digest(digest) => self.meta.manifest_by_digest(repository, digest).await?,
        };
        match found {
            Some(manifest) => Ok(manifest),
            None => Err(self
                .unknown_in(repository, CoreError::ManifestUnknown(reference.to_string()))
                .await?),
        }
    }

    /// The size of a blob this repository may serve; `NameUnknown` when the repository
    /// does not exist, as for manifests.
    pub async fn stat_blob(&self, repository: &RepoName, digest: &Digest) -> Result<u64> {
        match self.meta.blob_link(repository, digest).await? {
            BlobLink::Linked { size } => Ok(size),
            BlobLink::NotLinked => Err(CoreError::BlobUnknown(digest.clone())),
            BlobLink::NoRepository => Err(CoreError::NameUnknown(repository.clone())),
        }
    }

    /// Opens a blob this repository may serve.
    pub async fn open_blob(&self, repository: &RepoName, digest: &Digest) -> Result<BlobReader> {
        let size = self.stat_blob(repository, digest).await?;
        Ok(BlobReader { size, digest: digest.clone(), blobs: self.blobs.clone() })
    }

    // ---- push ----

    /// Starts an upload session in `repository` for `owner` (a user name; empty for an
    /// anonymous caller), within the caps on open sessions.
    pub async fn start_upload(&self, repository: &RepoName, owner: &str) -> Result<UploadId> {
        let id = self.blobs.create_upload().await?;
        if let Err(e) = self
            .meta
            .create_upload(&id.to_string(), repository, owner, self.settings().uploads)
            .await
        {
            self.blobs.delete_upload(id).await?;
            return Err(e.into());
        }
        Ok(id)
    }

    /// Links a blob from `from` into `repository`; `false` when `from` cannot provide it,
    /// in which case the client falls back to uploading.
    pub async fn mount_blob(
        &self,
        repository: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool> {
        let Some(size) = self.meta.linked_blob_size(from, digest).await? else {
            return Ok(false);
        };
        if self.blobs.stat(digest).await?.is_none() {
            return Ok(false);
        }
        self.meta.link_blob(repository, digest, size).await?;
        Ok(true)
    }

    /// Links into `repository` a blob the hub already stores for any repository;
    /// `false` when it stores no such blob.
    pub async fn link_stored_blob(&self, repository: &RepoName, digest: &Digest) -> Result<bool> {
        match self.blobs.stat(digest).await? {
            Some(size) => {
                self.meta.link_blob(repository, digest, size).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Uploads a whole blob in one request (`POST ?digest=`).
    pub async fn push_blob<S, E>(
        &self,
        repository: &RepoName,
        digest: &Digest,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let size = self.blobs.put_blob(digest, body, expected_len).await?;
        self.meta.link_blob(repository, digest, size).await?;
        Ok(size)
    }

    /// Bytes received so far by an upload session.
    pub async fn upload_status(&self, repository: &RepoName, id: &str) -> Result<(UploadId, u64)> {
        let id = self.checkout(repository, id).await?;
        Ok((id, self.blobs.upload_len(id).await?))
    }

    /// Appends a chunk. `start` is where the client says the chunk begins (from
    /// `Content-Range`); a chunk that does not continue the upload is refused.
    pub async fn append_upload<S, E>(
        &self,
        repository: &RepoName,
        id: &str,
        start: Option<u64>,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<(UploadId, u64)>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let id = self.checkout(repository, id).await?;
        let len = self.blobs.append(id, start, body, expected_len).await?;
        Ok((id, len))
    }

    /// Appends the final (possibly empty) chunk, verifies the digest and stores the blob.
    pub async fn finish_upload<S, E>(
        &self,
        repository: &RepoName,
        id: &str,
        digest: &Digest,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let upload_id = self.checkout(repository, id).await?;
        let result = match self.blobs.finish_upload(upload_id, body, expected_len, digest).await {
            Ok(size) => {
                let recorded = self.meta.finish_upload(id, repository, digest, size).await;
                recorded.map(|()| size).map_err(CoreError::from)
            }
            Err(e) => Err(e.into()),
        };
        if matches!(result, Err(CoreError::DigestMismatch { .. })) {
            // A failed verification ends the session, as in distribution: the client must
            // start over, and no half-verified bytes linger.
            self.blobs.delete_upload(upload_id).await?;
            self.meta.delete_upload(id).await?;
        }
        result
    }

    /// Cancels an upload session and deletes what it received.
    pub async fn cancel_upload(&self, repository: &RepoName, id: &str) -> Result<()> {
        let upload_id = self.checkout(repository, id).await?;
        self.blobs.delete_upload(upload_id).await?;
        self.meta.delete_upload(id).await?;
        Ok(())
    }

    /// Validates and stores a manifest under `reference`; its digest is of the exact bytes.
    /// `pushed_by` names the user, when accounts are on. Indexing is queued with it.
    pub async fn put_manifest(
        &self,
        repository: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        content: &[u8],
        pushed_by: Option<&str>,
    ) -> Result<PushedManifest> {
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), content);
                if &actual != expected {
                    return Err(CoreError::DigestMismatch { expected: expected.clone(), actual });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(content),
        };
        let manifest = Manifest::parse(content_type, content)?;
        let tag: Option<&Tag> = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        let annotations_json = if manifest.annotations.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&manifest.annotations).expect("string maps serialise"))
        };
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        self.meta
            .put_manifest(NewManifest {
                repository: repository.clone(),
                digest: digest.clone(),
                media_type: manifest.media_type.clone(),
                artifact_type: manifest.artifact_type.clone(),
                subject: subject.clone(),
                annotations_json,
                content: content.to_vec(),
                blobs: manifest
                    .blob_references()
                    .filter(|d| is_distributable(&d.media_type))
                    .map(|d| d.digest.clone())
                    .collect(),
                manifests: manifest.manifests.iter().map(|d| d.digest.clone()).collect(),
                tag: tag.cloned(),
                pushed_by: pushed_by.map(str::to_string),
            })
            .await?;
        if tag.is_some() {
            self.tags.invalidate(repository);
        }
        self.indexer.wake();
        Ok(PushedManifest { digest, subject })
    }

    // ---- content management ----

    /// Deletes a manifest (by digest, with its tags) or only a tag.
    pub async fn delete_manifest(
        &self,
        repository: &RepoName,
        reference: &Reference,
    ) -> Result<()> {
        let deleted = match reference {
            Reference::Digest(digest) => self.meta.delete_manifest(repository, digest).await?,
            Reference::Tag(tag) => self.meta.delete_tag(repository, tag).await?,
        };
        if deleted {
            // Deleting by digest also removes the tags pointing at it.
            self.tags.invalidate(repository);
            // The latest image may have changed, or the repository may have emptied; a
            // failure here leaves search stale, not the delete undone.
            if let Err(e) = self.refresh_search(repository).await {
                tracing::warn!(repository = %repository, error = %e, "could not refresh the search index");
            }
            return Ok(());
        }
        Err(self.unknown_in(repository, CoreError::ManifestUnknown(reference.to_string())).await?)
    }

    /// Removes a blob from a repository (its bytes go when garbage collection finds them
    /// unreferenced).
    pub async fn delete_blob(&self, repository: &RepoName, digest: &Digest) -> Result<()> {
        if self.meta.unlink_blob(repository, digest).await? {
            return Ok(());
        }
        Err(self.unknown_in(repository, CoreError::BlobUnknown(digest.clone())).await?)
    }

    // ---- content discovery ----

    /// Up to `limit` tags after `last`, sorted; `NameUnknown` for a repository never pushed.
    pub async fn list_tags(
        &self,
        repository: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let tags = self.all_tags(repository).await?;
        Ok(tag_cache::page(tags.as_slice(), last, limit))
    }

    /// Every tag of a repository, sorted; `NameUnknown` for a repository never pushed.
    ///
    /// On PostgreSQL every listing reads the database: other replicas write tags too,
    /// and a cache invalidated by their notifications (LISTEN/NOTIFY) would still list
    /// a tag late in the moment between their commit and the notification's arrival,
    /// where clients expect a pushed tag listed at once, on whichever replica they ask.
    pub async fn all_tags(&self, repository: &RepoName) -> Result<Arc<Tags>> {
        let cached = self.meta.engine() == imagehub_metadata::Engine::Sqlite;
        if let Some(tags) = self.tags.get(repository).filter(|_| cached) {
            return Ok(tags);
        }
        let generation = self.tags.generation();
        let tags = self.meta.tags(repository).await?;
        if tags.is_empty() && !self.meta.repository_exists(repository).await? {
            return Err(CoreError::NameUnknown(repository.clone()));
        }
        let tags = Arc::new(Tags::new(tags));
        if cached {
            self.tags.insert(repository, Arc::clone(&tags), generation);
        }
        Ok(tags)
    }

    /// Up to `limit` repository names after `last`, sorted.
    /// A page of repository names; with a filter, only those it lets through.
    /// Whether the repository has ever been pushed to and not deleted since.
    pub async fn repository_exists(&self, repository: &RepoName) -> Result<bool> {
        Ok(self.meta.repository_exists(repository).await?)
    }

    pub async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: u32,
        filter: Option<&RepositoryFilter>,
    ) -> Result<Vec<String>> {
        match filter {
            None => Ok(self.meta.list_repositories(last, limit).await?),
            Some(filter) => Ok(self.meta.list_visible_repositories(last, limit, filter).await?),
        }
    }

    /// Manifests whose subject is `subject`, optionally filtered by artifact type.
    pub async fn referrers(
        &self,
        repository: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        Ok(self.meta.referrers(repository, subject, artifact_type).await?)
    }

    // ---- helpers ----

    /// The id of an upload session that belongs to `repository`.
    async fn checkout(&self, repository: &RepoName, id: &str) -> Result<UploadId> {
        let upload_id = parse_upload_id(id)?;
        match self.meta.upload_repository(id).await? {
            Some(owner) if owner == repository.as_str() => Ok(upload_id),
            _ => Err(CoreError::UploadUnknown(id.to_owned())),
        }
    }

    /// `NameUnknown` when the repository does not exist at all, else `otherwise`.
    async fn unknown_in(&self, repository: &RepoName, otherwise: CoreError) -> Result<CoreError> {
        if self.meta.repository_exists(repository).await? {
            Ok(otherwise)
        } else {
            Ok(CoreError::NameUnknown(repository.clone()))
        }
    }
}

fn parse_upload_id(id: &str) -> Result<UploadId> {
    id.parse().map_err(|_| CoreError::UploadUnknown(id.to_owned()))
}

/// Foreign (non-distributable) layers are fetched from their `urls`, never pushed, so a
/// manifest may name them without the registry having them.
pub(crate) fn is_distributable(media_type: &str) -> bool {
    !(media_type.contains("foreign") || media_type.contains("nondistributable"))
}
