//! htpasswd files with bcrypt entries (`htpasswd -B`), as distribution's htpasswd
//! backend reads them. Other hash kinds (MD5, SHA-1, crypt) are refused at load time:
//! they are too weak to accept silently.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} line {line}: {problem}")]
    Line { path: String, line: usize, problem: String },
}

/// The parsed file: user name → bcrypt hash.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    entries: HashMap<String, String>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| HtpasswdError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|(line, problem)| HtpasswdError::Line {
            path: path.display().to_string(),
            line,
            problem,
        })
    }

    /// Parses file contents; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Htpasswd, (usize, String)> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) =
                line.split_once(':').ok_or((i + 1, "expected user:hash".to_string()))?;
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err((
                    i + 1,
                    format!("the entry for {user:?} is not bcrypt (create it with htpasswd -B)"),
                ));
            }
            entries.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd { entries })
    }

    pub fn contains(&self, user: &str) -> bool {
        self.entries.contains_key(user)
    }

    /// Whether `user` is in the file with this password. Slow (bcrypt); call it off
    /// the async executor.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.entries.get(user).is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_bcrypt_entries() {
        let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
        let file = Htpasswd::parse(&format!("# users\nbob:{hash}\n\n")).unwrap();
        assert!(file.verify("bob", "s3cret-pass"));
        assert!(!file.verify("bob", "wrong"));
        assert!(!file.verify("carol", "s3cret-pass"));
    }

    #[test]
    fn refuses_weak_or_malformed_entries() {
        assert_eq!(Htpasswd::parse("bob:{SHA}abc").unwrap_err().0, 1);
        assert_eq!(Htpasswd::parse("\nno-colon").unwrap_err().0, 2);
    }
}
