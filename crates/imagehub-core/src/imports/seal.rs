//! Upstream credentials at rest: sealed with ChaCha20-Poly1305 under a key kept in the
//! data directory (`import.key`, mode 0600, made on first use), so a copy of the
//! database alone reveals no password. Sealed values are a random nonce followed by
//! the ciphertext.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{AeadCore, ChaCha20Poly1305, Key, Nonce};
use imagehub_client::Credentials;
use serde::{Deserialize, Serialize};

use crate::CoreError;

const NONCE_LEN: usize = 12;

/// Seals and opens credentials with the key of one data directory.
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
    pub fn new(data_dir: &Path) -> Sealer {
        Sealer { key_file: data_dir.join("import.key") }
    }

    /// The key, made (with mode 0600, before any byte of it is written) if missing.
    fn cipher(&self) -> Result<ChaCha20Poly1305, CoreError> {
        let key = match std::fs::read(&self.key_file) {
            Ok(key) if key.len() == 32 => key,
            Ok(_) => {
                return Err(internal(format!("{} is not a 32-byte key", self.key_file.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.make_key()?,
            Err(e) => return Err(internal(format!("{}: {e}", self.key_file.display()))),
        };
        Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    fn make_key(&self) -> Result<Vec<u8>, CoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = ChaCha20Poly1305::generate_key(&mut OsRng).to_vec();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.key_file)
            .map_err(|e| internal(format!("creating {}: {e}", self.key_file.display())))?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(|e| internal(format!("writing {}: {e}", self.key_file.display())))?;
        Ok(key)
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
        let sealer = Sealer::new(dir.path());
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
        let other = Sealer::new(other_dir.path());
        assert!(other.open(Some(&sealed)).is_err(), "another key opens nothing");
    }
}
