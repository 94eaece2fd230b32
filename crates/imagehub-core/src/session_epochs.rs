//! `SessionEpochs`: each user's `sessions_valid_after` (the last password change), cached
//! for a few seconds, so the registry can refuse JWTs issued before a password change
//! without a database read on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cached epoch is trusted. A password changed through another process takes
/// effect here when its notice is heard (`replicas.rs`), at the latest within this time
/// (PostgreSQL's notices are best effort); through this process, at once.
pub const EPOCH_TTL: Duration = Duration::from_secs(5);

/// Enough for every user active within `EPOCH_TTL` on a busy hub; a full cache first
/// drops stale entries, then starts over.
const MAX_ENTRIES: usize = 16_384;

/// User name → (`sessions_valid_after`, or `None` for a user that does not exist; when read).
#[derive(Default)]
pub struct SessionEpochs {
    entries: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl SessionEpochs {
    /// The cached epoch, if it is fresh: `Some(None)` means the user did not exist.
    pub fn get(&self, user: &str) -> Option<Option<i64>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (epoch, read_at) = entries.get(user)?;
        (read_at.elapsed() < EPOCH_TTL).then_some(*epoch)
    }

    pub fn insert(&self, user: &str, epoch: Option<i64>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < EPOCH_TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(user.to_string(), (epoch, Instant::now()));
    }

    /// Drops a user's epoch after it changed, so the next check reads it again.
    pub fn forget(&self, user: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(user);
    }

    /// Drops every epoch, when changes may have been missed.
    pub fn forget_all(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_and_missing_users_are_read_again() {
        let epochs = SessionEpochs::default();
        assert_eq!(epochs.get("alice"), None);
        epochs.insert("alice", Some(10));
        epochs.insert("ghost", None);
        assert_eq!(epochs.get("alice"), Some(Some(10)));
        assert_eq!(epochs.get("ghost"), Some(None));
        epochs.forget("alice");
        assert_eq!(epochs.get("alice"), None);
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let epochs = SessionEpochs::default();
        for i in 0..MAX_ENTRIES + 10 {
            epochs.insert(&format!("user{i}"), Some(0));
        }
        assert!(epochs.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
