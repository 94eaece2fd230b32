//! Passwords: argon2id hashes in PHC string form, and generated passwords.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;

/// Shortest password accepted for a local account.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: argon2 would take any length, but a bound keeps a
/// request from making the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long")]
    Length,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, which is
/// OWASP's recommendation). Slow on purpose; call it off the async executor.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.chars().count()) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC hash. The comparison inside the argon2
/// crate is constant-time; a malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN * 4 {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A random password of 24 letters and digits (about 142 bits).
pub fn generate_password() -> String {
    rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(24).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn length_is_bounded() {
        assert!(matches!(hash_password("short"), Err(PasswordError::Length)));
        assert!(matches!(hash_password(&"x".repeat(MAX_PASSWORD_LEN + 1)), Err(PasswordError::Length)));
        assert_eq!(generate_password().len(), 24);
        assert_ne!(generate_password(), generate_password());
    }
}
