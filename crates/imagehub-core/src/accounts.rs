//! `Accounts`: logging in (local passwords, access tokens, htpasswd, a webhook), the
//! permission policy applied to stored users, organizations and visibility, and the
//! management operations with their rules (who may do what, an organization keeps an
//! owner, audit events).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imagehub_auth::{
    AccessTokenSecret, Action, Actions, Claims, Role, Standing, TokenLimits, Visibility,
    htpasswd::Htpasswd,
};
use imagehub_metadata::{
    AccessTokenRow, AuditEvent, MemberRow, Metadata, MetadataError, NamespaceKind, NewAccessToken,
    NewAuditEvent, NewUser, OrgRow, RepositoryFilter, UserRow, UserSource,
};
use imagehub_oci::{AccountName, RepoName};
use serde::Deserialize;

use crate::login_limiter::{Counted, LoginLimiter};
use crate::session_epochs::SessionEpochs;

/// Settings of the accounts model (from the server's `auth` config section).
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// Whether callers without credentials may pull public repositories.
    pub anonymous_pull: bool,
    /// Whether anyone may create an account (`auth.signup = "open"`), not only admins.
    pub open_signup: bool,
    /// Failed logins per user before delays start.
    pub free_login_failures: u32,
    pub htpasswd_file: Option<PathBuf>,
    pub webhook_url: Option<String>,
}

impl AccountSettings {
    /// Settings for a server with accounts off, where nobody logs in.
    pub fn open_registry() -> AccountSettings {
        AccountSettings {
            anonymous_pull: true,
            open_signup: false,
            free_login_failures: 0,
            htpasswd_file: None,
            webhook_url: None,
        }
    }
}

/// Why an accounts operation failed, as a situation; each surface maps every variant to
/// its own status and code in one place.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username or password")]
    BadCredentials,
    #[error("too many failed logins; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyAttempts { retry_after: Duration },
    #[error("authentication required")]
    Unauthenticated,
    /// Managing the account needs the password; the caller presented another credential.
    #[error("this needs the password (Basic credentials), not a {presented}")]
    PasswordRequired { presented: &'static str },
    /// A registry or refresh token reads no account: it grants repositories only.
    #[error("a {presented} grants only the repository access it names, not the account")]
    NotAnAccountCredential { presented: &'static str },
    #[error("only site admins create accounts (auth.signup = \"admin\")")]
    SignupClosed,
    /// Only owners of the namespace (and site admins) may do this.
    #[error("only owners of {namespace} may {what}")]
    NotOwner { namespace: String, what: &'static str },
    #[error("the audit log is for site admins and organization owners")]
    AuditClosed,
    #[error("no organization {0:?}")]
    NoSuchOrg(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("no token {0}")]
    NoSuchToken(i64),
    #[error("{user} is not a member of {org}")]
    NotAMember { user: String, org: String },
    #[error("the name {0:?} is already taken")]
    NameTaken(String),
    #[error("an organization must keep at least one owner")]
    LastOwner,
    #[error("the organization still holds {repositories} repositories")]
    OrgNotEmpty { repositories: u64 },
    /// What the caller gave breaks a rule (a name, a password's length, a token's scopes).
    #[error("{0}")]
    InvalidInput(String),
    #[error("the authentication webhook failed: {0}")]
    Webhook(String),
    /// The accounts could not be set up or run (htpasswd file, HTTP client, hashing threads).
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Metadata(MetadataError),
}

impl From<MetadataError> for AccountError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::NameTaken(name) => AccountError::NameTaken(name),
            MetadataError::LastOwner => AccountError::LastOwner,
            MetadataError::OrgNotEmpty { repositories } => {
                AccountError::OrgNotEmpty { repositories }
            }
            e => AccountError::Metadata(e),
        }
    }
}

type Result<T, E = AccountError> = std::result::Result<T, E>;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    User(UserCaller),
}

/// A logged-in user, and the credential that says how far their rights reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCaller {
    pub id: i64,
    pub name: String,
    /// Whether the account is a site admin; the credential decides whether this caller
    /// acts as one (only with the password).
    pub is_admin: bool,
    pub credential: Credential,
}

/// What a caller presented, which bounds what they may do: a credential never grants
/// more than its user may, and only the password manages the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The user's password: everything the user may do, account management included.
    Password,
    /// An access token (`ihp_…`): the user's repository rights narrowed to its scopes
    /// and namespaces; it reads the account but never changes it.
    AccessToken(TokenGrant),
    /// A refresh token from `/token`'s offline grant, only ever accepted there: it
    /// stands for the login it was issued to (narrowed by that login's access token).
    RefreshToken(Option<TokenGrant>),
    /// A registry JWT from `/token`: the repositories and actions of its `access` claim
    /// and nothing else, and never more than its user may still do (`via` is the access
    /// token it was issued through).
    RegistryToken { claims: Arc<Claims>, via: Option<TokenGrant> },
}

impl Credential {
    /// The access token narrowing the user's rights, however it was presented.
    pub fn access_token(&self) -> Option<&TokenGrant> {
        match self {
            Credential::Password => None,
            Credential::AccessToken(grant) => Some(grant),
            Credential::RefreshToken(via) | Credential::RegistryToken { via, .. } => via.as_ref(),
        }
    }

    /// Names the credential for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Password => "password",
            Credential::AccessToken(_) => "access token",
            Credential::RefreshToken(_) => "refresh token",
            Credential::RegistryToken { .. } => "registry token",
        }
    }
}

/// The access token a caller logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub id: i64,
    pub limits: TokenLimits,
    pub expires_at: Option<i64>,
}

/// What a caller may do with one repository, as every surface (`/v2`, `/api/v1`, the
/// UI) must answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The caller may do the action.
    Allowed,
    /// The caller may see the repository but not do the action: 403, or 401 with a
    /// challenge for a registry token.
    Denied,
    /// The caller may not even pull the repository: answer exactly as if it did not
    /// exist, so its existence does not leak.
    Hidden,
}

impl Caller {
    /// Whoever calls a server with accounts off (`auth.enabled = false`). Through `/v2`
    /// anyone may then push, pull and delete anything, so through the API they act as a
    /// site admin too; the account routes are not served then.
    pub fn open_registry() -> Caller {
        Caller::User(UserCaller {
            id: 0,
            name: "anonymous".into(),
            is_admin: true,
            credential: Credential::Password,
        })
    }

    pub fn user(&self) -> Option<&UserCaller> {
        match self {
            Caller::User(u) => Some(u),
            Caller::Anonymous => None,
        }
    }

    /// The user, or `Unauthenticated`.
    pub fn require_user(&self) -> Result<&UserCaller> {
        self.user().ok_or(AccountError::Unauthenticated)
    }

    pub fn name(&self) -> Option<&str> {
        self.user().map(|u| u.name.as_str())
    }

    /// Whether the caller acts as a site admin: an admin account with its password.
    pub fn is_admin(&self) -> bool {
        self.user().is_some_and(|u| u.is_admin && u.credential == Credential::Password)
    }
}

/// An access token as listed to its owner (never the secret).
pub type AccessTokenInfo = AccessTokenRow;

/// A token just created: its row and the secret, shown once.
pub struct CreatedToken {
    pub info: AccessTokenInfo,
    pub secret: String,
}

/// The accounts service; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    meta: Metadata,
    settings: Arc<AccountSettings>,
    limiter: Arc<LoginLimiter>,
    htpasswd: Option<Arc<Htpasswd>>,
    http: reqwest::Client,
    /// Where argon2 and bcrypt run (see `hash_pool`).
    slow_hashes: Arc<crate::hash_pool::HashPool>,
    /// When each user's registry tokens start being valid, cached for the registry.
    epochs: Arc<SessionEpochs>,
}

/// What the webhook answers for an accepted login.
#[derive(Deserialize)]
struct WebhookAnswer {
    user: String,
    #[serde(default)]
    groups: Vec<String>,
}

impl Accounts {
    /// Loads the htpasswd file if one is configured.
    pub fn new(meta: Metadata, settings: AccountSettings) -> Result<Accounts> {
        let htpasswd = match &settings.htpasswd_file {
            Some(path) => Some(Arc::new(
                Htpasswd::load(path).map_err(|e| AccountError::Setup(e.to_string()))?,
            )),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AccountError::Setup(format!("HTTP client for the webhook: {e}")))?;
        let limiter = Arc::new(LoginLimiter::new(settings.free_login_failures));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slow_hashes = Arc::new(crate::hash_pool::HashPool::new(cores));
        let epochs = Arc::new(SessionEpochs::default());
        Ok(Accounts {
            meta,
            settings: Arc::new(settings),
            limiter,
            htpasswd,
            http,
            slow_hashes,
            epochs,
        })
    }

    /// Runs a password hash or check on the hashing threads.
    async fn slow_hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.slow_hashes
            .run(work)
            .await
            .ok_or_else(|| AccountError::Setup("password hashing failed".into()))
    }

    /// An argon2id hash of a new password.
    async fn hash(&self, password: String) -> Result<String> {
        self.slow_hash(move || imagehub_auth::hash_password(&password)).await?.map_err(
            |e| match e {
                imagehub_auth::PasswordError::Length => AccountError::InvalidInput(e.to_string()),
                imagehub_auth::PasswordError::Hash(_) => AccountError::Setup(e.to_string()),
            },
        )
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// On a database without users, creates the site admin `admin` with `password`, or
    /// with a generated one which is returned so it can be shown once.
    pub async fn bootstrap_admin(&self, password: Option<String>) -> Result<Option<String>> {
        if self.meta.count_users().await? > 0 {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = password.unwrap_or_else(imagehub_auth::generate_password);
        let hash = self.hash(password.clone()).await?;
        self.meta
            .create_user(NewUser {
                name: "admin",
                email: None,
                password_hash: Some(&hash),
                source: UserSource::Local,
                is_admin: true,
            })
            .await?;
        self.audit(None, "user.create", Some("admin"), Some("admin"), None, None).await;
        Ok(generated.then_some(password))
    }

    // ---- logging in ----

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
        let throttled = !AccessTokenSecret::looks_like(password);
        if throttled && let Some(retry_after) = self.limiter.wait(username, client) {
            tracing::warn!(user = username, client, "login refused: too many failures");
            return Err(AccountError::TooManyAttempts { retry_after });
        }
        match self.check_credentials(username, password).await {
            Ok(Some(caller)) => {
                if throttled {
                    self.limiter.succeeded(username, client);
                }
                if record {
                    let via = caller.user().map_or("password", |u| u.credential.kind());
                    self.audit(
                        caller.name(),
                        "login",
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
                    && self.limiter.failed(username, client) == Counted::AccountLimitReached
                {
                    tracing::warn!(
                        user = username,
                        client,
                        "password logins to this account are slowed down: failures from many addresses"
                    );
                    self.audit(None, "login.throttled", None, Some(username), Some(client), None)
                        .await;
                }
                tracing::warn!(user = username, client, "login failed");
                self.audit(None, "login.failed", None, Some(username), Some(client), None).await;
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
            if user.source != source.as_str() {
                tracing::warn!(user = %user.name, source = source.as_str(), account_source = %user.source, "login refused: the account belongs to another source");
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
            "user.create",
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
    /// (and dropped at once when this process changes it).
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

    // ---- the policy ----

    /// Whether `caller` may do `action` to `repository`, and if not, whether the answer
    /// must hide that the repository exists.
    pub async fn authorize(
        &self,
        caller: &Caller,
        repository: &RepoName,
        action: Action,
    ) -> Result<Access> {
        let actions = self.repository_actions(caller, repository).await?;
        Ok(if actions.contains(action) {
            Access::Allowed
        } else if actions.contains(Action::Pull) {
            Access::Denied
        } else {
            Access::Hidden
        })
    }

    /// What `caller` may do to `repository`: the policy for where the user stands,
    /// narrowed by the credential they presented.
    pub async fn repository_actions(
        &self,
        caller: &Caller,
        repository: &RepoName,
    ) -> Result<Actions> {
        let rights = self.user_rights(caller, repository).await?;
        Ok(match caller.user().map(|u| &u.credential) {
            Some(Credential::RegistryToken { claims, .. }) => {
                rights.intersect(claims.repository_actions(repository.as_str()))
            }
            _ => rights,
        })
    }

    /// Whether the user behind a registry JWT may pull `repository` at all, whatever the
    /// token was issued for: the registry answers a token that lacks pull on a
    /// repository its user may not see exactly as for a missing one.
    pub async fn may_see(&self, claims: Arc<Claims>, repository: &RepoName) -> Result<bool> {
        let caller = self.caller_from_claims(claims).await?;
        Ok(self.user_rights(&caller, repository).await?.contains(Action::Pull))
    }

    /// The policy's answer for the user, narrowed by an access token (however
    /// presented) but not by a registry token's claim.
    async fn user_rights(&self, caller: &Caller, repository: &RepoName) -> Result<Actions> {
        let namespace = repository.namespace();
        let standing = self.standing(caller, namespace).await?;
        let visibility = self.visibility(repository).await?;
        let allowed =
            imagehub_auth::repository_actions(standing, visibility, self.settings.anonymous_pull);
        Ok(match caller.user().and_then(|u| u.credential.access_token()) {
            Some(grant) => grant.limits.restrict(namespace, allowed),
            None => allowed,
        })
    }

    async fn standing(&self, caller: &Caller, namespace: Option<&str>) -> Result<Standing> {
        let Some(user) = caller.user() else { return Ok(Standing::Anonymous) };
        if user.is_admin {
            return Ok(Standing::SiteAdmin);
        }
        let Some(namespace) = namespace else { return Ok(Standing::Outsider) };
        if namespace == user.name {
            return Ok(Standing::NamespaceOwner);
        }
        Ok(match self.meta.member_role(namespace, user.id).await? {
            Some(role) => Standing::Member(parse_role(&role)?),
            None => Standing::Outsider,
        })
    }

    /// A repository's visibility (its own, else its namespace's default, else private).
    pub async fn visibility_of(&self, repository: &RepoName) -> Result<Visibility> {
        self.visibility(repository).await
    }

    async fn visibility(&self, repository: &RepoName) -> Result<Visibility> {
        let stored =
            self.meta.repository_visibility(repository.as_str(), repository.namespace()).await?;
        stored.parse().map_err(|e: String| AccountError::Metadata(MetadataError::Corrupt(e)))
    }

    /// Which repositories `caller` may see in the catalog; `None` means all of them.
    /// A registry JWT lists its user's repositories only when it grants the catalog
    /// (`registry:catalog:*`); otherwise what an anonymous caller would see.
    pub async fn catalog_filter(&self, caller: &Caller) -> Result<Option<RepositoryFilter>> {
        let anonymous = || {
            Some(RepositoryFilter { public: self.settings.anonymous_pull, ..Default::default() })
        };
        let Some(user) = caller.user() else { return Ok(anonymous()) };
        if let Credential::RegistryToken { claims, .. } = &user.credential
            && !claims.grants_catalog()
        {
            return Ok(anonymous());
        }
        let grant = user.credential.access_token();
        let only_namespaces = grant.and_then(|t| t.limits.namespaces.clone());
        if user.is_admin && only_namespaces.is_none() {
            return Ok(None);
        }
        let mut namespaces = vec![user.name.clone()];
        if user.is_admin {
            namespaces.extend(only_namespaces.iter().flatten().cloned());
        } else {
            namespaces
                .extend(self.meta.orgs(Some(user.id)).await?.into_iter().map(|(org, _)| org.name));
        }
        let pulls = grant.is_none_or(|t| t.limits.actions.contains(Action::Pull));
        if !pulls {
            return Ok(Some(RepositoryFilter {
                public: false,
                namespaces: Vec::new(),
                only_namespaces: Some(Vec::new()),
            }));
        }
        Ok(Some(RepositoryFilter { public: true, namespaces, only_namespaces }))
    }

    // ---- users ----

    /// Creates a local user: by an admin, or by anyone when sign-up is open.
    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<UserRow> {
        if !caller.is_admin() && !self.settings.open_signup {
            return Err(AccountError::SignupClosed);
        }
        let name: AccountName = name
            .parse()
            .map_err(|e: imagehub_oci::NameError| AccountError::InvalidInput(e.to_string()))?;
        let hash = self.hash(password.to_string()).await?;
        let user = self
            .meta
            .create_user(NewUser {
                name: name.as_str(),
                email,
                password_hash: Some(&hash),
                source: UserSource::Local,
                is_admin: false,
            })
            .await?;
        self.audit(
            caller.name(),
            "user.create",
            Some(name.as_str()),
            Some(name.as_str()),
            None,
            None,
        )
        .await;
        Ok(user)
    }

    /// The caller's account; a registry token, which grants only repositories, does
    /// not read it.
    pub async fn user(&self, caller: &Caller) -> Result<UserRow> {
        let me = self.account_reader(caller)?;
        self.meta.user_by_name(&me.name).await?.ok_or(AccountError::Unauthenticated)
    }

    /// Changes the caller's password or email; only with the password itself, so a
    /// leaked token cannot take the account over.
    pub async fn update_user(
        &self,
        caller: &Caller,
        password: Option<&str>,
        email: Option<Option<&str>>,
    ) -> Result<UserRow> {
        let me = self.password_user(caller)?;
        if let Some(password) = password {
            let hash = self.hash(password.to_string()).await?;
            self.meta.set_password_hash(me.id, &hash).await?;
            // Registry tokens issued before now stop working here at once; other
            // replicas drop their cached epoch within `EPOCH_TTL`.
            self.epochs.forget(&me.name);
            self.audit(Some(&me.name), "user.password", Some(&me.name), Some(&me.name), None, None)
                .await;
        }
        if let Some(email) = email {
            self.meta.set_email(me.id, email).await?;
        }
        self.user(caller).await
    }

    // ---- access tokens ----

    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        actions: Actions,
        namespaces: Option<Vec<String>>,
        expires_at: Option<i64>,
    ) -> Result<CreatedToken> {
        let me = self.password_user(caller)?;
        if name.trim().is_empty() || name.len() > 100 {
            return Err(AccountError::InvalidInput(
                "a token needs a name of 1 to 100 characters".into(),
            ));
        }
        if actions.is_empty() {
            return Err(AccountError::InvalidInput(
                "a token needs at least one scope: pull, push, delete".into(),
            ));
        }
        if expires_at
            .is_some_and(|at| at <= imagehub_metadata::unix_seconds(std::time::SystemTime::now()))
        {
            return Err(AccountError::InvalidInput("expires_at is in the past".into()));
        }
        if let Some(list) = &namespaces {
            for ns in list {
                ns.parse::<AccountName>().map_err(|e| AccountError::InvalidInput(e.to_string()))?;
            }
        }
        let secret = AccessTokenSecret::generate();
        let info = self
            .meta
            .create_access_token(NewAccessToken {
                user_id: me.id,
                name,
                secret_hash: &secret.hash,
                actions: &actions.to_string(),
                namespaces: namespaces.as_deref(),
                expires_at,
            })
            .await?;
        self.audit(
            Some(&me.name),
            "token.create",
            Some(&me.name),
            Some(name),
            None,
            Some(serde_json::json!({"id": info.id, "scopes": actions.names()})),
        )
        .await;
        Ok(CreatedToken { info, secret: secret.secret })
    }

    pub async fn tokens(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>> {
        let me = self.account_reader(caller)?;
        Ok(self.meta.access_tokens(me.id).await?)
    }

    pub async fn revoke_token(&self, caller: &Caller, id: i64) -> Result<()> {
        let me = self.password_user(caller)?;
        let name =
            self.meta.delete_access_token(me.id, id).await?.ok_or(AccountError::NoSuchToken(id))?;
        self.audit(
            Some(&me.name),
            "token.revoke",
            Some(&me.name),
            Some(&name),
            None,
            Some(serde_json::json!({"id": id})),
        )
        .await;
        Ok(())
    }

    /// Managing the account (credentials, email, organizations, settings) needs the
    /// user's own password, so a leaked token cannot mint more or lock the user out.
    fn password_user<'a>(&self, caller: &'a Caller) -> Result<&'a UserCaller> {
        let me = caller.require_user()?;
        if me.credential != Credential::Password {
            return Err(AccountError::PasswordRequired { presented: me.credential.kind() });
        }
        Ok(me)
    }

    /// Reading the account (profile, tokens, organizations) needs the password or an
    /// access token; a registry token grants only the repositories it names.
    fn account_reader<'a>(&self, caller: &'a Caller) -> Result<&'a UserCaller> {
        let me = caller.require_user()?;
        match me.credential {
            Credential::Password | Credential::AccessToken(_) => Ok(me),
            Credential::RefreshToken(_) | Credential::RegistryToken { .. } => {
                Err(AccountError::NotAnAccountCredential { presented: me.credential.kind() })
            }
        }
    }

    // ---- organizations ----

    pub async fn create_org(
        &self,
        caller: &Caller,
        name: &str,
        visibility: Visibility,
        description: &str,
    ) -> Result<OrgRow> {
        let me = self.password_user(caller)?;
        let name: AccountName = name
            .parse()
            .map_err(|e: imagehub_oci::NameError| AccountError::InvalidInput(e.to_string()))?;
        let org =
            self.meta.create_org(name.as_str(), me.id, visibility.as_str(), description).await?;
        self.audit(
            Some(&me.name),
            "org.create",
            Some(name.as_str()),
            Some(name.as_str()),
            None,
            None,
        )
        .await;
        Ok(org)
    }

    /// The organizations the caller belongs to (all of them for a site admin), with roles.
    pub async fn orgs(&self, caller: &Caller) -> Result<Vec<(OrgRow, Option<Role>)>> {
        let me = self.account_reader(caller)?;
        let orgs = self.meta.orgs(if caller.is_admin() { None } else { Some(me.id) }).await?;
        orgs.into_iter()
            .map(|(org, role)| Ok((org, role.as_deref().map(parse_role).transpose()?)))
            .collect()
    }

    /// An organization and the caller's role in it. Members and admins see it; for
    /// anyone else it does not exist.
    pub async fn org(&self, caller: &Caller, name: &str) -> Result<(OrgRow, Option<Role>)> {
        let not_found = || AccountError::NoSuchOrg(name.to_string());
        self.account_reader(caller)?;
        let org = self.meta.org(name).await?.ok_or_else(not_found)?;
        let role = self.role_in(caller, name).await?;
        if role.is_none() && !caller.is_admin() {
            return Err(not_found());
        }
        Ok((org, role))
    }

    async fn role_in(&self, caller: &Caller, org: &str) -> Result<Option<Role>> {
        let Some(user) = caller.user() else { return Ok(None) };
        self.meta.member_role(org, user.id).await?.map(|r| parse_role(&r)).transpose()
    }

    /// Fails unless the caller owns the organization or is a site admin.
    async fn require_owner(&self, caller: &Caller, org: &str) -> Result<()> {
        let (_, role) = self.org(caller, org).await?;
        self.password_user(caller)?;
        if role == Some(Role::Owner) || caller.is_admin() {
            Ok(())
        } else {
            Err(AccountError::NotOwner { namespace: org.to_string(), what: "do that" })
        }
    }

    pub async fn update_org(
        &self,
        caller: &Caller,
        org: &str,
        visibility: Option<Visibility>,
        description: Option<&str>,
    ) -> Result<OrgRow> {
        self.require_owner(caller, org).await?;
        self.meta.update_org(org, visibility.map(Visibility::as_str), description).await?;
        self.audit(caller.name(), "org.update", Some(org), Some(org), None, Some(serde_json::json!({"default_visibility": visibility.map(Visibility::as_str), "description": description})))
            .await;
        Ok(self.org(caller, org).await?.0)
    }

    pub async fn delete_org(&self, caller: &Caller, org: &str) -> Result<()> {
        self.require_owner(caller, org).await?;
        self.meta.delete_org(org).await?;
        self.audit(caller.name(), "org.delete", Some(org), Some(org), None, None).await;
        Ok(())
    }

    pub async fn members(&self, caller: &Caller, org: &str) -> Result<Vec<MemberRow>> {
        self.org(caller, org).await?;
        Ok(self.meta.members(org).await?)
    }

    pub async fn set_member(
        &self,
        caller: &Caller,
        org: &str,
        user: &str,
        role: Role,
    ) -> Result<()> {
        self.require_owner(caller, org).await?;
        let member = self
            .meta
            .user_by_name(user)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.to_string()))?;
        self.meta.set_member(org, member.id, role.as_str()).await?;
        self.audit(
            caller.name(),
            "member.set",
            Some(org),
            Some(user),
            None,
            Some(serde_json::json!({"role": role.as_str()})),
        )
        .await;
        Ok(())
    }

    pub async fn remove_member(&self, caller: &Caller, org: &str, user: &str) -> Result<()> {
        self.require_owner(caller, org).await?;
        let member = self
            .meta
            .user_by_name(user)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.to_string()))?;
        if !self.meta.remove_member(org, member.id).await? {
            return Err(AccountError::NotAMember { user: user.to_string(), org: org.to_string() });
        }
        self.audit(caller.name(), "member.remove", Some(org), Some(user), None, None).await;
        Ok(())
    }

    /// Fails unless `caller` may change the settings of `repository` (visibility,
    /// description); changes nothing, so a batch can check every change first.
    pub async fn check_repository_settings(
        &self,
        caller: &Caller,
        repository: &RepoName,
    ) -> Result<()> {
        self.require_repository_owner(caller, repository).await.map(|_| ())
    }

    /// Fails unless `caller` may create the organization `name` (the name is free and
    /// they logged in with the password) or change it (they own it); changes nothing.
    pub async fn check_org_change(&self, caller: &Caller, name: &str) -> Result<()> {
        match self.meta.namespace_kind(name).await? {
            Some(NamespaceKind::Org) => self.require_owner(caller, name).await,
            Some(NamespaceKind::User) => Err(AccountError::NameTaken(name.to_string())),
            None => self.password_user(caller).map(|_| ()),
        }
    }

    /// Sets a repository's visibility: owners of its organization, the user whose
    /// namespace it is, or site admins.
    pub async fn set_visibility(
        &self,
        caller: &Caller,
        repository: &RepoName,
        visibility: Visibility,
    ) -> Result<()> {
        let (me, namespace) = self.require_repository_owner(caller, repository).await?;
        self.meta.set_repository_visibility(repository.as_str(), visibility.as_str()).await?;
        self.audit(
            Some(&me.name),
            "repository.visibility",
            Some(namespace),
            Some(repository.as_str()),
            None,
            Some(serde_json::json!({"visibility": visibility.as_str()})),
        )
        .await;
        Ok(())
    }

    /// Sets (or with `None`, clears) a repository's own description; same rights as visibility.
    pub async fn set_repository_description(
        &self,
        caller: &Caller,
        repository: &RepoName,
        description: Option<&str>,
    ) -> Result<()> {
        if description.is_some_and(|d| d.chars().count() > 1000) {
            return Err(AccountError::InvalidInput("description: at most 1000 characters".into()));
        }
        let (me, namespace) = self.require_repository_owner(caller, repository).await?;
        self.meta.set_repository_description(repository.as_str(), description).await?;
        self.audit(
            Some(&me.name),
            "repository.description",
            Some(namespace),
            Some(repository.as_str()),
            None,
            None,
        )
        .await;
        Ok(())
    }

    /// A repository's own description.
    pub async fn repository_description(&self, repository: &RepoName) -> Result<Option<String>> {
        Ok(self.meta.repository_description(repository.as_str()).await?)
    }

    /// Fails unless the caller, logged in with the password, owns the repository's
    /// namespace (its user, an owner of its organization) or is a site admin.
    async fn require_repository_owner<'a, 'r>(
        &self,
        caller: &'a Caller,
        repository: &'r RepoName,
    ) -> Result<(&'a UserCaller, &'r str)> {
        let namespace = repository.namespace().ok_or_else(|| {
            AccountError::InvalidInput("top-level repositories belong to no namespace".into())
        })?;
        let me = self.password_user(caller)?;
        let allowed = match self.meta.namespace_kind(namespace).await? {
            _ if me.is_admin => true,
            Some(NamespaceKind::User) => namespace == me.name,
            Some(NamespaceKind::Org) => self.role_in(caller, namespace).await? == Some(Role::Owner),
            None => false,
        };
        if !allowed {
            return Err(AccountError::NotOwner {
                namespace: namespace.to_string(),
                what: "change the settings of its repositories",
            });
        }
        Ok((me, namespace))
    }

    // ---- audit ----

    /// Records an event; a failure to record is logged, never fails the operation.
    pub async fn audit(
        &self,
        actor: Option<&str>,
        action: &str,
        namespace: Option<&str>,
        target: Option<&str>,
        client: Option<&str>,
        detail: Option<serde_json::Value>,
    ) {
        let event = NewAuditEvent { actor, action, namespace, target, client, detail };
        if let Err(e) = self.meta.record_audit(event).await {
            tracing::error!(error = %e, action, "could not record an audit event");
        }
    }

    /// Audit events for the caller: all for site admins, those of the organizations
    /// they own otherwise.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let me = self.password_user(caller)?;
        if me.is_admin {
            return Ok(self.meta.audit_events(None, before, limit).await?);
        }
        let owned: Vec<String> = self
            .meta
            .orgs(Some(me.id))
            .await?
            .into_iter()
            .filter(|(_, role)| role.as_deref() == Some("owner"))
            .map(|(org, _)| org.name)
            .collect();
        if owned.is_empty() {
            return Err(AccountError::AuditClosed);
        }
        Ok(self.meta.audit_events(Some(&owned), before, limit).await?)
    }
}

fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(|e: String| AccountError::Metadata(MetadataError::Corrupt(e)))
}

fn user_caller(user: &UserRow, credential: Credential) -> Caller {
    Caller::User(UserCaller {
        id: user.id,
        name: user.name.clone(),
        is_admin: user.is_admin,
        credential,
    })
}

fn token_grant(token: &AccessTokenRow) -> TokenGrant {
    TokenGrant {
        id: token.id,
        limits: TokenLimits {
            actions: Actions::parse_lenient(&token.actions),
            namespaces: token.namespaces.clone(),
        },
        expires_at: token.expires_at,
    }
}
