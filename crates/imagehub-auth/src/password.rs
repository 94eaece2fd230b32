//! Passwords: argon2id hashes in PHC string form, and generated passwords.

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;

thread_local! {
    /// The working memory of argon2 (19 MiB with the defaults), kept per thread and
    /// reused: allocating and freeing it on every login left each allocator arena
    /// holding its own copy, and the heap grew with the number of threads that ever
    /// checked a password.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

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

/// Whether `password` matches the stored PHC hash. The comparison is constant-time
/// (`password_hash::Output`'s equality); a malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN * 4 {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::try_from(hash.algorithm), hash.salt, hash.hash)
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = BLOCKS.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory[..blocks],
        )
    });
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

/// Spends the time of one password check (argon2id with the parameters new hashes get)
/// and fails: logins of unknown users cost what a wrong password of a known one does,
/// so timing does not tell which user names exist.
pub fn verify_password_of_nobody(password: &str) -> bool {
    verify_password(password, &nobody_hash());
    false
}

/// A well-formed hash with the parameters of new hashes, which nothing matches.
fn nobody_hash() -> String {
    let (m, t, p) = (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST);
    format!(
        "$argon2id$v=19$m={m},t={t},p={p}$bm9ib2R5LW5vYm9keQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
}

/// A random password of 24 letters and digits (about 142 bits).
pub fn generate_password() -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
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
    fn the_hash_of_nobody_costs_a_real_check() {
        // It must get past every early return of `verify_password` to the hashing itself.
        let phc = nobody_hash();
        let hash = PasswordHash::new(&phc).unwrap();
        let params = Params::try_from(&hash).unwrap();
        assert_eq!(params.block_count(), Params::default().block_count());
        let mut salt = [0u8; 64];
        assert!(hash.salt.unwrap().decode_b64(&mut salt).is_ok());
        assert_eq!(hash.hash.unwrap().len(), 32);
        assert!(!verify_password_of_nobody("anything at all"));
    }

    #[test]
    fn length_is_bounded() {
        assert!(matches!(hash_password("short"), Err(PasswordError::Length)));
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(PasswordError::Length)
        ));
        assert_eq!(generate_password().len(), 24);
        assert_ne!(generate_password(), generate_password());
    }
}
