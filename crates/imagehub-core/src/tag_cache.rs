//! An in-memory copy of each recently listed repository's sorted tags, so tag listings
//! (which clients walk page by page) are a binary search instead of a database scan.
//!
//! Only this process changes tags (garbage collection never deletes a tagged manifest),
//! so invalidating on every tag write here keeps the copy exact. A generation counter
//! stops a listing that raced a write from caching what it read before the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use imagehub_oci::RepoName;

/// Repositories whose tags are kept; past this the cache starts over.
const MAX_REPOSITORIES: usize = 1024;

/// A repository's tags, sorted, with a slot where the edge may keep its rendering of the
/// complete list (the core does not know the wire format).
#[derive(Debug)]
pub struct Tags {
    sorted: Vec<String>,
    rendered: OnceLock<Bytes>,
}

impl Tags {
    pub(crate) fn new(sorted: Vec<String>) -> Tags {
        Tags { sorted, rendered: OnceLock::new() }
    }

    /// Every tag, in lexical (byte) order.
    pub fn as_slice(&self) -> &[String] {
        &self.sorted
    }

    /// `render` of the complete list, computed once per version of the list.
    pub fn rendered(&self, render: impl FnOnce(&[String]) -> Bytes) -> Bytes {
        self.rendered.get_or_init(|| render(&self.sorted)).clone()
    }
}

#[derive(Default)]
pub(crate) struct TagCache {
    repositories: Mutex<HashMap<RepoName, Arc<Tags>>>,
    generation: AtomicU64,
}

impl TagCache {
    pub(crate) fn get(&self, repository: &RepoName) -> Option<Arc<Tags>> {
        self.lock().get(repository).cloned()
    }

    /// The generation to pass to `insert` for a list read from the database after now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `tags` unless a tag changed anywhere since `generation` was read.
    pub(crate) fn insert(&self, repository: &RepoName, tags: Arc<Tags>, generation: u64) {
        let mut repositories = self.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if repositories.len() >= MAX_REPOSITORIES {
            repositories.clear();
        }
        repositories.insert(repository.clone(), tags);
    }

    /// Forgets a repository's tags; call after every change to its tags is committed.
    pub(crate) fn invalidate(&self, repository: &RepoName) {
        let mut repositories = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        repositories.remove(repository);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RepoName, Arc<Tags>>> {
        self.repositories.lock().expect("tag cache lock is not poisoned")
    }
}

/// The page of `tags` (sorted) after `last`, at most `limit` long.
pub(crate) fn page(tags: &[String], last: Option<&str>, limit: u32) -> Vec<String> {
    let start = match last {
        Some(last) => tags.partition_point(|tag| tag.as_str() <= last),
        None => 0,
    };
    tags[start..].iter().take(limit as usize).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let tags: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(page(&tags, None, 2), ["a", "b"]);
        assert_eq!(page(&tags, Some("b"), 10), ["c", "d"]);
        assert_eq!(page(&tags, Some("bb"), 1), ["c"]);
        assert!(page(&tags, Some("d"), 5).is_empty());
    }

    #[test]
    fn a_write_during_a_read_keeps_the_stale_list_out() {
        let cache = TagCache::default();
        let repo: RepoName = "a/b".parse().expect("valid name");
        let generation = cache.generation();
        cache.invalidate(&repo);
        cache.insert(&repo, Arc::new(Tags::new(vec!["old".into()])), generation);
        assert!(cache.get(&repo).is_none());
        cache.insert(&repo, Arc::new(Tags::new(vec!["new".into()])), cache.generation());
        assert_eq!(cache.get(&repo).map(|t| t.as_slice().len()), Some(1));
    }
}
