//! The permission policy applied to stored accounts: where a caller stands in a
//! repository's namespace, the repository's visibility, and the narrowing by the
//! credential presented.

use std::sync::Arc;

use imagehub_auth::{Action, Actions, Claims, Standing, Visibility};
use imagehub_metadata::RepositoryFilter;
use imagehub_oci::RepoName;

use super::{Access, Accounts, Caller, Credential, Result};

impl Accounts {
    /// Whether `caller` may do `action` to `repository`, and if not, whether the answer
    /// must hide that the repository exists.
    pub async fn authorize(
        &self,
        caller: &Caller,
        repository: &RepoName,
        action: Action,
    ) -> Result<Access> {
        let actions = self.repository_actions(caller, repository).await?;
        Ok(if actions.contains(action) {
            Access::Allowed
        } else if actions.contains(Action::Pull) {
            Access::Denied
        } else {
            Access::Hidden
        })
    }

    /// What `caller` may do to `repository`: the policy for where the user stands,
    /// narrowed by the credential they presented.
    pub async fn repository_actions(
        &self,
        caller: &Caller,
        repository: &RepoName,
    ) -> Result<Actions> {
        let rights = self.user_rights(caller, repository).await?;
        Ok(match caller.user().map(|u| &u.credential) {
            Some(Credential::RegistryToken { claims, .. }) => {
                rights.intersect(claims.repository_actions(repository.as_str()))
            }
            _ => rights,
        })
    }

    /// Whether the user behind a registry JWT may pull `repository` at all, whatever the
    /// token was issued for: the registry answers a token that lacks pull on a
    /// repository its user may not see exactly as for a missing one.
    pub async fn may_see(&self, claims: Arc<Claims>, repository: &RepoName) -> Result<bool> {
        let caller = self.caller_from_claims(claims).await?;
        Ok(self.user_rights(&caller, repository).await?.contains(Action::Pull))
    }

    /// The policy's answer for the user, narrowed by an access token (however
    /// presented) but not by a registry token's claim.
    async fn user_rights(&self, caller: &Caller, repository: &RepoName) -> Result<Actions> {
        let namespace = repository.namespace();
        let standing = self.standing(caller, namespace).await?;
        let visibility = self.visibility(repository).await?;
        let allowed =
            imagehub_auth::repository_actions(standing, visibility, self.settings.anonymous_pull);
        Ok(match caller.user().and_then(|u| u.credential.access_token()) {
            Some(grant) => grant.limits.restrict(namespace, allowed),
            None => allowed,
        })
    }

    async fn standing(&self, caller: &Caller, namespace: Option<&str>) -> Result<Standing> {
        let Some(user) = caller.user() else { return Ok(Standing::Anonymous) };
        if user.is_admin {
            return Ok(Standing::SiteAdmin);
        }
        let Some(namespace) = namespace else { return Ok(Standing::Outsider) };
        if namespace == user.name {
            return Ok(Standing::NamespaceOwner);
        }
        Ok(match self.meta.member_role(namespace, user.id).await? {
            Some(role) => Standing::Member(role),
            None => Standing::Outsider,
        })
    }

    /// A repository's visibility (its own, else its namespace's default, else private).
    pub async fn visibility_of(&self, repository: &RepoName) -> Result<Visibility> {
        self.visibility(repository).await
    }

    async fn visibility(&self, repository: &RepoName) -> Result<Visibility> {
        Ok(self.meta.repository_visibility(repository.as_str(), repository.namespace()).await?)
    }

    /// Which repositories `caller` may see in the catalog; `None` means all of them.
    /// A registry JWT lists its user's repositories only when it grants the catalog
    /// (`registry:catalog:*`); otherwise what an anonymous caller would see.
    pub async fn catalog_filter(&self, caller: &Caller) -> Result<Option<RepositoryFilter>> {
        let anonymous = || {
            Some(RepositoryFilter { public: self.settings.anonymous_pull, ..Default::default() })
        };
        let Some(user) = caller.user() else { return Ok(anonymous()) };
        if let Credential::RegistryToken { claims, .. } = &user.credential
            && !claims.grants_catalog()
        {
            return Ok(anonymous());
        }
        let grant = user.credential.access_token();
        let only_namespaces = grant.and_then(|t| t.limits.namespaces.clone());
        if user.is_admin && only_namespaces.is_none() {
            return Ok(None);
        }
        let mut namespaces = vec![user.name.clone()];
        if user.is_admin {
            namespaces.extend(only_namespaces.iter().flatten().cloned());
        } else {
            namespaces
                .extend(self.meta.orgs(user.id, false).await?.into_iter().map(|(org, _)| org.name));
        }
        let pulls = grant.is_none_or(|t| t.limits.actions.contains(Action::Pull));
        if !pulls {
            return Ok(Some(RepositoryFilter {
                public: false,
                namespaces: Vec::new(),
                only_namespaces: Some(Vec::new()),
            }));
        }
        Ok(Some(RepositoryFilter { public: true, namespaces, only_namespaces }))
    }
}
