//! The path parameters of `/api/v1` routes: extracted by the handlers and described by
//! the same derive in the OpenAPI document.

use serde::Deserialize;
use utoipa::IntoParams;

/// Path parameters of a namespace's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamespacePath {
    /// The namespace: an organization, or a user's own.
    pub org: String,
}

/// Path parameters of a repository's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RepoPath {
    /// The namespace: an organization, or a user's own.
    pub org: String,
    /// The repository name within the namespace, percent-encoded when it has slashes (`team%2Fapp` for `org/team/app`).
    pub repo: String,
}

/// Path parameters of an image's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImagePath {
    /// The namespace: an organization, or a user's own.
    pub org: String,
    /// The repository name within the namespace, percent-encoded when it has slashes (`team%2Fapp` for `org/team/app`).
    pub repo: String,
    /// A tag (`v1.2`) or a manifest digest (`sha256:…`).
    pub reference: String,
}

/// Path parameters of an organization's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrgPath {
    /// The organization's name.
    pub org: String,
}

/// Path parameters of a membership's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The organization's name.
    pub org: String,
    /// The user's name.
    pub user: String,
}
