//! Scopes as clients ask for them at the token endpoint and as challenges name them:
//! `repository:<name>:<actions>` and `registry:catalog:*`.

use imagehub_oci::{NameError, RepoName};

use crate::Actions;

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository {
        name: RepoName,
        actions: Actions,
    },
    /// `registry:catalog:*`: listing the catalog.
    Catalog,
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("scope {0:?} is not of the form type:name:actions")]
    Malformed(String),
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Scope {
    /// Parses one scope. The name may carry a `:port`-free registry-style component, so
    /// the actions are after the last colon. Unknown resource types yield `None`, which
    /// callers skip: a token endpoint grants nothing for them rather than failing.
    pub fn parse(s: &str) -> Result<Option<Scope>, ScopeError> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| ScopeError::Malformed(s.to_string()))?;
        let (name, actions) =
            rest.rsplit_once(':').ok_or_else(|| ScopeError::Malformed(s.to_string()))?;
        // `repository(plugin):name:pull` is an old Docker class suffix; the class is ignored.
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match (kind, name) {
            ("repository", _) => Ok(Some(Scope::Repository {
                name: name.parse()?,
                actions: Actions::parse_lenient(actions),
            })),
            ("registry", "catalog") => Ok(Some(Scope::Catalog)),
            _ => Ok(None),
        }
    }

    /// The scope as it is written in a challenge or a token request.
    pub fn to_scope_string(&self) -> String {
        match self {
            Scope::Repository { name, actions } => format!("repository:{name}:{actions}"),
            Scope::Catalog => "registry:catalog:*".to_string(),
        }
    }
}

/// Parses every `scope` value of a token request. Docker sends one `scope` parameter per
/// scope; some clients join several with spaces (RFC 6749), so both are accepted.
pub fn parse_scopes<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Scope>, ScopeError> {
    let mut scopes = Vec::new();
    for value in values {
        for part in value.split(' ').filter(|p| !p.is_empty()) {
            if let Some(scope) = Scope::parse(part)? {
                scopes.push(scope);
            }
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_and_catalog_scopes() {
        let s = Scope::parse("repository:acme/app:pull,push").unwrap().unwrap();
        assert_eq!(s.to_scope_string(), "repository:acme/app:pull,push");
        assert_eq!(Scope::parse("registry:catalog:*").unwrap(), Some(Scope::Catalog));
        assert_eq!(
            Scope::parse("repository(plugin):acme/app:pull").unwrap().unwrap().to_scope_string(),
            "repository:acme/app:pull"
        );
        assert_eq!(Scope::parse("something:else:pull").unwrap(), None);
    }

    #[test]
    fn rejects_malformed_scopes() {
        assert!(Scope::parse("repository").is_err());
        assert!(Scope::parse("repository:Bad/Name:pull").is_err());
    }

    #[test]
    fn several_scopes_in_one_value() {
        let scopes =
            parse_scopes(["repository:a/b:pull repository:a/c:push", "registry:catalog:*"])
                .unwrap();
        assert_eq!(scopes.len(), 3);
    }
}
