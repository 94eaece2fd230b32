//! The registry's tables: repositories, blob links, manifests (their bytes too), tags,
//! the references between them, and upload sessions.

use std::str::FromStr;

use imagehub_oci::{Digest, RepoName, Tag};
use sqlx::{AnyConnection, Row};

use crate::{Engine, Metadata, MetadataError, Result, now, now_ms};

/// Which cap on open upload sessions was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadScope {
    User,
    Repository,
}

impl std::fmt::Display for UploadScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UploadScope::User => "by this user",
            UploadScope::Repository => "in this repository",
        })
    }
}

/// The most upload sessions open at once per owner and per repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadCaps {
    pub per_owner: u32,
    pub per_repository: u32,
}

/// What a repository says of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobLink {
    Linked {
        size: u64,
    },
    /// The repository exists but does not serve the blob.
    NotLinked,
    NoRepository,
}

/// A manifest as stored: the exact bytes and what is needed to serve them.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A manifest about to be stored, with everything it references. Owned, as it is
/// handed to the group-committing writer.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub repository: RepoName,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// The manifest's annotations as a JSON object, for the referrers listing.
    pub annotations_json: Option<String>,
    pub content: Vec<u8>,
    /// Blobs (config and layers) that must be linked to the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index) that must exist in the repository.
    pub manifests: Vec<Digest>,
    /// The tag to point at this manifest, when pushed by tag.
    pub tag: Option<Tag>,
    /// The user who pushed it, when accounts are on.
    pub pushed_by: Option<String>,
}

/// One manifest whose `subject` is a given digest.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations_json: Option<String>,
}

impl Metadata {
    /// Whether the repository exists (has had content pushed or mounted).
    pub async fn repository_exists(&self, repository: &RepoName) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repository.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The size of `digest` if it is linked to `repository`.
    pub async fn linked_blob_size(
        &self,
        repository: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        Ok(match self.blob_link(repository, digest).await? {
            BlobLink::Linked { size } => Some(size),
            BlobLink::NotLinked | BlobLink::NoRepository => None,
        })
    }

    /// Whether `repository` serves `digest`, and if not, whether it exists: one query
    /// for a blob HEAD, found or not.
    pub async fn blob_link(&self, repository: &RepoName, digest: &Digest) -> Result<BlobLink> {
        let row = sqlx::query(
            "SELECT b.size FROM repositories r
             LEFT JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = $2
             LEFT JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1",
        )
        .bind(repository.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => BlobLink::NoRepository,
            Some(row) => match row.try_get::<Option<i64>, _>(0)? {
                Some(size) => BlobLink::Linked { size: size as u64 },
                None => BlobLink::NotLinked,
            },
        })
    }

    /// Records a verified blob and links it to `repository`, creating the repository.
    pub async fn link_blob(&self, repository: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writer
            .write(move |conn| {
                Box::pin(async move { link_blob(conn, &repository, &digest, size).await })
            })
            .await
    }

    /// Links a blob whose upload session `id` just completed, and ends the session.
    pub async fn finish_upload(
        &self,
        id: &str,
        repository: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let (id, repository, digest) = (id.to_string(), repository.clone(), digest.clone());
        let engine = self.engine;
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    if engine == Engine::Postgres
                        && finish_upload_at_once(&mut *conn, &id, &repository, &digest, size)
                            .await?
                    {
                        return Ok(());
                    }
                    link_blob(&mut *conn, &repository, &digest, size).await?;
                    sqlx::query("DELETE FROM uploads WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Unlinks a blob from a repository; returns whether it was linked. The bytes stay
    /// in the blob store until garbage collection finds no repository linking them.
    pub async fn unlink_blob(&self, repository: &RepoName, digest: &Digest) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(digest.to_string())
        .bind(repository.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The manifest a tag points at (on PostgreSQL, looked up with others queued at the
    /// same time: `tag_lookups.rs`).
    pub async fn manifest_by_tag(
        &self,
        repository: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>> {
        if let Some(lookups) = &self.tag_lookups {
            return lookups.find(repository, tag).await;
        }
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM tags t
             JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
             WHERE r.name = $1 AND t.name = $2",
        )
        .bind(repository.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored_manifest).transpose()
    }

    /// A manifest by digest.
    pub async fn manifest_by_digest(
        &self,
        repository: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repository.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored_manifest).transpose()
    }

    /// Stores a manifest and its references, and moves its tag, in one transaction.
    /// Fails with `MissingReference` when a blob or child manifest is not in the repository.
    pub async fn put_manifest(&self, manifest: NewManifest) -> Result<()> {
        let engine = self.engine;
        self.writer
            .write(move |conn| Box::pin(async move { put_manifest(conn, engine, &manifest).await }))
            .await
    }

    /// Deletes a manifest and every tag pointing at it; returns whether it existed.
    pub async fn delete_manifest(&self, repository: &RepoName, digest: &Digest) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM manifests WHERE digest = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(digest.to_string())
        .bind(repository.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a tag, leaving its manifest; returns whether it existed.
    pub async fn delete_tag(&self, repository: &RepoName, tag: &Tag) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM tags WHERE name = $1
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(tag.as_str())
        .bind(repository.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every tag of a repository, in lexical (byte) order.
    pub async fn tags(&self, repository: &RepoName) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
             WHERE r.name = $1 ORDER BY t.name",
        )
        .bind(repository.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Up to `limit` repository names after `last`, in lexical (byte) order.
    pub async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Manifests in `repository` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repository: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.referrers_of_any(repository, std::slice::from_ref(subject), artifact_type).await
    }

    /// Manifests of `repository` whose subject is any of `subjects`, in one query (an
    /// index and its platforms, for the image page).
    pub async fn referrers_of_any(
        &self,
        repository: &RepoName,
        subjects: &[Digest],
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let subjects =
            serde_json::Value::from(subjects.iter().map(Digest::to_string).collect::<Vec<_>>());
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, length(m.content), m.artifact_type, m.annotations
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject IN (SELECT value FROM json_each($2))
               AND ($3 IS NULL OR m.artifact_type = $4)
             ORDER BY m.digest",
        )
        .bind(repository.as_str())
        .bind(subjects.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Referrer {
                    digest: parse_digest(r.get(0))?,
                    media_type: r.get(1),
                    size: r.get::<i64, _>(2) as u64,
                    artifact_type: r.get(3),
                    annotations_json: r.get(4),
                })
            })
            .collect()
    }

    /// Records a new upload session for `repository`, opened by `owner` (a user name,
    /// or empty for anonymous callers), unless either already has `caps` open. The count
    /// and the insert are one write, so concurrent starts cannot pass the cap together.
    pub async fn create_upload(
        &self,
        id: &str,
        repository: &RepoName,
        owner: &str,
        caps: UploadCaps,
    ) -> Result<()> {
        let (id, repository, owner) = (id.to_string(), repository.to_string(), owner.to_string());
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    // The caps are checked by the insert itself: one statement when within
                    // them, a count read again only to say which was reached.
                    let inserted = sqlx::query(
                        "INSERT INTO uploads (id, repository, started_at, owner)
                         SELECT $1, $2, $3, $4
                         WHERE (SELECT count(*) FROM uploads WHERE owner = $4) < $5
                           AND (SELECT count(*) FROM uploads WHERE repository = $2) < $6",
                    )
                    .bind(id)
                    .bind(&repository)
                    .bind(now())
                    .bind(&owner)
                    .bind(i64::from(caps.per_owner))
                    .bind(i64::from(caps.per_repository))
                    .execute(&mut *conn)
                    .await?;
                    if inserted.rows_affected() == 1 {
                        return Ok(());
                    }
                    let (by_owner,): (i64,) =
                        sqlx::query_as("SELECT count(*) FROM uploads WHERE owner = $1")
                            .bind(&owner)
                            .fetch_one(conn)
                            .await?;
                    Err(if by_owner >= i64::from(caps.per_owner) {
                        MetadataError::TooManyUploads {
                            scope: UploadScope::User,
                            limit: caps.per_owner,
                        }
                    } else {
                        MetadataError::TooManyUploads {
                            scope: UploadScope::Repository,
                            limit: caps.per_repository,
                        }
                    })
                })
            })
            .await
    }

    /// The repository an upload session belongs to, if the session exists.
    pub async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT repository FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Forgets an upload session.
    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }
}

async fn ensure_repository(
    conn: &mut AnyConnection,
    repository: &RepoName,
    now: i64,
) -> Result<i64> {
    // Most writes are to a repository that exists: read first, rather than an upsert
    // that rewrites its row each time.
    let found = sqlx::query(
        "SELECT r.id, v.name IS NOT NULL FROM repositories r
         LEFT JOIN repository_visibility v ON v.name = r.name WHERE r.name = $1",
    )
    .bind(repository.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let (id, has_visibility) = match found {
        Some(row) => (row.try_get::<i64, _>(0)?, crate::flag(&row, 1)),
        None => {
            let row = sqlx::query(
                "INSERT INTO repositories (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
            )
            .bind(repository.as_str())
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            (row.try_get(0)?, false)
        }
    };
    // A repository takes its namespace's default visibility when it has none yet (new,
    // or made before its namespace); an existing setting stays.
    if let Some(namespace) = repository.namespace().filter(|_| !has_visibility) {
        sqlx::query(
            "INSERT INTO repository_visibility (name, visibility)
             SELECT $1, default_visibility FROM namespaces WHERE name = $2 ON CONFLICT DO NOTHING",
        )
        .bind(repository.as_str())
        .bind(namespace)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

/// Records a verified blob and links it to `repository`, creating the repository.
async fn link_blob(
    conn: &mut AnyConnection,
    repository: &RepoName,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    let now = now();
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(digest.to_string())
    .bind(size as i64)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Into an existing repository (most links) in one statement; nothing inserted means
    // linked already or no repository yet, which the second form settles.
    let linked = sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at)
         SELECT id, $2, $3 FROM repositories WHERE name = $1 ON CONFLICT DO NOTHING",
    )
    .bind(repository.as_str())
    .bind(digest.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if linked.rows_affected() == 0 {
        let repository_id = ensure_repository(&mut *conn, repository, now).await?;
        sqlx::query("INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(repository_id)
            .bind(digest.to_string())
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// On PostgreSQL, a finished upload's blob recorded, linked into its existing
/// repository and the session ended in one statement: writes queue behind each other,
/// so each round trip saved is saved for every push. `false` when nothing was linked
/// (no repository yet, or linked already), which `link_blob` then settles. (SQLite has no
/// writes in `WITH`; there a statement costs no round trip.)
async fn finish_upload_at_once(
    conn: &mut AnyConnection,
    id: &str,
    repository: &RepoName,
    digest: &Digest,
    size: u64,
) -> Result<bool> {
    let linked: i64 = sqlx::query_scalar(
        "WITH blob AS (
             INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING
         ), link AS (
             INSERT INTO repository_blobs (repository_id, digest, linked_at)
             SELECT id, $1, $3 FROM repositories WHERE name = $4
             ON CONFLICT DO NOTHING RETURNING 1
         ), ended AS (
             DELETE FROM uploads WHERE id = $5
         )
         SELECT count(*) FROM link",
    )
    .bind(digest.to_string())
    .bind(size as i64)
    .bind(now())
    .bind(repository.as_str())
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(linked > 0)
}

/// Stores a manifest and its references, and moves its tag.
/// Fails with `MissingReference` when a blob or child manifest is not in the repository.
async fn put_manifest(
    conn: &mut AnyConnection,
    engine: Engine,
    manifest: &NewManifest,
) -> Result<()> {
    let now = now();
    let repository_id = ensure_repository(&mut *conn, &manifest.repository, now).await?;
    let referenced = [
        (&manifest.blobs, false, "SELECT digest FROM repository_blobs WHERE repository_id = $1"),
        (&manifest.manifests, true, "SELECT digest FROM manifests WHERE repository_id = $1"),
    ];
    for (digests, is_manifest, in_repository) in referenced {
        let present = present(conn, in_repository, repository_id, digests).await?;
        if let Some(digest) = digests.iter().find(|d| !present.contains(&d.to_string())) {
            return Err(MetadataError::MissingReference { digest: digest.clone(), is_manifest });
        }
    }
    if engine == Engine::Postgres {
        return record_manifest_at_once(conn, repository_id, manifest, now).await;
    }
    let digest = manifest.digest.to_string();
    let query = sqlx::query(
        "INSERT INTO manifests
           (repository_id, digest, media_type, artifact_type, subject, annotations, content, pushed_at, pushed_by, pushed_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at,
            pushed_by = COALESCE(excluded.pushed_by, manifests.pushed_by), pushed_at_ms = excluded.pushed_at_ms",
    );
    bind_manifest_row(query, repository_id, manifest, now).execute(&mut *conn).await?;
    // Indexing (base info, README, labels) happens off the request path; the job is
    // committed with the manifest, so a crash cannot lose it.
    sqlx::query(
        "INSERT INTO jobs (kind, repository, digest, run_after, created_at) VALUES ('index', $1, $2, $3, $4)
         ON CONFLICT (kind, repository, digest) DO UPDATE SET run_after = excluded.run_after, attempts = 0",
    )
    .bind(manifest.repository.as_str())
    .bind(&digest)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for (children, is_manifest) in [(&manifest.blobs, false), (&manifest.manifests, true)] {
        if children.is_empty() {
            continue;
        }
        // (`WHERE true`: SQLite would read `ON CONFLICT` as the join's `ON` without it.)
        sqlx::query(
            "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_is_manifest)
             SELECT $1, $2, value, $3 FROM json_each($4) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(repository_id)
        .bind(&digest)
        .bind(is_manifest)
        .bind(digest_list(children))
        .execute(&mut *conn)
        .await?;
    }
    if let Some(tag) = &manifest.tag {
        sqlx::query(
            "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest,
                updated_at = excluded.updated_at",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .bind(&digest)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Which of `digests` the query `in_repository` (digests of a repository, given its id)
/// finds; no query for none.
async fn present(
    conn: &mut AnyConnection,
    in_repository: &'static str,
    repository_id: i64,
    digests: &[Digest],
) -> Result<std::collections::HashSet<String>> {
    if digests.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!("{in_repository} AND digest IN (SELECT value FROM json_each($2))");
    let rows = sqlx::query(&sql)
        .bind(repository_id)
        .bind(digest_list(digests))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// On PostgreSQL, what `put_manifest` writes once the references are checked — the
/// manifest, its index job, its references and its tag — in one statement (writes in
/// `WITH`), as `finish_upload_at_once` does for blobs and for the same reason.
async fn record_manifest_at_once(
    conn: &mut AnyConnection,
    repository_id: i64,
    manifest: &NewManifest,
    now: i64,
) -> Result<()> {
    let query = sqlx::query(
        "WITH manifest AS (
             INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                annotations, content, pushed_at, pushed_by, pushed_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at,
                pushed_by = COALESCE(excluded.pushed_by, manifests.pushed_by),
                pushed_at_ms = excluded.pushed_at_ms
         ), job AS (
             INSERT INTO jobs (kind, repository, digest, run_after, created_at)
             VALUES ('index', $11, $2, $8, $8)
             ON CONFLICT (kind, repository, digest)
             DO UPDATE SET run_after = excluded.run_after, attempts = 0
         ), blobs AS (
             INSERT INTO manifest_references
                (repository_id, manifest_digest, child_digest, child_is_manifest)
             SELECT $1, $2, value, FALSE FROM json_each($12) ON CONFLICT DO NOTHING
         ), children AS (
             INSERT INTO manifest_references
                (repository_id, manifest_digest, child_digest, child_is_manifest)
             SELECT $1, $2, value, TRUE FROM json_each($13) ON CONFLICT DO NOTHING
         ), tag AS (
             INSERT INTO tags (repository_id, name, digest, updated_at)
             SELECT $1, $14, $2, $8 WHERE $14 IS NOT NULL
             ON CONFLICT (repository_id, name)
             DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
         )
         SELECT 1",
    );
    bind_manifest_row(query, repository_id, manifest, now)
        .bind(manifest.repository.as_str())
        .bind(digest_list(&manifest.blobs))
        .bind(digest_list(&manifest.manifests))
        .bind(manifest.tag.as_ref().map(Tag::as_str))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Binds a manifest's row, `$1` to `$10` of both forms of `put_manifest`.
fn bind_manifest_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    repository_id: i64,
    manifest: &'q NewManifest,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(repository_id)
        .bind(manifest.digest.to_string())
        .bind(&manifest.media_type)
        .bind(&manifest.artifact_type)
        .bind(manifest.subject.as_ref().map(Digest::to_string))
        .bind(manifest.annotations_json.as_deref())
        .bind(&manifest.content)
        .bind(now)
        .bind(&manifest.pushed_by)
        .bind(now_ms())
}

/// `digests` as one JSON list, read back by `json_each`.
fn digest_list(digests: &[Digest]) -> String {
    let digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
    serde_json::to_string(&digests).expect("strings serialise")
}

fn stored_manifest(row: sqlx::any::AnyRow) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: parse_digest(row.get(0))?,
        media_type: row.get(1),
        content: row.get(2),
    })
}

pub(crate) fn parse_digest(s: String) -> Result<Digest> {
    Digest::from_str(&s).map_err(|e| MetadataError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_sessions_are_capped_per_owner_and_per_repository() {
        let (_dir, meta) = crate::test_support::open().await;
        let caps = crate::UploadCaps { per_owner: 3, per_repository: 2 };
        let repo = |name: &str| name.parse::<RepoName>().unwrap();
        meta.create_upload("1", &repo("x/a"), "alice", caps).await.unwrap();
        meta.create_upload("2", &repo("x/a"), "alice", caps).await.unwrap();
        let full = meta.create_upload("3", &repo("x/a"), "bob", caps).await;
        assert!(
            matches!(
                full,
                Err(MetadataError::TooManyUploads {
                    scope: crate::UploadScope::Repository,
                    limit: 2
                })
            ),
            "{full:?}"
        );
        meta.create_upload("4", &repo("x/b"), "alice", caps).await.unwrap();
        let full = meta.create_upload("5", &repo("x/c"), "alice", caps).await;
        assert!(
            matches!(
                full,
                Err(MetadataError::TooManyUploads { scope: crate::UploadScope::User, limit: 3 })
            ),
            "{full:?}"
        );
        meta.delete_upload("1").await.unwrap();
        meta.create_upload("6", &repo("x/c"), "alice", caps).await.unwrap();
        assert_eq!(
            meta.upload_repository("3").await.unwrap(),
            None,
            "a refused session leaves no row"
        );
    }
}
