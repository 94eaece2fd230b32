//! Growing delays after failed logins, so password guessing is slow while nobody can
//! use the delays to lock a real user out. Failures count per user *and* client address
//! (a guesser slows down only their own tries at that account), per address (a guesser
//! trying many accounts), and per account from anywhere with a far higher threshold (a
//! guesser spread over many addresses), which is audited when reached. Access tokens
//! are not throttled at all: their secrets cannot be guessed, and a correct one must
//! never be refused because someone else mistyped a password.
//!
//! The counts live in the metadata database, so replicas share them: a guesser spread
//! over replicas behind a load balancer is slowed as one hitting a single server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imagehub_metadata::{LoginFailures, Metadata, MetadataError};
use imagehub_oci::Digest;

/// Each failure past the free ones doubles the wait, from `FIRST_DELAY` up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten (its row removed).
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Many users may share one address (NAT, CI runners), so an address gets more slack.
const ADDRESS_FACTOR: u32 = 4;
/// Failures of one account from all addresses together before it is slowed down.
const ACCOUNT_FACTOR: u32 = 20;

/// What a failure counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Failure,
    /// This failure made the account-wide limit bite: worth an audit event.
    AccountLimitReached,
}

/// Where a login stands before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// How long the caller must still wait, if at all.
    pub retry_after: Option<Duration>,
    /// Whether the user has failures from this address, which a success clears.
    pub failed_here: bool,
}

/// The failure counts, kept in the database.
pub struct LoginLimiter {
    free_failures: u32,
    meta: Metadata,
}

impl LoginLimiter {
    /// `free_failures`: failed logins of one user from one address before delays start
    /// (per address: four times as many; per account from anywhere: twenty times).
    pub fn new(free_failures: u32, meta: Metadata) -> LoginLimiter {
        LoginLimiter { free_failures: free_failures.max(1), meta }
    }

    /// Where `user` from `address` stands.
    pub async fn standing(&self, user: &str, address: &str) -> Result<Standing, MetadataError> {
        self.standing_at(user, address, SystemTime::now()).await
    }

    async fn standing_at(
        &self,
        user: &str,
        address: &str,
        now: SystemTime,
    ) -> Result<Standing, MetadataError> {
        let now = millis(now);
        let keys = keys(user, address);
        let found = self.meta.login_failures(&keys).await?;
        let live = |f: &&LoginFailures| f.last_ms >= now - millis_of(FORGET_AFTER);
        let retry_after = found
            .iter()
            .filter(live)
            .filter_map(|f| f.blocked_until_ms)
            .filter(|until| *until > now)
            .max()
            .map(|until| Duration::from_millis((until - now) as u64));
        let failed_here = found.iter().any(|f| f.key == keys[USER_HERE]);
        Ok(Standing { retry_after, failed_here })
    }

    /// Counts a failed password login.
    pub async fn failed(&self, user: &str, address: &str) -> Result<Counted, MetadataError> {
        self.failed_at(user, address, SystemTime::now()).await
    }

    async fn failed_at(
        &self,
        user: &str,
        address: &str,
        now: SystemTime,
    ) -> Result<Counted, MetadataError> {
        let now = millis(now);
        let free_failures = self.free_failures;
        let forget_before = now - millis_of(FORGET_AFTER);
        self.meta
            .count_login_failure(&keys(user, address), forget_before, |rows| {
                let mut counted = Counted::Failure;
                for (i, row) in rows.iter_mut().enumerate() {
                    let free = free_failures.saturating_mul(FREE_FACTORS[i]);
                    row.failures = row.failures.saturating_add(1);
                    row.last_ms = now;
                    if row.failures >= free {
                        let doublings = (row.failures - free).min(16);
                        let delay = (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY);
                        row.blocked_until_ms = Some(now + millis_of(delay));
                        if i == ACCOUNT && row.failures == free {
                            counted = Counted::AccountLimitReached;
                        }
                    }
                }
                counted
            })
            .await
    }

    /// A successful login clears the user's failures from that address (not the
    /// address's own, so one success does not let a guesser behind the same address go
    /// on with other users, nor the account's, which guessers elsewhere built up).
    pub async fn succeeded(&self, user: &str, address: &str) -> Result<(), MetadataError> {
        let [user_here, ..] = keys(user, address);
        self.meta.forget_login_failures(&user_here).await
    }
}

/// Where each key stands in [`keys`], and how many times the free failures it gets.
const USER_HERE: usize = 0;
const ACCOUNT: usize = 2;
const FREE_FACTORS: [u32; 3] = [1, ADDRESS_FACTOR, ACCOUNT_FACTOR];

/// The keys a login counts against: the user at the address, the address, the account.
/// A key is a hash of what it names, so a hostile name of any length is a key of fixed
/// size, and no name or address is stored in the clear.
fn keys(user: &str, address: &str) -> [String; 3] {
    let key = |parts: &[&str]| {
        let named = serde_json::to_string(parts).expect("strings serialise");
        Digest::sha256_of(named.as_bytes()).hex().to_string()
    };
    [key(&["user-at", user, address]), key(&["address", address]), key(&["account", user])]
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn millis_of(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn limiter(free_failures: u32) -> (tempfile::TempDir, LoginLimiter) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("imagehub.db")).await.unwrap();
        (dir, LoginLimiter::new(free_failures, meta))
    }

    async fn wait(limiter: &LoginLimiter, user: &str, address: &str) -> Option<Duration> {
        limiter.standing(user, address).await.unwrap().retry_after
    }

    #[tokio::test]
    async fn delays_start_after_the_free_failures_and_only_for_that_address() {
        let (_dir, limiter) = limiter(3).await;
        for _ in 0..2 {
            limiter.failed("bob", "10.0.0.1").await.unwrap();
            assert_eq!(wait(&limiter, "bob", "10.0.0.1").await, None);
        }
        limiter.failed("bob", "10.0.0.1").await.unwrap();
        let waited = wait(&limiter, "bob", "10.0.0.1").await;
        assert!(waited.is_some_and(|d| d > Duration::from_secs(4)), "{waited:?}");
        // bob from elsewhere, and another user behind the same address, are not slowed.
        assert_eq!(wait(&limiter, "bob", "10.0.0.2").await, None);
        assert_eq!(wait(&limiter, "alice", "10.0.0.1").await, None);
        assert!(limiter.standing("bob", "10.0.0.1").await.unwrap().failed_here);
        assert!(!limiter.standing("alice", "10.0.0.1").await.unwrap().failed_here);
        limiter.succeeded("bob", "10.0.0.1").await.unwrap();
        assert_eq!(wait(&limiter, "bob", "10.0.0.1").await, None);
    }

    #[tokio::test]
    async fn an_address_is_blocked_after_many_failures_across_users() {
        let (_dir, limiter) = limiter(2).await;
        for i in 0..8 {
            limiter.failed(&format!("user{i}"), "10.0.0.9").await.unwrap();
        }
        assert!(wait(&limiter, "fresh", "10.0.0.9").await.is_some());
        assert_eq!(wait(&limiter, "fresh", "10.0.0.8").await, None);
    }

    #[tokio::test]
    async fn an_account_guessed_from_many_addresses_is_slowed_far_later_and_says_so_once() {
        let (_dir, limiter) = limiter(2).await;
        let mut reached = Vec::new();
        for i in 0..41 {
            reached.push(limiter.failed("bob", &format!("10.1.0.{i}")).await.unwrap());
        }
        assert!(
            reached[..39].iter().all(|c| *c == Counted::Failure),
            "below 20 x 2 failures nothing happens"
        );
        assert_eq!(reached[39], Counted::AccountLimitReached);
        assert_eq!(reached[40], Counted::Failure, "reported once");
        assert!(wait(&limiter, "bob", "10.9.9.9").await.is_some());
    }

    #[tokio::test]
    async fn failures_an_hour_old_are_forgotten_and_their_rows_removed() {
        let (_dir, limiter) = limiter(1).await;
        let then = SystemTime::now() - FORGET_AFTER - Duration::from_secs(60);
        for i in 0..10 {
            limiter.failed_at(&format!("u{i}"), "10.0.0.1", then).await.unwrap();
        }
        assert_eq!(wait(&limiter, "u0", "10.0.0.1").await, None, "forgotten");
        limiter.failed("someone", "10.0.0.2").await.unwrap();
        let old: Vec<String> = (0..10).flat_map(|i| keys(&format!("u{i}"), "10.0.0.1")).collect();
        assert_eq!(limiter.meta.login_failures(&old).await.unwrap(), Vec::new(), "rows removed");
    }

    #[tokio::test]
    async fn a_hostile_name_is_a_key_of_fixed_size() {
        let (_dir, limiter) = limiter(1).await;
        let huge = "x".repeat(1 << 20);
        limiter.failed(&huge, "10.0.0.1").await.unwrap();
        assert!(wait(&limiter, &huge, "10.0.0.1").await.is_some());
        assert!(keys(&huge, "10.0.0.1").iter().all(|key| key.len() == 64));
    }
}
