//! Access-token secrets: high-entropy random strings shown to the user once and stored
//! as their SHA-256. A slow hash is not needed: nobody can guess 238 random bits, and a
//! fast hash lets every request look the token up by it.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Every access-token secret starts with this, so a login can tell a token from a
/// password without trying both, and secret scanners can spot leaked tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "ihp_";

/// A freshly generated access-token secret.
pub struct AccessTokenSecret {
    /// The secret to hand to the user, once.
    pub secret: String,
    /// What is stored: hex SHA-256 of the secret.
    pub hash: String,
}

impl AccessTokenSecret {
    pub fn generate() -> AccessTokenSecret {
        let random: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let secret = format!("{ACCESS_TOKEN_PREFIX}{random}");
        let hash = Self::hash_of(&secret);
        AccessTokenSecret { secret, hash }
    }

    /// The stored form of a presented secret.
    pub fn hash_of(secret: &str) -> String {
        hex::encode(Sha256::digest(secret.as_bytes()))
    }

    /// Whether a presented password is shaped like an access token.
    pub fn looks_like(candidate: &str) -> bool {
        candidate.len() == ACCESS_TOKEN_PREFIX.len() + 40
            && candidate.starts_with(ACCESS_TOKEN_PREFIX)
            && candidate[ACCESS_TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_recognised_and_hashed() {
        let t = AccessTokenSecret::generate();
        assert!(AccessTokenSecret::looks_like(&t.secret));
        assert_eq!(AccessTokenSecret::hash_of(&t.secret), t.hash);
        assert!(!AccessTokenSecret::looks_like("ihp_short"));
        assert!(!AccessTokenSecret::looks_like("a-password-of-any-kind"));
    }
}
