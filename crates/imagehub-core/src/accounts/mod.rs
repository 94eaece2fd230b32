//! `Accounts`: who is calling and what their credential grants (this file), logging in
//! (`login.rs`: passwords, access tokens, htpasswd, a webhook, registry tokens), the
//! permission policy applied to stored users, organizations and visibility
//! (`policy.rs`), and the management operations with their rules (`admin.rs`: users,
//! tokens, organizations, repository settings, the audit trail).

mod admin;
mod login;
mod policy;
mod sessions;

pub use sessions::{NewWebSession, SESSION_IDLE, SESSION_MAX_AGE};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imagehub_auth::{Claims, TokenLimits, htpasswd::Htpasswd};
use imagehub_metadata::{
    AccessTokenRow, AuditAction, Metadata, MetadataError, NewUser, UserRow, UserSource,
};
use serde::Deserialize;

use crate::login_limiter::LoginLimiter;
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
    #[error("only site admins may {what}")]
    AdminOnly { what: &'static str },
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
    /// A web UI session opened with the password: acts as the password (its forms carry
    /// a CSRF token the web layer checks).
    Session,
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
            Credential::Password | Credential::Session => None,
            Credential::AccessToken(grant) => Some(grant),
            Credential::RefreshToken(via) | Credential::RegistryToken { via, .. } => via.as_ref(),
        }
    }

    /// The password itself, or a session opened with it.
    pub fn is_password(&self) -> bool {
        matches!(self, Credential::Password | Credential::Session)
    }

    /// Names the credential for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Password => "password",
            Credential::Session => "session",
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
        self.user().is_some_and(|u| u.is_admin && u.credential.is_password())
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
        let limiter = Arc::new(LoginLimiter::new(settings.free_login_failures, meta.clone()));
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
        let created = self
            .meta
            .create_user(NewUser {
                name: "admin",
                email: None,
                password_hash: Some(&hash),
                source: UserSource::Local,
                is_admin: true,
            })
            .await;
        match created {
            Ok(_) => {}
            // Replicas starting together on a new database: another made the admin.
            Err(MetadataError::NameTaken(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.audit(None, AuditAction::UserCreate, Some("admin"), Some("admin"), None, None).await;
        Ok(generated.then_some(password))
    }
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
        limits: TokenLimits { actions: token.actions, namespaces: token.namespaces.clone() },
        expires_at: token.expires_at,
    }
}
