//! Blobs in an S3-compatible bucket, for hubs of several replicas (issue 18), through
//! `object_store`. Every replica sees the same bucket, so an upload's state lives there
//! too: an upload begun on one replica is continued and finished on another.
//!
//! Keys in the bucket:
//!
//! ```text
//! blobs/sha256/ab/ab12…ef        a complete blob, named by its digest, never rewritten
//! uploads/<uuid>/state           the upload's state once it has received bytes: its
//!                                multipart id (once a whole part was sent), the parts
//!                                sent, its length and its SHA-256 state (JSON)
//! uploads/<uuid>/tail            bytes received but not yet a part (S3 parts are at
//!                                least 5 MiB but the last), at most one part's worth
//! uploads/<uuid>/data            the multipart object the parts become at commit
//! ```
//!
//! A blob appears under `blobs/` only by a server-side copy of a completed upload whose
//! digest was verified (streamed through instead beyond S3's 5 GiB copy limit), by a PUT
//! of bytes within one part verified in memory first (a small blob, or an upload that
//! never filled a part), or by a multipart put hashed as it streamed and aborted on a
//! mismatch, so a blob key holds the whole content or does not exist. Bucket requests
//! cost latency and money, so an upload that has received nothing is nothing in the
//! bucket (the metadata's session row says it exists), and the small case — most layers
//! and every config, POST then PUT — is two requests: its state looked for, the blob put.
//! Memory per upload request is bounded by one part (8 MiB) plus a tail.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use imagehub_oci::{Algorithm, Digest, Hasher, ResumableHasher};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use crate::{AppendError, BlobStoreError, StoredBlob, UploadId};

/// Where the bucket is and how to reach it (`storage.s3`).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `http://127.0.0.1:3900`, `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `http://endpoint/bucket/key` rather than `http://bucket.endpoint/key`.
    pub path_style: bool,
    /// Pulls answered with a redirect to a presigned URL of the bucket, so the bytes do
    /// not pass through the hub (clients must reach the bucket).
    pub redirect: bool,
}

/// How long a presigned URL of a redirected pull is valid.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// The size of the parts sent; S3 wants at least 5 MiB for every part but the last.
pub(crate) const PART: usize = 8 << 20;

/// The blob store on S3.
#[derive(Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    /// The same bucket without retries and with a short timeout, for readiness checks,
    /// which must answer at once rather than after the retries of a lasting outage.
    probe: Arc<AmazonS3>,
    redirect: bool,
    /// The largest upload moved to its key by one server-side copy.
    copy_limit: u64,
}

/// S3 copies at most 5 GiB in one request.
const COPY_LIMIT: u64 = 5 << 30;

/// Retries of a request the bucket failed (5xx, timeouts, refused connections): a
/// transient outage passes unseen, a lasting one is reported within half a minute.
fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(30),
        ..object_store::RetryConfig::default()
    }
}

/// An upload's state, kept in the bucket between requests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct UploadRecord {
    /// The multipart upload of `uploads/<id>/data`, begun when the first whole part is
    /// sent: an upload that never fills one (most layers and configs) costs no multipart
    /// requests.
    #[serde(default)]
    multipart: Option<String>,
    /// The parts sent so far, in order (their ETags).
    parts: Vec<String>,
    /// Bytes received so far, tail included.
    size: u64,
    /// Bytes in `uploads/<id>/tail`.
    tail: u64,
    /// [`ResumableHasher::save`], hex.
    hasher: String,
}

impl UploadRecord {
    /// An upload that has received nothing.
    fn empty() -> UploadRecord {
        UploadRecord {
            multipart: None,
            parts: Vec::new(),
            size: 0,
            tail: 0,
            hasher: hex::encode(ResumableHasher::new(Algorithm::Sha256).save()),
        }
    }

    /// The SHA-256 state of the bytes received so far.
    fn hasher(&self, id: UploadId) -> Result<ResumableHasher, BlobStoreError> {
        hex::decode(&self.hasher)
            .ok()
            .and_then(|saved| ResumableHasher::restore(&saved).ok())
            .ok_or_else(|| corrupt(id))
    }
}

fn blob_key(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!("blobs/{}/{}/{hex}", digest.algorithm().as_str(), &hex[..2]))
}

fn upload_key(id: UploadId, name: &str) -> Path {
    Path::from(format!("uploads/{id}/{name}"))
}

fn io(e: object_store::Error) -> BlobStoreError {
    match e {
        object_store::Error::NotFound { .. } => {
            BlobStoreError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, e))
        }
        other => BlobStoreError::Io(std::io::Error::other(other)),
    }
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl S3BlobStore {
    pub fn open(settings: &S3Settings) -> Result<S3BlobStore, BlobStoreError> {
        let builder = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key)
            .with_secret_access_key(&settings.secret_key)
            .with_virtual_hosted_style_request(!settings.path_style)
            // Requests are signed without hashing their bodies first (as AWS's SDKs do
            // over HTTPS): each blob is verified against its digest before it is put,
            // and again by every client pulling it, and over plain HTTP answers are not
            // signed anyway; a signed body would cost a SHA-256 pass on each side.
            .with_unsigned_payload(true)
            .with_allow_http(settings.endpoint.starts_with("http://"));
        let store = builder.clone().with_retry(retries()).build().map_err(io)?;
        let quick = object_store::ClientOptions::new()
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_timeout(std::time::Duration::from_secs(5))
            .with_connect_timeout(std::time::Duration::from_secs(2));
        let no_retries = object_store::RetryConfig { max_retries: 0, ..retries() };
        let probe =
            builder.with_retry(no_retries).with_client_options(quick).build().map_err(io)?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            probe: Arc::new(probe),
            redirect: settings.redirect,
            copy_limit: COPY_LIMIT,
        })
    }

    /// Checks the bucket answers with these credentials (a listing of one key at most).
    pub async fn ping(&self) -> Result<(), BlobStoreError> {
        let mut listing = self.probe.list(Some(&Path::from("blobs")));
        match listing.next().await {
            Some(Err(e)) => Err(io(e)),
            _ => Ok(()),
        }
    }

    /// The size of a stored blob, or `None`.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobStoreError> {
        match self.store.head(&blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// A presigned URL to `GET` the blob from the bucket, when pulls are redirected.
    pub async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>, BlobStoreError> {
        use object_store::signer::Signer as _;
        if !self.redirect {
            return Ok(None);
        }
        let key = blob_key(digest);
        let url = self.store.signed_url(http::Method::GET, &key, PRESIGNED_FOR).await;
        Ok(Some(url.map_err(io)?.to_string()))
    }

    /// A stored blob's bytes from `start` (to the end, or `end` exclusive) as a stream,
    /// or `None` when it is not stored.
    pub async fn read_blob(
        &self,
        digest: &Digest,
        start: u64,
        end: Option<u64>,
    ) -> Result<Option<impl Stream<Item = Result<Bytes, BlobStoreError>> + use<>>, BlobStoreError>
    {
        let range = match end {
            Some(end) => Some(GetRange::Bounded(start..end)),
            None if start > 0 => Some(GetRange::Offset(start)),
            None => None,
        };
        let options = GetOptions { range, ..GetOptions::default() };
        match self.store.get_opts(&blob_key(digest), options).await {
            Ok(found) => Ok(Some(found.into_stream().map_err(io))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Stores a whole blob from `body`, hashed as it streams: the object is created only
    /// if the bytes match `digest` (and `expected_len`, when given). Returns its size. A
    /// body shorter than a part is one PUT once verified; a longer one goes up as
    /// multipart parts, completed only once verified (aborted otherwise).
    pub async fn put_blob<S, E>(
        &self,
        digest: &Digest,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let key = blob_key(digest);
        let mut multipart: Option<(String, Vec<PartId>)> = None;
        let result = async {
            let mut hasher = Hasher::new(digest.algorithm());
            let mut size = 0u64;
            let mut buffer = BytesMut::with_capacity(PART);
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| AppendError::Body(Box::new(e)))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                buffer.extend_from_slice(&chunk);
                while buffer.len() >= PART {
                    let (upload, parts) = match &mut multipart {
                        Some(started) => started,
                        None => {
                            let upload =
                                self.store.create_multipart(&key).await.map_err(store_error)?;
                            multipart.insert((upload, Vec::new()))
                        }
                    };
                    let part = buffer.split_to(PART).freeze();
                    parts.push(self.send_part(&key, upload, parts.len(), part).await?);
                }
            }
            if let Some(expected) = expected_len
                && expected != size
            {
                return Err(AppendError::LengthMismatch { expected, actual: size });
            }
            let actual = hasher.finish();
            if &actual != digest {
                return Err(AppendError::Store(BlobStoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                }));
            }
            match &mut multipart {
                None => {
                    let payload = PutPayload::from_bytes(buffer.freeze());
                    self.store.put(&key, payload).await.map_err(store_error)?;
                }
                Some((upload, parts)) => {
                    if !buffer.is_empty() {
                        let last = buffer.freeze();
                        parts.push(self.send_part(&key, upload, parts.len(), last).await?);
                    }
                    let parts = std::mem::take(parts);
                    self.store
                        .complete_multipart(&key, upload, parts)
                        .await
                        .map_err(store_error)?;
                }
            }
            Ok(size)
        }
        .await;
        if let (Err(_), Some((upload, _))) = (&result, &multipart) {
            let _ = self.store.abort_multipart(&key, upload).await;
        }
        result
    }

    async fn send_part(
        &self,
        key: &Path,
        multipart: &String,
        index: usize,
        bytes: Bytes,
    ) -> Result<PartId, AppendError> {
        let payload = PutPayload::from_bytes(bytes);
        self.store.put_part(key, multipart, index, payload).await.map_err(store_error)
    }

    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), BlobStoreError> {
        match self.store.delete(&blob_key(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Every blob in the bucket (garbage collection only; listings never walk).
    pub async fn walk_blobs(&self) -> Result<Vec<StoredBlob>, BlobStoreError> {
        let mut found = Vec::new();
        let mut listing = self.store.list(Some(&Path::from("blobs")));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io)?;
            let mut parts = meta.location.parts();
            let (_, Some(algorithm), _, Some(hex)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(digest) = format!("{}:{}", algorithm.as_ref(), hex.as_ref()).parse() else {
                continue;
            };
            found.push(StoredBlob { digest, size: meta.size, modified: meta.last_modified.into() });
        }
        Ok(found)
    }

    /// Deletes a blob only if it was last written before `cutoff` (see the filesystem
    /// store); the bytes freed.
    pub async fn delete_blob_written_before(
        &self,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<u64, BlobStoreError> {
        let meta = match self.store.head(&blob_key(digest)).await {
            Ok(meta) => meta,
            Err(e) if not_found(&e) => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        if SystemTime::from(meta.last_modified) >= cutoff {
            return Ok(0);
        }
        self.delete_blob(digest).await?;
        Ok(meta.size)
    }

    // ---- uploads ----

    /// Names a new upload. Nothing is written until bytes arrive: whether an upload
    /// exists is the caller's record (the metadata's session), and an upload without
    /// state in the bucket has received nothing.
    pub fn create_upload(&self) -> UploadId {
        UploadId::new()
    }

    /// The upload's state, or that of an upload that has received nothing.
    async fn load(&self, id: UploadId) -> Result<UploadRecord, BlobStoreError> {
        Ok(self.saved(id).await?.unwrap_or_else(UploadRecord::empty))
    }

    /// The upload's state as saved in the bucket, if any is.
    async fn saved(&self, id: UploadId) -> Result<Option<UploadRecord>, BlobStoreError> {
        let found = match self.store.get(&upload_key(id, "state")).await {
            Ok(found) => found.bytes().await.map_err(io)?,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let record = serde_json::from_slice(&found).map_err(|_| corrupt(id))?;
        Ok(Some(record))
    }

    async fn save(&self, id: UploadId, record: &UploadRecord) -> Result<(), BlobStoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| BlobStoreError::Io(e.into()))?;
        self.store.put(&upload_key(id, "state"), bytes.into()).await.map_err(io)?;
        Ok(())
    }

    /// Bytes received so far by an upload.
    pub async fn upload_len(&self, id: UploadId) -> Result<u64, BlobStoreError> {
        Ok(self.load(id).await?.size)
    }

    /// Appends `body` to an upload, which must hold `start` bytes when `start` is given
    /// ([`AppendError::OutOfOrder`] otherwise): whole parts are sent as they fill, the
    /// rest is kept as the tail. The state is saved last, so a request that fails midway
    /// leaves the upload as it was (parts it sent are unused and vanish with the
    /// multipart upload). Requests on one upload must not run at once (the caller
    /// serialises them).
    pub async fn append<S, E>(
        &self,
        id: UploadId,
        start: Option<u64>,
        body: S,
        expected_len: Option<u64>,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut record = self.load(id).await.map_err(AppendError::Store)?;
        if start.is_some_and(|start| start != record.size) {
            return Err(AppendError::OutOfOrder { current_len: record.size });
        }
        let mut hasher = record.hasher(id).map_err(AppendError::Store)?;
        let data = upload_key(id, "data");
        let mut buffer = BytesMut::with_capacity(PART);
        buffer.extend_from_slice(&self.tail(id, &record).await.map_err(AppendError::Store)?);
        let mut received = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| AppendError::Body(Box::new(e)))?;
            hasher.update(&chunk);
            received += chunk.len() as u64;
            buffer.extend_from_slice(&chunk);
            while buffer.len() >= PART {
                let multipart = match &record.multipart {
                    Some(multipart) => multipart.clone(),
                    None => {
                        let begun =
                            self.store.create_multipart(&data).await.map_err(store_error)?;
                        record.multipart.insert(begun).clone()
                    }
                };
                let part = buffer.split_to(PART).freeze();
                let index = record.parts.len();
                let sent = self.send_part(&data, &multipart, index, part).await?;
                record.parts.push(sent.content_id);
            }
        }
        if let Some(expected) = expected_len
            && expected != received
        {
            return Err(AppendError::LengthMismatch { expected, actual: received });
        }
        if record.size == 0 && received == 0 {
            // Nothing to keep: an upload has no state in the bucket until it holds bytes
            // (which `finish_upload` relies on).
            return Ok(0);
        }
        record.tail = buffer.len() as u64;
        if record.tail > 0 {
            let tail = PutPayload::from_bytes(buffer.freeze());
            self.store.put(&upload_key(id, "tail"), tail).await.map_err(store_error)?;
        }
        record.size += received;
        record.hasher = hex::encode(hasher.save());
        self.save(id, &record).await.map_err(AppendError::Store)?;
        Ok(record.size)
    }

    /// [`S3BlobStore::append`] then [`S3BlobStore::commit_upload`] in one step. A body
    /// (of `expected_len`) that fits in one part and is the whole blob by itself — the
    /// usual monolithic push — goes straight to its key: one PUT, verified, and nothing
    /// read first. An upload that held bytes could not end in such a body (its blob, those
    /// bytes and this body, would share this body's digest), and an upload keeps no state
    /// in the bucket until it holds bytes: there is nothing to read nor to forget.
    pub async fn finish_upload<S, E>(
        &self,
        id: UploadId,
        body: S,
        expected_len: Option<u64>,
        expected: &Digest,
    ) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let Some(len) = expected_len.filter(|&len| len <= PART as u64) else {
            self.append(id, None, body, expected_len).await?;
            return self.commit_upload(id, expected).await.map_err(AppendError::Store);
        };
        let bytes = read_exactly(body, len).await?;
        let actual = Digest::of(expected.algorithm(), &bytes);
        if &actual == expected {
            let payload = PutPayload::from_bytes(bytes);
            self.store.put(&blob_key(expected), payload).await.map_err(store_error)?;
            return Ok(len);
        }
        // Not the blob by itself: the rest of it may be what the upload holds.
        if self.saved(id).await.map_err(AppendError::Store)?.is_none() {
            return Err(AppendError::Store(BlobStoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            }));
        }
        let body = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes) });
        self.append(id, None, body, expected_len).await?;
        self.commit_upload(id, expected).await.map_err(AppendError::Store)
    }

    /// Verifies that the upload's bytes have `expected` as their digest and stores them
    /// as that blob; its size. On a mismatch the upload is left as it was.
    pub async fn commit_upload(
        &self,
        id: UploadId,
        expected: &Digest,
    ) -> Result<u64, BlobStoreError> {
        let record = self.load(id).await?;
        let data = upload_key(id, "data");
        if expected.algorithm() == Algorithm::Sha256 {
            let actual = record.hasher(id)?.finish();
            if &actual != expected {
                return Err(BlobStoreError::DigestMismatch { expected: expected.clone(), actual });
            }
        }
        let Some(multipart) = record.multipart.as_ref().filter(|_| !record.parts.is_empty()) else {
            // Never a whole part: the bytes are the tail, stored as the blob directly.
            self.store_tail_as(id, &record, expected).await?;
            self.forget(id, Some(&record)).await?;
            return Ok(record.size);
        };
        let mut parts: Vec<PartId> =
            record.parts.iter().map(|etag| PartId { content_id: etag.clone() }).collect();
        if record.tail > 0 {
            let tail = self.tail(id, &record).await?;
            let index = parts.len();
            let payload = PutPayload::from_bytes(tail);
            parts.push(self.store.put_part(&data, multipart, index, payload).await.map_err(io)?);
        }
        self.store.complete_multipart(&data, multipart, parts).await.map_err(io)?;
        if expected.algorithm() != Algorithm::Sha256 {
            // Only SHA-256 is hashed as bytes arrive; others are read back once.
            let mut hasher = Hasher::new(expected.algorithm());
            let mut stream = self.store.get(&data).await.map_err(io)?.into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk.map_err(io)?);
            }
            let actual = hasher.finish();
            if &actual != expected {
                // The parts are one object now; the upload cannot be continued.
                self.forget(id, Some(&record)).await?;
                return Err(BlobStoreError::DigestMismatch { expected: expected.clone(), actual });
            }
        }
        if record.size <= self.copy_limit {
            self.store.copy(&data, &blob_key(expected)).await.map_err(io)?;
        } else {
            // Beyond what one server-side copy may move: streamed through this process,
            // a part at a time, and verified again on the way.
            let stream = self.store.get(&data).await.map_err(io)?.into_stream();
            self.put_blob(expected, stream, Some(record.size)).await.map_err(|e| match e {
                AppendError::Store(e) => e,
                other => BlobStoreError::Io(std::io::Error::other(other.to_string())),
            })?;
        }
        self.forget(id, Some(&record)).await?;
        Ok(record.size)
    }

    /// Lowers the size above which a finished upload is streamed to its key rather than
    /// copied by the bucket (5 GiB, S3's limit for one copy), so tests reach that path.
    pub fn set_copy_limit(&mut self, bytes: u64) {
        self.copy_limit = bytes;
    }

    /// Stores the tail of an upload that never sent a part (under a part's size, so
    /// in memory) as the blob `expected`, once its bytes are verified.
    async fn store_tail_as(
        &self,
        id: UploadId,
        record: &UploadRecord,
        expected: &Digest,
    ) -> Result<(), BlobStoreError> {
        let tail = self.tail(id, record).await?;
        let actual = Digest::of(expected.algorithm(), &tail);
        if &actual != expected {
            return Err(BlobStoreError::DigestMismatch { expected: expected.clone(), actual });
        }
        self.store.put(&blob_key(expected), PutPayload::from_bytes(tail)).await.map_err(io)?;
        Ok(())
    }

    /// The bytes of an upload kept past its last whole part (less than a part).
    async fn tail(&self, id: UploadId, record: &UploadRecord) -> Result<Bytes, BlobStoreError> {
        if record.tail == 0 {
            return Ok(Bytes::new());
        }
        let found = self.store.get(&upload_key(id, "tail")).await.map_err(io)?;
        found.bytes().await.map_err(io)
    }

    /// Forgets an upload and whatever it received; a missing upload is not an error.
    pub async fn delete_upload(&self, id: UploadId) -> Result<(), BlobStoreError> {
        // Without a readable state, whatever a failed first append left is looked for.
        let record = self.saved(id).await.ok().flatten();
        self.forget(id, record.as_ref()).await
    }

    /// Deletes what `record` (the upload's state, when it could be read) says the upload
    /// holds, or every object an upload may hold.
    async fn forget(
        &self,
        id: UploadId,
        record: Option<&UploadRecord>,
    ) -> Result<(), BlobStoreError> {
        if let Some(UploadRecord { multipart: Some(multipart), .. }) = record {
            let _ = self.store.abort_multipart(&upload_key(id, "data"), multipart).await;
        }
        // An upload that never kept a tail nor began its data holds its state alone.
        match record {
            Some(r) if r.tail == 0 && r.multipart.is_none() => {
                self.delete_objects(id, &["state"]).await
            }
            _ => self.delete_objects(id, &["data", "tail", "state"]).await,
        }
    }

    /// Deletes the upload's objects `names`; missing ones are not an error.
    async fn delete_objects(&self, id: UploadId, names: &[&str]) -> Result<(), BlobStoreError> {
        for &name in names {
            match self.store.delete(&upload_key(id, name)).await {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// Ids of the uploads in the bucket.
    pub async fn upload_ids(&self) -> Result<Vec<String>, BlobStoreError> {
        let listed =
            self.store.list_with_delimiter(Some(&Path::from("uploads"))).await.map_err(io)?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.parts().next_back().map(|p| p.as_ref().to_string()))
            .collect())
    }
}

fn corrupt(id: UploadId) -> BlobStoreError {
    BlobStoreError::Io(std::io::Error::other(format!("upload {id}: its saved state is not valid")))
}

/// The whole of `body`, which must be `len` bytes (at most a part); reading stops at
/// the first chunk beyond them.
async fn read_exactly<S, E>(body: S, len: u64) -> Result<Bytes, AppendError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut buffer = BytesMut::with_capacity(len as usize);
    let mut received = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppendError::Body(Box::new(e)))?;
        received += chunk.len() as u64;
        if received > len {
            return Err(AppendError::LengthMismatch { expected: len, actual: received });
        }
        buffer.extend_from_slice(&chunk);
    }
    if received != len {
        return Err(AppendError::LengthMismatch { expected: len, actual: received });
    }
    Ok(buffer.freeze())
}

fn store_error(e: object_store::Error) -> AppendError {
    AppendError::Store(io(e))
}
