//! Growing delays after failed logins, per user name and per client address, so
//! password guessing is slow while a user who mistypes a few times is not locked out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures that cost nothing; each one after them doubles the wait, from one
/// `FIRST_DELAY` up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_secs(5);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Many users may share one address (NAT, CI runners), so an address gets more slack.
const ADDRESS_FACTOR: u32 = 4;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// The failure counts; shared by every request.
pub struct LoginLimiter {
    free_failures: u32,
    entries: Mutex<HashMap<String, Failures>>,
}

impl LoginLimiter {
    /// `free_failures`: failed logins per user before delays start (per address: four times as many).
    pub fn new(free_failures: u32) -> LoginLimiter {
        LoginLimiter { free_failures, entries: Mutex::default() }
    }

    /// How long `user` from `address` must still wait before trying again, if at all.
    pub fn wait(&self, user: &str, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        [user_key(user), address_key(address)]
            .iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed login.
    pub fn failed(&self, user: &str, address: &str) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        for (key, free) in [(user_key(user), self.free_failures), (address_key(address), self.free_failures * ADDRESS_FACTOR)] {
            let f = entries.entry(key).or_insert(Failures { count: 0, last: now, blocked_until: None });
            f.count += 1;
            f.last = now;
            if f.count >= free.max(1) {
                let doublings = (f.count - free.max(1)).min(16);
                f.blocked_until = Some(now + (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY));
            }
        }
    }

    /// A successful login clears the user's failures (not the address's: one success
    /// must not let an attacker behind the same address go on guessing other users).
    pub fn succeeded(&self, user: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&user_key(user));
    }
}

fn user_key(user: &str) -> String {
    format!("user:{user}")
}

fn address_key(address: &str) -> String {
    format!("addr:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures() {
        let limiter = LoginLimiter::new(3);
        for _ in 0..2 {
            limiter.failed("bob", "10.0.0.1");
            assert_eq!(limiter.wait("bob", "10.0.0.1"), None);
        }
        limiter.failed("bob", "10.0.0.1");
        assert!(limiter.wait("bob", "10.0.0.1").is_some_and(|d| d > Duration::from_secs(4)));
        // Another user behind the same address is not blocked yet.
        assert_eq!(limiter.wait("alice", "10.0.0.1"), None);
        limiter.succeeded("bob");
        assert_eq!(limiter.wait("bob", "10.0.0.2"), None);
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
}
