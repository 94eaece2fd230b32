//! Images as the hub shows them: the base info indexing computed, detail info by
//! source, listings of a repository's images and latest image, and deleting a
//! repository.

use sqlx::{AnyConnection, Row};

use imagehub_extract::DetailSource;

use crate::{Engine, Metadata, MetadataError, Result, now, visibility};

/// Base info of one manifest, as the indexing job computed it.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub config_digest: Option<String>,
    /// JSON array of `{"os", "architecture", "variant"?, "size"}`.
    pub platforms_json: String,
    pub size: Option<u64>,
    pub created: Option<String>,
    pub error: Option<String>,
}

/// An image of a repository as listings show it: a tag, or a digest without a tag.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub pushed_at: i64,
    pub pushed_by: Option<String>,
    /// `None` until the indexing job has run.
    pub info: Option<ImageInfo>,
}

/// One stored set of details.
#[derive(Debug, Clone)]
pub struct DetailRow {
    pub reference: String,
    pub source: DetailSource,
    pub details_json: String,
}

/// The columns `image_row` reads after the tag, from `manifests m` and `image_info i`.
macro_rules! image_columns {
    () => {
        "m.digest, m.media_type, m.pushed_at, m.pushed_by, i.config_digest, i.platforms, i.size, i.created, i.error, i.indexed_at"
    };
}
const IMAGE_COLUMNS: &str = image_columns!();

/// Where the images of repositories come from, and which manifests are images: every
/// tag, and every manifest without a tag that is neither an index's child nor a
/// referrer (those belong to another image). Callers add the repository condition.
const IMAGES_FROM: &str = "FROM repositories r JOIN manifests m ON m.repository_id = r.id
     LEFT JOIN tags t ON t.repository_id = r.id AND t.digest = m.digest
     LEFT JOIN image_info i ON i.repository_id = r.id AND i.digest = m.digest
     WHERE (t.name IS NOT NULL OR (m.subject IS NULL AND NOT EXISTS (
         SELECT 1 FROM manifest_references mr WHERE mr.repository_id = r.id
         AND mr.child_digest = m.digest AND mr.child_is_manifest)))";

/// The order of a repository's images that puts its latest first: tags before untagged
/// manifests, then most recently pushed.
const LATEST_FIRST: &str = "t.name IS NULL, m.pushed_at_ms DESC, t.name";

impl Metadata {
    /// Stores (or with `None`, removes) one source's details for a reference.
    pub async fn put_image_details(
        &self,
        repository: &str,
        reference: &str,
        source: DetailSource,
        details_json: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        put_image_details(&mut conn, repository, reference, source, details_json).await
    }

    /// Every stored detail set for any of `keys`, `(repository, reference)` pairs, with
    /// its repository.
    pub async fn image_details_of(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, DetailRow)>> {
        let keys = serde_json::to_string(keys).expect("string pairs serialise");
        // The pairs are one JSON parameter, taken apart by each engine's JSON functions.
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT repository, reference, source, details FROM image_details WHERE (repository, reference) IN
                 (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1))"
            }
            Engine::Postgres => {
                "SELECT repository, reference, source, details FROM image_details WHERE (repository, reference) IN
                 (SELECT value->>0, value->>1 FROM jsonb_array_elements(CAST($1 AS jsonb)))"
            }
        };
        let rows = sqlx::query(sql).bind(keys).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let row = DetailRow {
                    reference: r.get(1),
                    source: detail_source(r, 2)?,
                    details_json: r.get(3),
                };
                Ok((r.get(0), row))
            })
            .collect()
    }

    /// Every stored detail set of `repository` for any of `references`.
    pub async fn image_details(
        &self,
        repository: &str,
        references: &[&str],
    ) -> Result<Vec<DetailRow>> {
        let refs =
            serde_json::Value::from(references.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                .to_string();
        let rows = sqlx::query(
            "SELECT reference, source, details FROM image_details
             WHERE repository = $1 AND reference IN (SELECT value FROM json_each($2))",
        )
        .bind(repository)
        .bind(refs)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DetailRow {
                    reference: r.get(0),
                    source: detail_source(r, 1)?,
                    details_json: r.get(2),
                })
            })
            .collect()
    }

    /// The images of a repository (see `IMAGES_FROM`), most recently pushed first.
    pub async fn images(&self, repository: &str) -> Result<Vec<ImageRow>> {
        let sql = format!(
            "SELECT t.name, {IMAGE_COLUMNS} {IMAGES_FROM} AND r.name = $1 ORDER BY m.pushed_at_ms DESC, t.name"
        );
        let rows = sqlx::query(&sql).bind(repository).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| image_row(r, r.get(0))).collect())
    }

    /// The latest image of each of `repositories`, by repository name (repositories
    /// without images are left out): its most recently pushed tag, else its most
    /// recently pushed image; the first of [`Metadata::images`] that has a tag, without
    /// listing them all.
    pub async fn latest_images(&self, repositories: &[String]) -> Result<Vec<(String, ImageRow)>> {
        let sql = format!(
            "SELECT * FROM (SELECT t.name, {IMAGE_COLUMNS}, r.name, row_number() OVER (PARTITION BY r.id ORDER BY {LATEST_FIRST}) AS n
             {IMAGES_FROM} AND r.name IN (SELECT value FROM json_each($1))) AS latest WHERE n = 1"
        );
        let names = serde_json::Value::from(repositories.to_vec()).to_string();
        let rows = sqlx::query(&sql).bind(names).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(11), image_row(r, r.get(0)))).collect())
    }

    /// One image by tag or digest.
    pub async fn image(&self, repository: &str, reference: &str) -> Result<Option<ImageRow>> {
        let row = sqlx::query(&format!(
            "SELECT t.name, {IMAGE_COLUMNS}
             FROM repositories r JOIN manifests m ON m.repository_id = r.id
             LEFT JOIN tags t ON t.repository_id = r.id AND t.digest = m.digest AND t.name = $2
             LEFT JOIN image_info i ON i.repository_id = r.id AND i.digest = m.digest
             WHERE r.name = $1 AND (t.name IS NOT NULL OR m.digest = $2)
             LIMIT 1"
        ))
        .bind(repository)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| image_row(&r, r.get(0))))
    }

    /// Deletes a repository with its tags, manifests and blob links (by cascade) and the
    /// details stored for it; returns whether it existed.
    pub async fn delete_repository(&self, repository: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM image_details WHERE repository = $1")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE repository = $1")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pull_counts WHERE repository = $1")
            .bind(repository)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Repository names in `namespace` that hold images, visible through `filter`
    /// (`None`: all), sorted.
    pub async fn repositories_in(
        &self,
        namespace: &str,
        filter: Option<&crate::RepositoryFilter>,
    ) -> Result<Vec<String>> {
        let params = visibility::Params::of(filter);
        let sql = format!(
            "SELECT r.name FROM repositories r {}
             WHERE r.namespace = $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) AND {}
             ORDER BY r.name",
            visibility::JOINS,
            visibility::condition(2)
        );
        let rows = visibility::bind(sqlx::query(&sql).bind(namespace), &params)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every stored detail set of `source` in the repositories of `namespace`, by
    /// repository and reference: what an export of user edits lists.
    pub async fn details_in_namespace(
        &self,
        namespace: &str,
        source: DetailSource,
    ) -> Result<Vec<(String, DetailRow)>> {
        let rows = sqlx::query(
            "SELECT repository, reference, source, details FROM image_details
             WHERE source = $1 AND substr(repository, 1, length($2) + 1) = $3 || '/'
             ORDER BY repository, reference",
        )
        .bind(source.as_str())
        .bind(namespace)
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let row = DetailRow {
                    reference: r.get(1),
                    source: detail_source(r, 2)?,
                    details_json: r.get(3),
                };
                Ok((r.get(0), row))
            })
            .collect()
    }

    /// Whether base info exists and was computed without error.
    pub async fn image_indexed(&self, repository: &str, digest: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM image_info i JOIN repositories r ON r.id = i.repository_id
             WHERE r.name = $1 AND i.digest = $2 AND i.error IS NULL",
        )
        .bind(repository)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

fn image_row(r: &sqlx::any::AnyRow, tag: Option<String>) -> ImageRow {
    let indexed: Option<i64> = r.get(10);
    ImageRow {
        tag,
        digest: r.get(1),
        media_type: r.get(2),
        pushed_at: r.get(3),
        pushed_by: r.get(4),
        info: indexed.map(|_| ImageInfo {
            config_digest: r.get(5),
            platforms_json: r.get(6),
            size: r.get::<Option<i64>, _>(7).map(|s| s as u64),
            created: r.get(8),
            error: r.get(9),
        }),
    }
}

/// Stores the base info of `repository@digest`, if the manifest still exists.
pub(crate) async fn put_image_info(
    conn: &mut AnyConnection,
    repository: &str,
    digest: &str,
    info: &ImageInfo,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO image_info (repository_id, digest, config_digest, platforms, size, created, error, indexed_at)
         SELECT m.repository_id, m.digest, $1, $2, $3, $4, $5, $6 FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.name = $7 AND m.digest = $8
         ON CONFLICT (repository_id, digest) DO UPDATE SET config_digest = excluded.config_digest,
            platforms = excluded.platforms, size = excluded.size, created = excluded.created,
            error = excluded.error, indexed_at = excluded.indexed_at",
    )
    .bind(&info.config_digest)
    .bind(&info.platforms_json)
    .bind(info.size.map(|s| s as i64))
    .bind(&info.created)
    .bind(&info.error)
    .bind(now())
    .bind(repository)
    .bind(digest)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores (or with `None`, removes) one source's details for a reference.
pub(crate) async fn put_image_details(
    conn: &mut AnyConnection,
    repository: &str,
    reference: &str,
    source: DetailSource,
    details_json: Option<&str>,
) -> Result<()> {
    match details_json {
        Some(json) => {
            sqlx::query(
                "INSERT INTO image_details (repository, reference, source, details, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (repository, reference, source) DO UPDATE SET details = excluded.details, updated_at = excluded.updated_at",
            )
            .bind(repository)
            .bind(reference)
            .bind(source.as_str())
            .bind(json)
            .bind(now())
            .execute(conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM image_details WHERE repository = $1 AND reference = $2 AND source = $3",
            )
            .bind(repository)
            .bind(reference)
            .bind(source.as_str())
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The detail source in column `i`, which the table's `CHECK` keeps valid.
fn detail_source(r: &sqlx::any::AnyRow, i: usize) -> Result<DetailSource> {
    let stored: String = r.get(i);
    stored.parse().map_err(MetadataError::Corrupt)
}
