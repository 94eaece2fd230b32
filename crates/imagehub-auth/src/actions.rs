//! The actions a caller may take on a repository, as the distribution token spec names
//! them (`pull`, `push`, `delete`; `*` means all of them).

use std::fmt;
use std::str::FromStr;

/// One action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            _ => Err(()),
        }
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PULL_PUSH: Actions = Actions(3);
    pub const ALL: Actions = Actions(7);

    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub fn with(self, action: Action) -> Actions {
        Actions(self.0 | action.bit())
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Parses a comma-separated list; `*` stands for every action. Unknown names are
    /// ignored, as the token spec asks a server to do with actions it does not know.
    pub fn parse_lenient(list: &str) -> Actions {
        list.split(',').map(str::trim).fold(Actions::NONE, |set, name| match name {
            "*" => Actions::ALL,
            _ => name.parse().map_or(set, |a| set.with(a)),
        })
    }

    /// Parses a comma-separated list strictly: every entry must be an action.
    pub fn parse_strict(list: &str) -> Result<Actions, String> {
        list.split(',').map(str::trim).try_fold(Actions::NONE, |set, name| {
            name.parse()
                .map(|a| set.with(a))
                .map_err(|()| format!("unknown action {name:?} (pull, push, delete)"))
        })
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Action::as_str).collect()
    }
}

impl FromIterator<Action> for Actions {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        iter.into_iter().fold(Actions::NONE, Actions::with)
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_star() {
        assert_eq!(Actions::parse_lenient("pull,push"), Actions::PULL_PUSH);
        assert_eq!(Actions::parse_lenient("*"), Actions::ALL);
        assert_eq!(Actions::parse_lenient("pull,frobnicate"), Actions::PULL);
        assert_eq!(Actions::parse_lenient(""), Actions::NONE);
        assert!(Actions::parse_strict("pull,frobnicate").is_err());
        assert_eq!(
            Actions::parse_strict("delete, pull").map(|a| a.to_string()),
            Ok("pull,delete".to_string())
        );
    }

    #[test]
    fn set_operations() {
        assert_eq!(Actions::ALL.intersect(Actions::PULL), Actions::PULL);
        assert!(Actions::PULL_PUSH.contains(Action::Push));
        assert!(!Actions::PULL_PUSH.contains(Action::Delete));
        assert!(Actions::NONE.is_empty());
    }
}
