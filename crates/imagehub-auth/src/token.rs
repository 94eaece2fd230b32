//! The registry's bearer tokens: ES256 JWTs in the shape of the distribution token
//! spec (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `access`), signed with a P-256
//! key that is created on first start and kept in the data directory. Refresh tokens
//! are JWTs of the same key marked `"use": "refresh"`, so neither kind passes for the other.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Actions;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading or writing the signing key {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("the signing key {path} is not a P-256 private key in PKCS#8 PEM: {detail}")]
    KeyInvalid { path: String, detail: String },
    #[error("token rejected: {0}")]
    Invalid(String),
}

/// One entry of the `access` claim: what the token allows on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl AccessEntry {
    pub fn repository(name: &str, actions: Actions) -> AccessEntry {
        AccessEntry {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.names().into_iter().map(String::from).collect(),
        }
    }

    pub fn catalog() -> AccessEntry {
        AccessEntry { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }
    }

    /// The actions this entry grants on repository `name`.
    pub fn repository_actions(&self, name: &str) -> Actions {
        if self.kind == "repository" && self.name == name {
            Actions::parse_lenient(&self.actions.join(","))
        } else {
            Actions::NONE
        }
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// Presented as `Authorization: Bearer` to the registry.
    #[default]
    Access,
    /// Traded for a new access token at the token endpoint (OAuth2 `refresh_token`).
    Refresh,
}

/// The claims of a registry token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user name; empty for an anonymous caller.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
    /// The access token the caller logged in with, so revoking it ends this JWT too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    #[serde(rename = "use", default)]
    pub token_use: TokenUse,
}

/// Who a registry token is issued to, and by whom.
#[derive(Debug, Clone)]
pub struct Grantee<'a> {
    /// `iss`: this server.
    pub issuer: &'a str,
    /// `aud`: the service the token is for.
    pub audience: &'a str,
    /// `sub`: the user name; empty for an anonymous caller.
    pub subject: &'a str,
    /// The access token the caller logged in with (its id, and when it expires): the
    /// token names it, so revoking it ends the token, and never outlives it.
    pub via: Option<(i64, Option<u64>)>,
}

impl Claims {
    /// The claims of a new registry token granting `access` from `now` for `ttl_secs`,
    /// cut short to the expiry of the access token it is issued through.
    pub fn access(
        grantee: &Grantee<'_>,
        access: Vec<AccessEntry>,
        now: u64,
        ttl_secs: u64,
    ) -> Claims {
        Claims {
            iss: grantee.issuer.to_string(),
            sub: grantee.subject.to_string(),
            aud: grantee.audience.to_string(),
            exp: expiry(grantee, now, ttl_secs),
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            tid: grantee.via.map(|(id, _)| id),
            token_use: TokenUse::Access,
        }
    }

    /// The claims of the refresh token issued with these access claims: the same login,
    /// no access of its own, living `ttl_secs` (within the access token's life).
    pub fn refresh(&self, grantee: &Grantee<'_>, ttl_secs: u64) -> Claims {
        Claims {
            exp: expiry(grantee, self.iat, ttl_secs),
            jti: uuid::Uuid::new_v4().to_string(),
            access: Vec::new(),
            token_use: TokenUse::Refresh,
            ..self.clone()
        }
    }

    /// The actions granted on repository `name`.
    pub fn repository_actions(&self, name: &str) -> Actions {
        self.access.iter().fold(Actions::NONE, |all, e| all.union(e.repository_actions(name)))
    }

    pub fn grants_catalog(&self) -> bool {
        self.access.iter().any(|e| e.kind == "registry" && e.name == "catalog")
    }
}

/// `now + ttl_secs`, but never past the expiry of the access token behind the login.
fn expiry(grantee: &Grantee<'_>, now: u64, ttl_secs: u64) -> u64 {
    let natural = now.saturating_add(ttl_secs);
    match grantee.via {
        Some((_, Some(token_expires))) => natural.min(token_expires),
        _ => natural,
    }
}

/// The key that signs and verifies tokens.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwk: serde_json::Value,
}

impl SigningKey {
    /// Loads the PEM key at `path`, or creates one there (mode 0600, written to a
    /// temporary file, fsynced and linked into place, so a crash never leaves half a
    /// key, and of replicas starting at once on a shared file, one key wins and all
    /// of them use it).
    pub fn load_or_create(path: &Path) -> Result<SigningKey, TokenError> {
        let file_error = |source| TokenError::KeyFile { path: path.display().to_string(), source };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
                let pem =
                    key.to_pkcs8_pem(LineEnding::LF).map_err(|e| invalid(path, e))?.to_string();
                match write_private(path, pem.as_bytes()) {
                    Ok(()) => pem,
                    // Another process created it first: theirs is the key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read_to_string(path).map_err(file_error)?
                    }
                    Err(e) => return Err(file_error(e)),
                }
            }
            Err(e) => return Err(file_error(e)),
        };
        Self::from_pem(&pem)
            .map_err(|detail| TokenError::KeyInvalid { path: path.display().to_string(), detail })
    }

    /// A key from PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        let public = secret.public_key();
        let public_pem = public.to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let decoding =
            DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(|e| e.to_string())?;
        let jwk: serde_json::Value =
            serde_json::from_str(&public.to_jwk_string()).map_err(|e| e.to_string())?;
        // RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
        let thumbprint_input = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap_or(""),
            jwk["y"].as_str().unwrap_or("")
        );
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let mut jwk = jwk;
        jwk["kid"] = kid.clone().into();
        jwk["alg"] = "ES256".into();
        jwk["use"] = "sig".into();
        Ok(SigningKey { encoding, decoding, kid, jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JSON Web Key Set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and use; returns the claims.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        expected: TokenUse,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(reason(&e).into()))?;
        if data.claims.token_use != expected {
            return Err(TokenError::Invalid(format!(
                "a {:?} token cannot be used here",
                data.claims.token_use
            )));
        }
        Ok(data.claims)
    }
}

/// Why a token was rejected, in words that tell the client what to do and nothing of
/// the parser's internals.
fn reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
            "the token was issued for another registry"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token is not signed with ES256"
        }
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is malformed",
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> TokenError {
    TokenError::KeyInvalid { path: path.display().to_string(), detail: e.to_string() }
}

/// Creates `path` holding `bytes` (mode 0600) unless it exists (`AlreadyExists`): the
/// file appears whole or not at all, and of processes creating it at once (replicas
/// sharing a key file) one wins and the others read its key.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique to this call: threads of one process may be creating the same file too.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{call}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // A link, unlike a rename, never replaces a key another process wrote meanwhile.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        Claims {
            iss: "imagehub".into(),
            sub: "alice".into(),
            aud: "registry".into(),
            exp: now + exp,
            nbf: now,
            iat: now,
            jti: "j1".into(),
            access: vec![AccessEntry::repository("alice/app", Actions::PULL_PUSH)],
            tid: None,
            token_use: TokenUse::Access,
        }
    }

    #[test]
    fn key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.kid(), b.kid());
        let token = a.sign(&claims(300)).unwrap();
        let back = b.verify(&token, "imagehub", "registry", TokenUse::Access).unwrap();
        assert_eq!(back.repository_actions("alice/app"), Actions::PULL_PUSH);
        assert_eq!(back.repository_actions("alice/other"), Actions::NONE);
        assert_eq!(a.jwks()["keys"][0]["kid"], a.kid());
    }

    #[test]
    fn rejects_wrong_audience_issuer_use_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("k.pem")).unwrap();
        let other = SigningKey::load_or_create(&dir.path().join("other.pem")).unwrap();
        let token = key.sign(&claims(300)).unwrap();
        assert!(key.verify(&token, "imagehub", "elsewhere", TokenUse::Access).is_err());
        assert!(key.verify(&token, "someone", "registry", TokenUse::Access).is_err());
        assert!(key.verify(&token, "imagehub", "registry", TokenUse::Refresh).is_err());
        assert!(other.verify(&token, "imagehub", "registry", TokenUse::Access).is_err());
        let mut expired = claims(0);
        expired.exp -= 3600;
        assert!(
            key.verify(&key.sign(&expired).unwrap(), "imagehub", "registry", TokenUse::Access)
                .is_err()
        );
    }

    #[test]
    fn tokens_never_outlive_the_access_token_they_are_issued_through() {
        let mut grantee = Grantee { issuer: "hub", audience: "hub", subject: "alice", via: None };
        let claims = Claims::access(&grantee, Vec::new(), 1000, 300);
        assert_eq!((claims.iat, claims.nbf, claims.exp, claims.tid), (1000, 1000, 1300, None));
        assert_eq!(claims.token_use, TokenUse::Access);
        grantee.via = Some((7, Some(1100)));
        let claims = Claims::access(&grantee, Vec::new(), 1000, 300);
        assert_eq!((claims.exp, claims.tid), (1100, Some(7)));
        let refresh = claims.refresh(&grantee, 86_400);
        assert_eq!(
            (refresh.exp, refresh.token_use, refresh.sub.as_str()),
            (1100, TokenUse::Refresh, "alice")
        );
        assert!(refresh.access.is_empty() && refresh.jti != claims.jti);
    }
}
