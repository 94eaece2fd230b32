//! Authentication at the HTTP edge: credentials read off requests (Basic, bearer JWT,
//! bearer access token), the caller's address for login throttling, the public URL of
//! the token realm, challenges, and what an identity may do to a repository.

pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use imagehub_auth::{
    AccessTokenSecret, Action, Actions, Challenge, Claims, Scope, SigningKey, TokenUse,
};
use imagehub_core::{Access, AccountError, Accounts, Caller};
use imagehub_oci::{OciErrorCode, RepoName};

use crate::config::{AuthConfig, ServerConfig};
use crate::error::{ApiError, EdgeError};
use crate::listener::ClientAddr;

/// Everything the edge needs to authenticate and authorize; absent when
/// `auth.enabled = false`.
pub struct Auth {
    pub accounts: Accounts,
    pub key: SigningKey,
    pub config: AuthConfig,
    public_url: Option<String>,
    trust_proxy_headers: bool,
    tls: bool,
    verified: VerifiedTokens,
}

/// Registry JWTs whose signature and claims were already checked, by their exact text.
/// A client sends the same token on every request of a pull or push, and an ES256
/// verification costs far more than serving a manifest; the same text verifies the same
/// way, so only the expiry needs checking again.
#[derive(Default)]
struct VerifiedTokens {
    claims: Mutex<HashMap<String, Arc<Claims>>>,
}

/// Enough for every client active within a token's lifetime on a busy registry; a full
/// map first drops expired tokens, then starts over.
const MAX_VERIFIED_TOKENS: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<Arc<Claims>> {
        let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner()).get(token).cloned()?;
        (claims.exp > unix_now()).then_some(claims)
    }

    fn insert(&self, token: &str, claims: Arc<Claims>) {
        let mut map = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_VERIFIED_TOKENS {
            let now = unix_now();
            map.retain(|_, c| c.exp > now);
            if map.len() >= MAX_VERIFIED_TOKENS {
                map.clear();
            }
        }
        map.insert(token.to_string(), claims);
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Credentials as sent.
pub enum Credentials {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Credentials {
    /// Reads `Authorization`; a header that is present but unreadable is an error, so a
    /// client with broken credentials is told so rather than treated as anonymous.
    pub fn from_headers(headers: &HeaderMap) -> Result<Credentials, CredentialError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Credentials::None) };
        let malformed = || CredentialError::Malformed;
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let decoded = STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
                let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
                let (user, password) = decoded.split_once(':').ok_or_else(malformed)?;
                Ok(Credentials::Basic { user: user.to_string(), password: password.to_string() })
            }
            "bearer" => Ok(Credentials::Bearer(rest.trim().to_string())),
            _ => Err(malformed()),
        }
    }
}

/// Why a request's credentials were refused; each surface answers it in its own shape.
#[derive(Debug)]
pub enum CredentialError {
    /// `Authorization` is present but unreadable.
    Malformed,
    /// A registry JWT that does not verify, has expired, or was issued before its user's
    /// last password change or through an access token since revoked.
    BadToken(String),
    /// The accounts refused the login (wrong password, throttled) or failed.
    Account(AccountError),
}

impl From<AccountError> for CredentialError {
    fn from(e: AccountError) -> Self {
        CredentialError::Account(e)
    }
}

/// Who a request comes from. A registry JWT is checked without reading the user's
/// rights, so the registry's hot path stays off the database.
pub enum Identity {
    Anonymous,
    /// A verified registry JWT: its `access` claim says what it may do.
    Token(Arc<Claims>),
    /// Basic credentials or an access token checked against the accounts.
    Caller(Caller),
}

impl Identity {
    /// No credentials, or a registry JWT issued to nobody: refusals send such callers
    /// the challenge that leads them to log in.
    pub fn is_anonymous(&self) -> bool {
        match self {
            Identity::Anonymous => true,
            Identity::Token(claims) => claims.sub.is_empty(),
            Identity::Caller(_) => false,
        }
    }

    /// The user name, for the audit log.
    pub fn actor(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::Token(claims) => Some(claims.sub.as_str()).filter(|s| !s.is_empty()),
            Identity::Caller(caller) => caller.name(),
        }
    }
}

impl Auth {
    pub fn new(
        accounts: Accounts,
        key: SigningKey,
        config: AuthConfig,
        server: &ServerConfig,
    ) -> Auth {
        let public_url =
            Some(server.public_url.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        Auth {
            accounts,
            key,
            config,
            public_url,
            trust_proxy_headers: server.trust_proxy_headers,
            tls: server.tls_cert.is_some(),
            verified: VerifiedTokens::default(),
        }
    }

    /// The address login throttling counts failures against.
    pub fn client_address(&self, parts: &Parts) -> String {
        if self.trust_proxy_headers
            && let Some(forwarded) =
                header_str(&parts.headers, "x-forwarded-for").and_then(|v| v.split(',').next())
        {
            return forwarded.trim().to_string();
        }
        parts
            .extensions
            .get::<ClientAddr>()
            .map_or_else(|| "unknown".to_string(), |a| a.0.ip().to_string())
    }

    /// The URL clients reach this server at: config, else the proxy's or the client's view.
    pub fn public_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let forwarded = |name| header_str(headers, name).filter(|_| self.trust_proxy_headers);
        let scheme = match forwarded("x-forwarded-proto") {
            Some(p) if p == "https" || p == "http" => p.to_string(),
            _ if self.tls => "https".to_string(),
            _ => "http".to_string(),
        };
        // A proxy chain may list several hosts; the first is what the client asked for.
        let forwarded_host =
            forwarded("x-forwarded-host").and_then(|h| h.split(',').next()).map(str::trim);
        let host = forwarded_host
            .filter(|h| is_valid_host(h))
            .or_else(|| header_str(headers, "host").filter(|h| is_valid_host(h)))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }

    /// A 401 telling the client where to get a token for `scope`.
    pub fn challenge(
        &self,
        headers: &HeaderMap,
        scope: Option<Scope>,
        insufficient: bool,
    ) -> ApiError {
        let realm = format!("{}/token", self.public_url(headers));
        let challenge = Challenge {
            realm: &realm,
            service: &self.config.service,
            scope: scope.clone(),
            insufficient_scope: insufficient,
        };
        let detail = scope.map(|s| match s {
            Scope::Repository { name, actions } => serde_json::json!([{"Type": "repository", "Name": name.as_str(), "Action": actions.to_string()}]),
            Scope::Catalog => serde_json::json!([{"Type": "registry", "Name": "catalog", "Action": "*"}]),
        });
        let error = ApiError::new(OciErrorCode::Unauthorized)
            .header(header::WWW_AUTHENTICATE, challenge.to_string());
        match detail {
            Some(detail) => error.detail(detail),
            None => error,
        }
    }

    /// Reads and checks the request's credentials: the one way every surface turns them
    /// into an identity.
    pub async fn identify(&self, parts: &Parts) -> Result<Identity, CredentialError> {
        match Credentials::from_headers(&parts.headers)? {
            Credentials::None => Ok(Identity::Anonymous),
            Credentials::Basic { user, password } => {
                let client = self.client_address(parts);
                Ok(Identity::Caller(self.accounts.login(&user, &password, &client, false).await?))
            }
            Credentials::Bearer(token) if AccessTokenSecret::looks_like(&token) => {
                Ok(Identity::Caller(self.accounts.login_with_token(&token).await?))
            }
            Credentials::Bearer(token) => {
                let claims = self
                    .verify_access_token(&token)
                    .map_err(|e| CredentialError::BadToken(e.to_string()))?;
                if !self.accounts.registry_token_valid(&claims).await? {
                    let why = "token rejected: issued before its user's last password change, or through an access token since revoked";
                    return Err(CredentialError::BadToken(why.into()));
                }
                Ok(Identity::Token(claims))
            }
        }
    }

    /// The caller behind an identity, with what its credential grants.
    pub async fn caller(&self, identity: &Identity) -> Result<Caller, AccountError> {
        match identity {
            Identity::Anonymous => Ok(Caller::Anonymous),
            Identity::Caller(caller) => Ok(caller.clone()),
            Identity::Token(claims) => self.accounts.caller_from_claims(claims.clone()).await,
        }
    }

    /// The `/v2` answer to refused credentials: 400 for a malformed header, the
    /// challenge for bad credentials, 429 with `Retry-After` when throttled.
    pub fn refusal(&self, headers: &HeaderMap, e: CredentialError) -> ApiError {
        match e {
            CredentialError::Malformed => EdgeError::MalformedAuthorization.into(),
            CredentialError::BadToken(why) => self.challenge(headers, None, false).message(why),
            CredentialError::Account(e) => self.login_error(headers, e),
        }
    }

    /// Verifies a registry JWT presented as a bearer token, once per token text.
    pub fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<Arc<Claims>, imagehub_auth::TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.key.verify(
            token,
            &self.config.issuer,
            &self.config.service,
            TokenUse::Access,
        )?);
        self.verified.insert(token, claims.clone());
        Ok(claims)
    }

    /// Whether `identity` may do `action` to `repository`. A registry JWT answers from its
    /// claim, without reading the database, unless it lacks the action: then its user's
    /// own rights decide whether the repository is hidden from them or merely denied.
    pub async fn authorize(
        &self,
        identity: &Identity,
        repository: &RepoName,
        action: Action,
    ) -> Result<Access, AccountError> {
        match identity {
            Identity::Token(claims)
                if claims.repository_actions(repository.as_str()).contains(action) =>
            {
                Ok(Access::Allowed)
            }
            Identity::Token(claims) if claims.sub.is_empty() || action != Action::Pull => {
                Ok(Access::Denied)
            }
            Identity::Token(claims) => {
                match self.accounts.may_see(claims.clone(), repository).await? {
                    true => Ok(Access::Denied),
                    false => Ok(Access::Hidden),
                }
            }
            Identity::Anonymous => {
                self.accounts.authorize(&Caller::Anonymous, repository, action).await
            }
            Identity::Caller(caller) => self.accounts.authorize(caller, repository, action).await,
        }
    }

    /// What `identity` may do to `repository`; a registry JWT answers from its claim.
    pub async fn repository_actions(
        &self,
        identity: &Identity,
        repository: &RepoName,
    ) -> Result<Actions, ApiError> {
        match identity {
            Identity::Token(claims) => Ok(claims.repository_actions(repository.as_str())),
            Identity::Anonymous => self
                .accounts
                .repository_actions(&Caller::Anonymous, repository)
                .await
                .map_err(|e| account_error(&e)),
            Identity::Caller(caller) => self
                .accounts
                .repository_actions(caller, repository)
                .await
                .map_err(|e| account_error(&e)),
        }
    }

    /// The answer to a failed login: 401 with a challenge, or 429 with `Retry-After`.
    pub fn login_error(&self, headers: &HeaderMap, e: AccountError) -> ApiError {
        match e {
            AccountError::BadCredentials | AccountError::Unauthenticated => {
                self.challenge(headers, None, false).message(e.to_string())
            }
            e => account_error(&e),
        }
    }
}

/// Maps an accounts error onto the OCI error shape.
pub fn account_error(e: &AccountError) -> ApiError {
    ApiError::from(e)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// A `Host` value that can go into a URL and a quoted challenge: letters, digits, dots,
/// dashes, a port, or a bracketed IPv6 address.
fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// Shared by the routers that need it.
pub type AuthState = Option<Arc<Auth>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_are_checked() {
        assert!(is_valid_host("registry.example.com:5000"));
        assert!(is_valid_host("[::1]:5000"));
        assert!(!is_valid_host("evil\"host"));
        assert!(!is_valid_host("a b"));
        assert!(!is_valid_host(""));
    }

    #[test]
    fn basic_and_bearer_credentials() {
        let mut headers = HeaderMap::new();
        headers
            .insert(header::AUTHORIZATION, "Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM=".parse().unwrap());
        assert!(
            matches!(Credentials::from_headers(&headers), Ok(Credentials::Basic { user, password }) if user == "alice" && password == "pw:with:colons")
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc.def.ghi".parse().unwrap());
        assert!(
            matches!(Credentials::from_headers(&headers), Ok(Credentials::Bearer(t)) if t == "abc.def.ghi")
        );
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(Credentials::from_headers(&headers).is_err());
    }
}
