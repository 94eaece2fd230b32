//! Upstream credentials at rest: sealed with ChaCha20-Poly1305 under a key kept in a
//! file (`import.key` in the data directory unless `import.sealing_key_file` names one
//! all replicas share; mode 0600, made on first use), so a copy of the database alone
//! reveals no password. Sealed values are a random nonce followed by the ciphertext.

use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{AeadCore, ChaCha20Poly1305, Key, Nonce};
use imagehub_client::Credentials;
use serde::{Deserialize, Serialize};

use crate::CoreError;

const NONCE_LEN: usize = 12;

/// Seals and opens credentials with the key in one file.
#[derive(Clone)]
pub struct Sealer {
    key_file: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    username: String,
    password: String,
}

impl Sealer {
    pub fn new(key_file: PathBuf) -> Sealer {
        Sealer { key_file }
    }

    /// The key, made (with mode 0600, before any byte of it is written) if missing.
    fn cipher(&self) -> Result<ChaCha20Poly1305, CoreError> {
        let key = match std::fs::read(&self.key_file) {
            Ok(key) if key.len() == 32 => key,
            Ok(_) => {
                return Err(internal(format!("{} is not a 32-byte key", self.key_file.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng).to_vec();
                match imagehub_auth::write_private(&self.key_file, &key) {
                    Ok(()) => key,
                    // Another process (a replica) made it first: theirs is the key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return self.cipher();
                    }
                    Err(e) => {
                        return Err(internal(format!("creating {}: {e}", self.key_file.display())));
                    }
                }
            }
            Err(e) => return Err(internal(format!("{}: {e}", self.key_file.display()))),
        };
        Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    /// `None` for anonymous credentials: nothing is stored.
    pub fn seal(&self, credentials: &Credentials) -> Result<Option<Vec<u8>>, CoreError> {
        let Credentials::Basic { username, password } = credentials else { return Ok(None) };
        let plain =
            serde_json::to_vec(&Stored { username: username.clone(), password: password.clone() })
                .map_err(internal)?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()?
            .encrypt(&nonce, plain.as_slice())
            .map_err(|_| internal("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(Some(out))
    }

    pub fn open(&self, sealed: Option<&[u8]>) -> Result<Credentials, CoreError> {
        let Some(sealed) = sealed else { return Ok(Credentials::Anonymous) };
        if sealed.len() < NONCE_LEN {
            return Err(internal("sealed credentials are too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher()?
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| internal("the stored credentials do not open with import.key"))?;
        let stored: Stored = serde_json::from_slice(&plain).map_err(internal)?;
        Ok(Credentials::basic(stored.username, stored.password))
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_are_not_readable_sealed() {
        let dir = tempfile::tempdir().expect("dir");
        let sealer = Sealer::new(dir.path().join("import.key"));
        let credentials = Credentials::basic("alice", "s3cret-password");
        let sealed = sealer.seal(&credentials).expect("seal").expect("something stored");
        assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"), "no plain text");
        assert_eq!(sealer.open(Some(&sealed)).expect("open"), credentials);
        assert_eq!(sealer.seal(&Credentials::Anonymous).expect("seal"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(dir.path().join("import.key")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert!(sealer.open(Some(&tampered)).is_err(), "tampering is detected");
        let other_dir = tempfile::tempdir().expect("dir");
        let other = Sealer::new(other_dir.path().join("import.key"));
        assert!(other.open(Some(&sealed)).is_err(), "another key opens nothing");
    }

    /// Replicas sharing one key file, starting at once: one makes the key, all use it.
    #[test]
    fn sealers_sharing_a_key_file_agree_when_they_make_it_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("shared.key");
        let credentials = Credentials::basic("bob", "hunter2-password");
        let sealed: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let sealers = (0..8).map(|_| {
                let sealer = Sealer::new(file.clone());
                let credentials = credentials.clone();
                scope.spawn(move || sealer.seal(&credentials).expect("seal").expect("sealed"))
            });
            sealers.collect::<Vec<_>>().into_iter().map(|t| t.join().expect("thread")).collect()
        });
        let reader = Sealer::new(file);
        for value in &sealed {
            assert_eq!(reader.open(Some(value)).expect("open"), credentials);
        }
    }
}
