//! Pull counts: each manifest GET is counted in memory and the counts are added to the
//! database in batches, so a pull never waits for a write. Readers see the stored
//! count plus what is still pending, so counts are exact at every moment the server
//! runs; a crash loses at most the pulls since the last flush.

use std::collections::HashMap;
use std::sync::Mutex;

use imagehub_oci::{Digest, RepoName};

use crate::{CoreError, Registry};

/// Pulls counted since the last flush, by (repository, digest).
#[derive(Default)]
pub struct PullCounter {
    pending: Mutex<HashMap<(String, String), u64>>,
}

impl PullCounter {
    pub(crate) fn pending(&self, repository: &str, digest: Option<&str>) -> u64 {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .iter()
            .filter(|((r, d), _)| r == repository && digest.is_none_or(|digest| d == digest))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Registry {
    /// Counts one pull of `digest` from `repository`.
    pub fn record_pull(&self, repository: &RepoName, digest: &Digest) {
        let mut pending = self.pulls.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry((repository.to_string(), digest.to_string())).or_default() += 1;
    }

    /// Adds the pending counts to the database; on failure they stay pending.
    pub async fn flush_pulls(&self) -> Result<(), CoreError> {
        let batch: Vec<(String, String, u64)> = {
            let mut pending = self.pulls.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|((r, d), n)| (r, d, n)).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.meta.add_pulls(&batch).await {
            let mut pending = self.pulls.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (r, d, n) in batch {
                *pending.entry((r, d)).or_default() += n;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Pulls of an image (`Some(digest)`) or of a whole repository.
    pub async fn pull_count(
        &self,
        repository: &RepoName,
        digest: Option<&str>,
    ) -> Result<u64, CoreError> {
        let stored = self.meta.pull_count(repository.as_str(), digest).await?;
        Ok(stored + self.pulls.pending(repository.as_str(), digest))
    }

    /// Pulls of every image of `repository`, by digest (images never pulled are left
    /// out): one query for a whole listing.
    pub async fn image_pull_counts(
        &self,
        repository: &RepoName,
    ) -> Result<HashMap<String, u64>, CoreError> {
        let mut counts: HashMap<String, u64> =
            self.meta.image_pull_counts(repository.as_str()).await?.into_iter().collect();
        let pending = self.pulls.pending.lock().unwrap_or_else(|e| e.into_inner());
        for ((r, digest), n) in pending.iter() {
            if r == repository.as_str() {
                *counts.entry(digest.clone()).or_default() += n;
            }
        }
        Ok(counts)
    }
}
