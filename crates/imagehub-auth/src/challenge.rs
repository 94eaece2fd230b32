//! `WWW-Authenticate` challenges for the registry's 401 answers.

use std::fmt;

use crate::Scope;

/// A Bearer challenge pointing clients at the token endpoint.
#[derive(Debug, Clone)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub service: &'a str,
    pub scope: Option<Scope>,
    /// Set when the caller was authenticated but is not allowed what it asked.
    pub insufficient_scope: bool,
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and realms never contain quotes: names follow the OCI grammar and the
        // realm is a URL built from config or checked proxy headers.
        write!(f, r#"Bearer realm="{}",service="{}""#, self.realm, self.service)?;
        if let Some(scope) = &self.scope {
            write!(f, r#",scope="{}""#, scope.to_scope_string())?;
        }
        if self.insufficient_scope {
            f.write_str(r#",error="insufficient_scope""#)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Actions;

    #[test]
    fn formats_like_distribution() {
        let c = Challenge {
            realm: "http://h/token",
            service: "imagehub",
            scope: Some(Scope::Repository {
                name: "a/b".parse().unwrap(),
                actions: Actions::PULL_PUSH,
            }),
            insufficient_scope: true,
        };
        assert_eq!(
            c.to_string(),
            r#"Bearer realm="http://h/token",service="imagehub",scope="repository:a/b:pull,push",error="insufficient_scope""#
        );
    }
}
