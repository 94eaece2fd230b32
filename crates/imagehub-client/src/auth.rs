//! Credentials and the registry's auth challenges: anonymous, HTTP Basic, and Docker's
//! token flow (a 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` sends us
//! to the realm for a token for that scope, which is cached until it expires).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who we are to an upstream registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

impl Credentials {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials::Basic { username: username.into(), password: password.into() }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credentials::Anonymous)
    }

    /// Who these credentials are, for keying tokens: a hash, so that no password is
    /// kept beside the token it bought.
    fn identity(&self) -> String {
        match self {
            Credentials::Anonymous => String::new(),
            Credentials::Basic { username, password } => {
                let mut hasher = imagehub_oci::Hasher::new(imagehub_oci::Algorithm::Sha256);
                hasher.update(username.as_bytes());
                hasher.update(b"\0");
                hasher.update(password.as_bytes());
                hasher.finish().hex().to_string()
            }
        }
    }
}

/// Never prints a password, so credentials cannot reach a log through `{:?}`.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses a `WWW-Authenticate` value (`Bearer realm="…",service="…"` or `Basic realm="…"`).
/// Written by hand: it is one scheme and a list of quoted parameters, which no
/// maintained crate parses for the client side.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer {
        realm,
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value, …`, keys lower-cased; quoted values may hold commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// Tokens from registries' realms, by registry, scope and credentials, until they
/// expire: a token bought with one job's credentials never serves another's.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

/// Registry, scope, and the hash of the credentials.
type TokenKey = (String, String, String);

/// A token is used until this share of its lifetime is left, so that it does not
/// expire on the way.
const SAFETY_DIVISOR: u32 = 10;
/// Most tokens kept; the oldest are dropped beyond it.
const MAX_TOKENS: usize = 4096;

impl TokenCache {
    pub fn get(&self, registry: &str, scope: &str, credentials: &Credentials) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let key = (registry.to_string(), scope.to_string(), credentials.identity());
        let (token, until) = tokens.get(&key)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    pub fn put(
        &self,
        registry: &str,
        scope: &str,
        credentials: &Credentials,
        token: String,
        lifetime: Duration,
    ) {
        let until = Instant::now() + lifetime - lifetime / SAFETY_DIVISOR;
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= MAX_TOKENS {
            let now = Instant::now();
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= MAX_TOKENS {
                tokens.clear();
            }
        }
        let key = (registry.to_string(), scope.to_string(), credentials.identity());
        tokens.insert(key, (token, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        assert_eq!(
            parse_challenge(hub),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        let spaced =
            r#"bearer realm="http://h/token", service="s,with,commas", error="insufficient_scope""#;
        assert_eq!(
            parse_challenge(spaced),
            Some(Challenge::Bearer {
                realm: "http://h/token".into(),
                service: Some("s,with,commas".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Bearer service=x"), None, "a realm is needed");
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge(r#"Bearer realm="unterminated"#),
            Some(Challenge::Bearer { realm: "unterminated".into(), service: None, scope: None })
        );
    }

    #[test]
    fn passwords_never_print() {
        let credentials = Credentials::basic("alice", "s3cret");
        assert_eq!(format!("{credentials:?}"), "Basic(alice, <redacted>)");
    }

    #[test]
    fn tokens_expire_early() {
        let cache = TokenCache::default();
        let (alice, anonymous) = (Credentials::basic("alice", "pw"), Credentials::Anonymous);
        cache.put("r", "repository:a:pull", &alice, "t".into(), Duration::from_secs(60));
        assert_eq!(cache.get("r", "repository:a:pull", &alice).as_deref(), Some("t"));
        assert_eq!(cache.get("r", "repository:b:pull", &alice), None);
        assert_eq!(cache.get("r", "repository:a:pull", &anonymous), None, "not another's");
        let wrong = Credentials::basic("alice", "wrong");
        assert_eq!(cache.get("r", "repository:a:pull", &wrong), None, "not a wrong password's");
        cache.put("r", "repository:c:pull", &alice, "old".into(), Duration::ZERO);
        assert_eq!(cache.get("r", "repository:c:pull", &alice), None);
    }
}
