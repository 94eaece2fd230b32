//! Growing delays after failed logins, so password guessing is slow while nobody can
//! use the delays to lock a real user out. Failures count per user *and* client address
//! (a guesser slows down only their own tries at that account), per address (a guesser
//! trying many accounts), and per account from anywhere with a far higher threshold (a
//! guesser spread over many addresses), which is audited when reached. Access tokens
//! are not throttled at all: their secrets cannot be guessed, and a correct one must
//! never be refused because someone else mistyped a password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each failure past the free ones doubles the wait, from `FIRST_DELAY` up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Many users may share one address (NAT, CI runners), so an address gets more slack.
const ADDRESS_FACTOR: u32 = 4;
/// Failures of one account from all addresses together before it is slowed down.
const ACCOUNT_FACTOR: u32 = 20;
/// Keys kept at most: beyond, only keys still blocking are kept, so a flood of names
/// and addresses cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// What a failure counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Failure,
    /// This failure made the account-wide limit bite: worth an audit event.
    AccountLimitReached,
}

/// The failure counts; shared by every request.
pub struct LoginLimiter {
    free_failures: u32,
    entries: Mutex<HashMap<Key, Failures>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    UserAtAddress(String, String),
    Address(String),
    Account(String),
}

impl LoginLimiter {
    /// `free_failures`: failed logins of one user from one address before delays start
    /// (per address: four times as many; per account from anywhere: twenty times).
    pub fn new(free_failures: u32) -> LoginLimiter {
        LoginLimiter { free_failures: free_failures.max(1), entries: Mutex::default() }
    }

    /// How long `user` from `address` must still wait before trying a password, if at all.
    pub fn wait(&self, user: &str, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        keys(user, address)
            .iter()
            .filter_map(|(key, _)| entries.get(key)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed password login.
    pub fn failed(&self, user: &str, address: &str) -> Counted {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, f| {
                now.duration_since(f.last) < FORGET_AFTER
                    && f.blocked_until.is_some_and(|until| until > now)
            });
            if entries.len() >= MAX_KEYS {
                entries.clear();
            }
        }
        let mut counted = Counted::Failure;
        for (key, factor) in keys(user, address) {
            let free = self.free_failures.saturating_mul(factor);
            let f = entries.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(f.last) >= FORGET_AFTER {
                *f = Failures { count: 0, last: now, blocked_until: None };
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            if f.count >= free {
                let doublings = (f.count - free).min(16);
                f.blocked_until = Some(now + (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY));
                if matches!(key, Key::Account(_)) && f.count == free {
                    counted = Counted::AccountLimitReached;
                }
            }
        }
        counted
    }

    /// A successful login clears the user's failures from that address (not the
    /// address's own, so one success does not let a guesser behind the same address go
    /// on with other users, nor the account's, which guessers elsewhere built up).
    pub fn succeeded(&self, user: &str, address: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Key::UserAtAddress(user.to_string(), address.to_string()));
    }
}

/// The keys a login counts against, each with how many times the free failures it gets.
fn keys(user: &str, address: &str) -> [(Key, u32); 3] {
    [
        (Key::UserAtAddress(user.to_string(), address.to_string()), 1),
        (Key::Address(address.to_string()), ADDRESS_FACTOR),
        (Key::Account(user.to_string()), ACCOUNT_FACTOR),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_only_for_that_address() {
        let limiter = LoginLimiter::new(3);
        for _ in 0..2 {
            limiter.failed("bob", "10.0.0.1");
            assert_eq!(limiter.wait("bob", "10.0.0.1"), None);
        }
        limiter.failed("bob", "10.0.0.1");
        assert!(limiter.wait("bob", "10.0.0.1").is_some_and(|d| d > Duration::from_secs(4)));
        // bob from elsewhere, and another user behind the same address, are not slowed.
        assert_eq!(limiter.wait("bob", "10.0.0.2"), None);
        assert_eq!(limiter.wait("alice", "10.0.0.1"), None);
        limiter.succeeded("bob", "10.0.0.1");
        assert_eq!(limiter.wait("bob", "10.0.0.1"), None);
    }

    #[test]
    fn an_address_is_blocked_after_many_failures_across_users() {
        let limiter = LoginLimiter::new(2);
        for i in 0..8 {
            limiter.failed(&format!("user{i}"), "10.0.0.9");
        }
        assert!(limiter.wait("fresh", "10.0.0.9").is_some());
        assert_eq!(limiter.wait("fresh", "10.0.0.8"), None);
    }

    #[test]
    fn an_account_guessed_from_many_addresses_is_slowed_far_later_and_says_so_once() {
        let limiter = LoginLimiter::new(2);
        let reached: Vec<Counted> =
            (0..41).map(|i| limiter.failed("bob", &format!("10.1.0.{i}"))).collect();
        assert!(
            reached[..39].iter().all(|c| *c == Counted::Failure),
            "below 20 x 2 failures nothing happens"
        );
        assert_eq!(reached[39], Counted::AccountLimitReached);
        assert_eq!(reached[40], Counted::Failure, "reported once");
        assert!(limiter.wait("bob", "10.9.9.9").is_some());
    }

    #[test]
    fn a_flood_of_names_does_not_grow_memory_without_bound() {
        let limiter = LoginLimiter::new(5);
        for i in 0..MAX_KEYS + 10 {
            limiter.failed(&format!("u{i}"), "10.0.0.1");
        }
        assert!(limiter.entries.lock().unwrap().len() <= MAX_KEYS);
    }
}
