//! What this process hears of the others sharing its PostgreSQL database (metadata's
//! `Notices`): a user's sessions ended elsewhere drop the epoch cached here, and a job
//! changed elsewhere wakes the waits and idle workers here, at once rather than at their
//! next look (the epoch's few seconds, the waits' second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imagehub_metadata::Notice;

use crate::{Accounts, Registry};

/// The pause before listening again after the database could not be reached.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How many notices this process has heard, for `/metrics`.
#[derive(Default)]
pub(crate) struct Heard(AtomicU64);

impl Registry {
    /// Follows, for the server's life, what other processes on the database change;
    /// returns at once on SQLite, which one process holds. `accounts`, when the server
    /// has them, are told of sessions ended elsewhere.
    pub async fn follow_other_replicas(&self, accounts: Option<Accounts>) {
        loop {
            let mut notices = match self.meta.notices().await {
                Ok(Some(notices)) => notices,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes");
                    tokio::time::sleep(RECONNECT_AFTER).await;
                    continue;
                }
            };
            // Whatever happened before listening (or while reconnecting) was not heard.
            self.heard(&Notice::Missed, accounts.as_ref());
            loop {
                match notices.next().await {
                    Ok(notice) => self.heard(&notice, accounts.as_ref()),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection hearing other replicas");
                        break;
                    }
                }
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    }

    /// Notices heard so far (a missed stretch counts as one).
    pub fn notices_heard(&self) -> u64 {
        self.heard.0.load(Ordering::Relaxed)
    }

    fn heard(&self, notice: &Notice, accounts: Option<&Accounts>) {
        match notice {
            Notice::SessionsEnded { user } => {
                if let Some(accounts) = accounts {
                    accounts.forget_sessions_of(user);
                }
            }
            Notice::ImportJobsChanged => self.imports.changed_elsewhere(),
            Notice::BuildJobsChanged => self.builds.changed_elsewhere(),
            Notice::Missed => {
                if let Some(accounts) = accounts {
                    accounts.forget_all_sessions();
                }
                self.imports.changed_elsewhere();
                self.builds.changed_elsewhere();
            }
        }
        self.heard.0.fetch_add(1, Ordering::Relaxed);
    }
}
