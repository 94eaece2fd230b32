//! Notices between the processes sharing a PostgreSQL database: triggers send them at
//! commit (migration `0003_notices.sql`) whenever a user's sessions end or a job changes,
//! and each server listens on a connection of its own, so what one replica changes
//! reaches what the others keep in memory or wait on at once. SQLite has one process and
//! no notices.
//!
//! Best effort, as PostgreSQL's notifications are: while the listening connection is
//! down nothing is heard, which [`Notice::Missed`] reports once it is back.

use sqlx::postgres::PgListener;

use crate::{Engine, Metadata, Result};

/// The channel the triggers notify.
const CHANNEL: &str = "imagehub";

/// What another process (or this one) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The user's earlier registry tokens and sessions are no longer valid (a new
    /// password), or the user is gone.
    SessionsEnded { user: String },
    /// An import job was queued, changed or removed.
    ImportJobsChanged,
    /// A build job was queued, changed or removed.
    BuildJobsChanged,
    /// The connection was lost and is made again: notices may have been missed.
    Missed,
}

impl Notice {
    /// The notice a trigger's payload names; `None` for one this version does not know
    /// (sent by a newer replica during a rolling upgrade).
    fn parse(payload: &str) -> Option<Notice> {
        match payload.split_once(':') {
            Some(("sessions", user)) => Some(Notice::SessionsEnded { user: user.to_string() }),
            _ => match payload {
                "import_jobs" => Some(Notice::ImportJobsChanged),
                "build_jobs" => Some(Notice::BuildJobsChanged),
                _ => None,
            },
        }
    }
}

/// A listening connection.
pub struct Notices {
    listener: PgListener,
}

impl Notices {
    /// The next notice; after [`Notice::Missed`] the next call connects again (an error
    /// if it cannot).
    pub async fn next(&mut self) -> Result<Notice> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(Notice::Missed);
            };
            if let Some(notice) = Notice::parse(notification.payload()) {
                return Ok(notice);
            }
        }
    }
}

impl Metadata {
    /// Starts listening for notices; `None` on SQLite.
    pub async fn notices(&self) -> Result<Option<Notices>> {
        let (Engine::Postgres, Some(url)) = (self.engine, &self.url) else { return Ok(None) };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Notices { listener }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_notices_and_unknown_ones_are_ignored() {
        let ended = Notice::SessionsEnded { user: "alice".into() };
        assert_eq!(Notice::parse("sessions:alice"), Some(ended));
        assert_eq!(Notice::parse("import_jobs"), Some(Notice::ImportJobsChanged));
        assert_eq!(Notice::parse("build_jobs"), Some(Notice::BuildJobsChanged));
        assert_eq!(Notice::parse("tags:acme/app"), None);
        assert_eq!(Notice::parse("sessions"), None);
    }
}
