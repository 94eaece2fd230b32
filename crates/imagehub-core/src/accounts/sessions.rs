//! Web UI sessions: opened by a password login (through the same throttle and sources as
//! `/token`), read from the cookie's secret on every page, ended at logout, after
//! `SESSION_IDLE` without use, at `SESSION_MAX_AGE`, and by a password change.

use std::time::Duration;

use imagehub_auth::AccessTokenSecret;

use super::{AccountError, Accounts, Caller, Credential, Result, user_caller};

/// A session unused this long has ended.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// A session this old has ended, however much it is used.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A session just opened: the secret for the cookie (shown once, stored hashed), the
/// CSRF token its forms carry, and who it stands for.
pub struct NewWebSession {
    pub secret: String,
    pub csrf: String,
    pub caller: Caller,
}

impl Accounts {
    /// Logs in with a password and opens a session. Access tokens do not open sessions:
    /// a session acts as the password, which a token never does.
    pub async fn open_web_session(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<NewWebSession> {
        let caller = self.login(username, password, client, true).await?;
        let user = caller.require_user()?;
        if user.credential != Credential::Password {
            return Err(AccountError::PasswordRequired { presented: user.credential.kind() });
        }
        let secret =
            format!("{}{}", imagehub_auth::generate_password(), imagehub_auth::generate_password());
        let csrf = imagehub_auth::generate_password();
        self.meta
            .create_web_session(&AccessTokenSecret::hash_of(&secret), user.id, &csrf, client)
            .await?;
        let caller =
            Caller::User(super::UserCaller { credential: Credential::Session, ..user.clone() });
        Ok(NewWebSession { secret, csrf, caller })
    }

    /// The caller and CSRF token of the session whose cookie holds `secret`, if it is
    /// still open; an expired session is ended on the way.
    pub async fn web_session(&self, secret: &str) -> Result<Option<(Caller, String)>> {
        let hash = AccessTokenSecret::hash_of(secret);
        let Some((session, user)) = self.meta.web_session(&hash).await? else { return Ok(None) };
        let now = imagehub_metadata::unix_seconds(std::time::SystemTime::now());
        let idle = now - session.last_seen_at > SESSION_IDLE.as_secs() as i64;
        let old = now - session.created_at > SESSION_MAX_AGE.as_secs() as i64;
        // A password change deletes its user's sessions, so none opened before it remains.
        if idle || old {
            self.meta.delete_web_session(&hash).await?;
            return Ok(None);
        }
        Ok(Some((user_caller(&user, Credential::Session), session.csrf)))
    }

    /// Ends the session whose cookie holds `secret`.
    pub async fn close_web_session(&self, secret: &str) -> Result<()> {
        Ok(self.meta.delete_web_session(&AccessTokenSecret::hash_of(secret)).await?)
    }
}

impl crate::Registry {
    /// Forgets web sessions that have ended by time; returns how many.
    pub async fn prune_web_sessions(&self) -> Result<u64, crate::CoreError> {
        let now = imagehub_metadata::unix_seconds(std::time::SystemTime::now());
        let idle_before = now - SESSION_IDLE.as_secs() as i64;
        let created_before = now - SESSION_MAX_AGE.as_secs() as i64;
        Ok(self.meta.prune_web_sessions(idle_before, created_before).await?)
    }
}
