//! Logging in: passwords (local argon2id, htpasswd, a webhook), access tokens, and the
//! registry JWTs and refresh tokens `/token` issued, each turned into a [`Caller`].

use std::sync::Arc;

use imagehub_auth::{AccessTokenSecret, Claims};
use imagehub_metadata::{AuditAction, NewUser, UserRow, UserSource};
use imagehub_oci::AccountName;

use super::{
    AccountError, Accounts, Caller, Credential, Result, TokenGrant, WebhookAnswer, token_grant,
    user_caller,
};
use crate::login_limiter::Counted;

impl Accounts {
    /// Checks a user name and a password or access-token secret, with growing delays
    /// after failures. `record` adds a `login` audit event on success: the token
    /// endpoint records, as that is where clients log in; Basic credentials sent with
    /// each registry or API request do not, or every request would be a login.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &str,
        record: bool,
    ) -> Result<Caller> {
        // Access tokens are not throttled: they cannot be guessed, and a correct one must
        // work even while someone guesses the user's password.
        let standing = match AccessTokenSecret::looks_like(password) {
            true => None,
            false => Some(self.limiter.standing(username, client).await?),
        };
        let throttled = standing.is_some();
        if let Some(retry_after) = standing.and_then(|s| s.retry_after) {
            tracing::warn!(user = username, client, "login refused: too many failures");
            return Err(AccountError::TooManyAttempts { retry_after });
        }
        match self.check_credentials(username, password).await {
            Ok(Some(caller)) => {
                if standing.is_some_and(|s| s.failed_here) {
                    self.limiter.succeeded(username, client).await?;
                }
                if record {
                    let via = caller.user().map_or("password", |u| u.credential.kind());
                    self.audit(
                        caller.name(),
                        AuditAction::Login,
                        None,
                        None,
                        Some(client),
                        Some(serde_json::json!({"via": via})),
                    )
                    .await;
                }
                Ok(caller)
            }
            Ok(None) => {
                if throttled
                    && self.limiter.failed(username, client).await? == Counted::AccountLimitReached
                {
                    tracing::warn!(
                        user = username,
                        client,
                        "password logins to this account are slowed down: failures from many addresses"
                    );
                    self.audit(
                        None,
                        AuditAction::LoginThrottled,
                        None,
                        Some(username),
                        Some(client),
                        None,
                    )
                    .await;
                }
                tracing::warn!(user = username, client, "login failed");
                self.audit(
                    None,
                    AuditAction::LoginFailed,
                    None,
                    Some(username),
                    Some(client),
                    None,
                )
                .await;
                Err(AccountError::BadCredentials)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks an access-token secret presented alone (`Authorization: Bearer ihp_…`).
    /// No throttling: the secrets are not guessable.
    pub async fn login_with_token(&self, secret: &str) -> Result<Caller> {
        match self.meta.use_access_token(&AccessTokenSecret::hash_of(secret)).await? {
            Some((token, user)) => {
                Ok(user_caller(&user, Credential::AccessToken(token_grant(&token))))
            }
            None => Err(AccountError::BadCredentials),
        }
    }

    async fn check_credentials(&self, username: &str, password: &str) -> Result<Option<Caller>> {
        if AccessTokenSecret::looks_like(password) {
            return self.check_access_token(username, password).await;
        }
        let user = self.meta.user_by_name(username).await?;
        if let Some(user) = &user
            && let Some(phc) = user.password_hash.clone()
        {
            let password = password.to_string();
            let ok =
                self.slow_hash(move || imagehub_auth::verify_password(&password, &phc)).await?;
            return Ok(ok.then(|| user_caller(user, Credential::Password)));
        }
        if let Some(file) = self.htpasswd.clone().filter(|f| f.contains(username)) {
            let (name, password) = (username.to_string(), password.to_string());
            let ok = self.slow_hash(move || file.verify(&name, &password)).await?;
            return match ok {
                true => self.external_user(username, UserSource::Htpasswd, user).await,
                false => Ok(None),
            };
        }
        if let Some(url) = &self.settings.webhook_url {
            return self.check_webhook(url, username, password).await;
        }
        let password = password.to_string();
        self.slow_hash(move || imagehub_auth::verify_password_of_nobody(&password)).await?;
        Ok(None)
    }

    async fn check_access_token(&self, username: &str, secret: &str) -> Result<Option<Caller>> {
        let Some((token, user)) =
            self.meta.use_access_token(&AccessTokenSecret::hash_of(secret)).await?
        else {
            return Ok(None);
        };
        // The name must match too: a leaked secret alone names no one.
        if user.name != username {
            return Ok(None);
        }
        Ok(Some(user_caller(&user, Credential::AccessToken(token_grant(&token)))))
    }

    async fn check_webhook(
        &self,
        url: &str,
        username: &str,
        password: &str,
    ) -> Result<Option<Caller>> {
        let response = self
            .http
            .post(url)
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .map_err(|e| AccountError::Webhook(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let answer: WebhookAnswer = response
            .json()
            .await
            .map_err(|e| AccountError::Webhook(format!("unreadable answer: {e}")))?;
        let name: AccountName = answer.user.parse().map_err(|_| {
            AccountError::Webhook(format!("it named an invalid user {:?}", answer.user))
        })?;
        tracing::debug!(user = %name, groups = ?answer.groups, "webhook accepted a login");
        let existing = self.meta.user_by_name(name.as_str()).await?;
        self.external_user(name.as_str(), UserSource::Webhook, existing).await
    }

    /// The user an external source vouched for, created on first sight. A source only
    /// speaks for its own users: an htpasswd file or a webhook naming a local account
    /// (`admin`, say) or another source's does not log anyone in as that account.
    async fn external_user(
        &self,
        name: &str,
        source: UserSource,
        existing: Option<UserRow>,
    ) -> Result<Option<Caller>> {
        if let Some(user) = existing {
            if user.source != source {
                tracing::warn!(user = %user.name, source = source.as_str(), account_source = user.source.as_str(), "login refused: the account belongs to another source");
                return Ok(None);
            }
            return Ok(Some(user_caller(&user, Credential::Password)));
        }
        let Ok(name) = name.parse::<AccountName>() else {
            tracing::warn!(
                user = name,
                source = source.as_str(),
                "login refused: not a valid account name"
            );
            return Ok(None);
        };
        let user = self
            .meta
            .create_user(NewUser {
                name: name.as_str(),
                email: None,
                password_hash: None,
                source,
                is_admin: false,
            })
            .await?;
        self.audit(
            Some(name.as_str()),
            AuditAction::UserCreate,
            Some(name.as_str()),
            Some(name.as_str()),
            None,
            Some(serde_json::json!({"source": source.as_str()})),
        )
        .await;
        Ok(Some(user_caller(&user, Credential::Password)))
    }

    /// The caller a verified registry JWT stands for: its `access` claim, within what
    /// its user may still do. Fails when the user is gone, changed their password after
    /// it was issued, or the access token it was issued through was revoked or expired.
    pub async fn caller_from_claims(&self, claims: Arc<Claims>) -> Result<Caller> {
        let Some((user, via)) = self.user_behind(&claims).await? else {
            return Ok(Caller::Anonymous);
        };
        Ok(user_caller(&user, Credential::RegistryToken { claims, via }))
    }

    /// The caller a verified refresh token stands for at the token endpoint.
    pub async fn caller_from_refresh_token(&self, claims: &Claims) -> Result<Caller> {
        let Some((user, via)) = self.user_behind(claims).await? else {
            return Ok(Caller::Anonymous);
        };
        Ok(user_caller(&user, Credential::RefreshToken(via)))
    }

    /// Whether a verified registry JWT is still good: issued after its user last changed
    /// their password, through an access token that is still alive. The registry checks
    /// this on every request, so the user's password epoch is cached for a few seconds
    /// (and dropped at once when this process, or another it hears of, changes it).
    pub async fn registry_token_valid(&self, claims: &Claims) -> Result<bool> {
        if !claims.sub.is_empty() {
            let Some(valid_after) = self.sessions_valid_after(&claims.sub).await? else {
                return Ok(false);
            };
            // `<=`: a token from the very second of a password change is not trusted either.
            if (claims.iat as i64) <= valid_after {
                return Ok(false);
            }
        }
        match claims.tid {
            Some(id) => Ok(self.meta.live_access_token(id).await?.is_some()),
            None => Ok(true),
        }
    }

    /// Another process ended the user's sessions (`replicas.rs`): read the epoch again.
    pub(crate) fn forget_sessions_of(&self, user: &str) {
        self.epochs.forget(user);
    }

    /// Another process may have ended anyone's sessions unheard: read every epoch again.
    pub(crate) fn forget_all_sessions(&self) {
        self.epochs.forget_all();
    }

    async fn sessions_valid_after(&self, user: &str) -> Result<Option<i64>> {
        if let Some(epoch) = self.epochs.get(user) {
            return Ok(epoch);
        }
        let epoch = self.meta.user_by_name(user).await?.map(|u| u.sessions_valid_after);
        self.epochs.insert(user, epoch);
        Ok(epoch)
    }

    /// The user a JWT names (`None` for an anonymous one) and the access token it came
    /// through, if it is still good.
    async fn user_behind(&self, claims: &Claims) -> Result<Option<(UserRow, Option<TokenGrant>)>> {
        if claims.sub.is_empty() {
            return Ok(None);
        }
        let user =
            self.meta.user_by_name(&claims.sub).await?.ok_or(AccountError::Unauthenticated)?;
        if (claims.iat as i64) <= user.sessions_valid_after {
            return Err(AccountError::Unauthenticated);
        }
        let via = match claims.tid {
            Some(id) => Some(token_grant(
                &self.meta.live_access_token(id).await?.ok_or(AccountError::Unauthenticated)?,
            )),
            None => None,
        };
        Ok(Some((user, via)))
    }
}
