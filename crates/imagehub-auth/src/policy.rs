//! The permission policy: what a caller may do to a repository, from where the caller
//! stands in the repository's namespace and from the repository's visibility.

use std::fmt;
use std::str::FromStr;

use crate::{Action, Actions};

/// Whether a repository may be pulled by anyone or only by its namespace's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            _ => Err(format!("visibility {s:?} is neither \"public\" nor \"private\"")),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages members and settings; pushes, pulls and deletes.
    Owner,
    /// Pushes and pulls.
    Developer,
    /// Pulls.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    /// What the role allows on the organization's repositories.
    pub fn actions(self) -> Actions {
        match self {
            Role::Owner => Actions::ALL,
            Role::Developer => Actions::PULL_PUSH,
            Role::Viewer => Actions::PULL,
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owner" => Ok(Role::Owner),
            "developer" => Ok(Role::Developer),
            "viewer" => Ok(Role::Viewer),
            _ => Err(format!("role {s:?} is not one of owner, developer, viewer")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a caller stands with respect to one repository's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No credentials.
    Anonymous,
    /// Logged in, but neither the namespace's user nor a member of its organization.
    Outsider,
    /// A member of the organization that owns the namespace.
    Member(Role),
    /// The user whose personal namespace it is.
    NamespaceOwner,
    /// A site administrator: everything, everywhere.
    SiteAdmin,
}

/// What `standing` allows on a repository of the given visibility.
pub fn repository_actions(
    standing: Standing,
    visibility: Visibility,
    anonymous_pull: bool,
) -> Actions {
    let public_pull = if visibility == Visibility::Public { Actions::PULL } else { Actions::NONE };
    match standing {
        Standing::SiteAdmin | Standing::NamespaceOwner => Actions::ALL,
        Standing::Member(role) => role.actions(),
        Standing::Outsider => public_pull,
        Standing::Anonymous if anonymous_pull => public_pull,
        Standing::Anonymous => Actions::NONE,
    }
}

/// What an access token narrows its user's rights to: some actions, and optionally
/// some namespaces only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLimits {
    pub actions: Actions,
    /// `None`: every namespace the user can reach.
    pub namespaces: Option<Vec<String>>,
}

impl TokenLimits {
    /// `allowed` narrowed to what the token permits on a repository in `namespace`.
    pub fn restrict(&self, namespace: Option<&str>, allowed: Actions) -> Actions {
        let in_scope = match (&self.namespaces, namespace) {
            (None, _) => true,
            (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
            (Some(_), None) => false,
        };
        if in_scope { allowed.intersect(self.actions) } else { Actions::NONE }
    }

    pub fn allows(&self, action: Action) -> bool {
        self.actions.contains(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Standing::*;
    use Visibility::*;

    #[test]
    fn the_matrix_of_standing_and_visibility() {
        let cases = [
            (Anonymous, Public, true, Actions::PULL),
            (Anonymous, Public, false, Actions::NONE),
            (Anonymous, Private, true, Actions::NONE),
            (Outsider, Public, false, Actions::PULL),
            (Outsider, Private, true, Actions::NONE),
            (Member(Role::Viewer), Private, true, Actions::PULL),
            (Member(Role::Developer), Private, true, Actions::PULL_PUSH),
            (Member(Role::Owner), Private, true, Actions::ALL),
            (NamespaceOwner, Private, true, Actions::ALL),
            (SiteAdmin, Private, false, Actions::ALL),
        ];
        for (standing, visibility, anonymous_pull, expected) in cases {
            assert_eq!(
                repository_actions(standing, visibility, anonymous_pull),
                expected,
                "{standing:?} {visibility:?}"
            );
        }
    }

    #[test]
    fn token_limits_narrow_actions_and_namespaces() {
        let limits = TokenLimits { actions: Actions::PULL, namespaces: Some(vec!["acme".into()]) };
        assert_eq!(limits.restrict(Some("acme"), Actions::ALL), Actions::PULL);
        assert_eq!(limits.restrict(Some("other"), Actions::ALL), Actions::NONE);
        assert_eq!(limits.restrict(None, Actions::ALL), Actions::NONE);
        let everywhere = TokenLimits { actions: Actions::PULL_PUSH, namespaces: None };
        assert_eq!(everywhere.restrict(None, Actions::ALL), Actions::PULL_PUSH);
    }
}
