//! Manifest-by-tag lookups on PostgreSQL, batched. A pull by tag must see a tag pushed
//! a moment ago on another replica, so it cannot be cached per process; but each lookup
//! as its own query costs a database round trip and the server's per-statement work,
//! which is most of a pull's cost. Here lookups queue, and one task sends whatever is
//! queued as one query as soon as its previous query has returned: alone, a lookup is
//! sent at once; under load, many share a round trip. Every lookup is answered by a
//! query sent after it was queued, so it sees every commit acknowledged before then —
//! as fresh as a query of its own. (The group-commit writer's idea, for reads; no
//! crate does it for sqlx.)

use std::collections::HashMap;
use std::sync::Arc;

use imagehub_oci::{RepoName, Tag};
use sqlx::{AnyPool, Row};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::registry::{StoredManifest, parse_digest};
use crate::{MetadataError, Result};

/// Queries in flight at once. One: each round trip saved is the database's and this
/// process's work saved, which on a shared machine is worth more than the wait (two
/// replicas, 16 connections: 13.0k pulls/s at one, 12.1k at two).
const IN_FLIGHT: usize = 1;
/// Lookups in one query at most.
const MAX_BATCH: usize = 256;
/// Lookups waiting at most; beyond, callers wait to queue.
const MAX_QUEUED: usize = 4096;

type Answer = oneshot::Sender<Result<Option<StoredManifest>>>;

struct Lookup {
    repository: String,
    tag: String,
    answer: Answer,
}

/// The handle lookups queue through; cheap to clone.
#[derive(Clone)]
pub(crate) struct TagLookups {
    queue: mpsc::Sender<Lookup>,
}

impl TagLookups {
    /// Starts the task sending lookups through `pool`; it ends with the last handle.
    pub(crate) fn start(pool: AnyPool) -> TagLookups {
        let (queue, lookups) = mpsc::channel(MAX_QUEUED);
        tokio::spawn(run(pool, lookups));
        TagLookups { queue }
    }

    /// The manifest `tag` names in `repository`, if any.
    pub(crate) async fn find(
        &self,
        repository: &RepoName,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>> {
        let (answer, answered) = oneshot::channel();
        let lookup =
            Lookup { repository: repository.as_str().into(), tag: tag.as_str().into(), answer };
        self.queue.send(lookup).await.map_err(|_| MetadataError::Stopped)?;
        answered.await.map_err(|_| MetadataError::Stopped)?
    }
}

async fn run(pool: AnyPool, mut lookups: mpsc::Receiver<Lookup>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // A slot first, then whatever has queued by then: while every slot is taken,
        // lookups gather.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        if lookups.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let pool = pool.clone();
        let batch = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Looks up every distinct key of `batch` in one query and answers each lookup.
async fn answer(pool: &AnyPool, batch: Vec<Lookup>) {
    let mut by_key: HashMap<(String, String), Vec<Answer>> = HashMap::new();
    for Lookup { repository, tag, answer } in batch {
        by_key.entry((repository, tag)).or_default().push(answer);
    }
    let (keys, answers): (Vec<_>, Vec<_>) = by_key.into_iter().unzip();
    match find_all(pool, &keys).await {
        Ok(mut found) => {
            for (i, answers) in answers.into_iter().enumerate() {
                let row = found.remove(&i);
                for answer in answers {
                    let _ = answer.send(row.clone().map(Found::manifest).transpose());
                }
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for answer in answers.into_iter().flatten() {
                let _ = answer.send(Err(MetadataError::Shared(Arc::clone(&e))));
            }
        }
    }
}

/// A tagged manifest as read.
#[derive(Clone)]
struct Found {
    digest: String,
    media_type: String,
    content: Vec<u8>,
}

impl Found {
    fn manifest(self) -> Result<StoredManifest> {
        let digest = parse_digest(self.digest)?;
        Ok(StoredManifest { digest, media_type: self.media_type, content: self.content })
    }
}

/// What `keys` (repository, tag) name, by the key's index.
async fn find_all(
    pool: &AnyPool,
    keys: &[(String, String)],
) -> Result<HashMap<usize, Found>, sqlx::Error> {
    let rows = match keys {
        // Alone, the plain query: less for the server to do than taking a list apart.
        [(repository, tag)] => {
            sqlx::query(
                "SELECT 1, m.digest, m.media_type, m.content FROM tags t
                 JOIN repositories r ON r.id = t.repository_id
                 JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
                 WHERE r.name = $1 AND t.name = $2",
            )
            .bind(repository)
            .bind(tag)
            .fetch_all(pool)
            .await?
        }
        keys => {
            sqlx::query(
                "SELECT CAST(k.i AS BIGINT), m.digest, m.media_type, m.content
                 FROM jsonb_array_elements(CAST($1 AS jsonb)) WITH ORDINALITY AS k(key, i)
                 JOIN repositories r ON r.name = k.key->>0
                 JOIN tags t ON t.repository_id = r.id AND t.name = k.key->>1
                 JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest",
            )
            .bind(serde_json::to_string(keys).expect("string pairs serialise"))
            .fetch_all(pool)
            .await?
        }
    };
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let ordinal: i64 = row.try_get(0)?;
        let row = Found {
            digest: row.try_get(1)?,
            media_type: row.try_get(2)?,
            content: row.try_get(3)?,
        };
        // WITH ORDINALITY counts from 1.
        found.insert((ordinal - 1) as usize, row);
    }
    Ok(found)
}
