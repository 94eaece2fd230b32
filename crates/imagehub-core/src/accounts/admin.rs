//! Managing accounts, with their rules: users, access tokens, organizations and members
//! (an organization keeps an owner), repository settings, and the audit trail.

use imagehub_auth::{AccessTokenSecret, Actions, Role, Visibility};
use imagehub_metadata::{
    AuditAction, AuditEvent, MemberRow, NamespaceKind, NewAccessToken, NewAuditEvent, NewUser,
    OrgRow, UserRow, UserSource,
};
use imagehub_oci::{AccountName, RepoName};

use super::{
    AccessTokenInfo, AccountError, Accounts, Caller, CreatedToken, Credential, Result, UserCaller,
};

impl Accounts {
    /// Creates a local user: by an admin, or by anyone when sign-up is open.
    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<UserRow> {
        if !caller.is_admin() && !self.settings.open_signup {
            return Err(AccountError::SignupClosed);
        }
        let name: AccountName = name
            .parse()
            .map_err(|e: imagehub_oci::NameError| AccountError::InvalidInput(e.to_string()))?;
        let hash = self.hash(password.to_string()).await?;
        let user = self
            .meta
            .create_user(NewUser {
                name: name.as_str(),
                email,
                password_hash: Some(&hash),
                source: UserSource::Local,
                is_admin: false,
            })
            .await?;
        self.audit(
            caller.name(),
            AuditAction::UserCreate,
            Some(name.as_str()),
            Some(name.as_str()),
            None,
            None,
        )
        .await;
        Ok(user)
    }

    /// Site admins list the users, by name, a page at a time (from the first after `after`).
    pub async fn users(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRow>> {
        let me = self.password_user(caller)?;
        if !me.is_admin {
            return Err(AccountError::AdminOnly { what: "list the users" });
        }
        Ok(self.meta.users(after, limit).await?)
    }

    /// The caller's account; a registry token, which grants only repositories, does
    /// not read it.
    pub async fn user(&self, caller: &Caller) -> Result<UserRow> {
        let me = self.account_reader(caller)?;
        self.meta.user_by_name(&me.name).await?.ok_or(AccountError::Unauthenticated)
    }

    /// Changes the caller's password or email; only with the password itself, so a
    /// leaked token cannot take the account over.
    pub async fn update_user(
        &self,
        caller: &Caller,
        password: Option<&str>,
        email: Option<Option<&str>>,
    ) -> Result<UserRow> {
        let me = self.password_user(caller)?;
        if let Some(password) = password {
            let hash = self.hash(password.to_string()).await?;
            self.meta.set_password_hash(me.id, &hash).await?;
            // Registry tokens issued before now stop working here at once; other
            // replicas drop their cached epoch when they hear of it (`replicas.rs`).
            self.epochs.forget(&me.name);
            self.meta.delete_web_sessions_of(me.id).await?;
            self.audit(
                Some(&me.name),
                AuditAction::UserPassword,
                Some(&me.name),
                Some(&me.name),
                None,
                None,
            )
            .await;
        }
        if let Some(email) = email {
            self.meta.set_email(me.id, email).await?;
        }
        self.user(caller).await
    }

    // ---- access tokens ----

    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        actions: Actions,
        namespaces: Option<Vec<String>>,
        expires_at: Option<i64>,
    ) -> Result<CreatedToken> {
        let me = self.password_user(caller)?;
        if name.trim().is_empty() || name.len() > 100 {
            return Err(AccountError::InvalidInput(
                "a token needs a name of 1 to 100 characters".into(),
            ));
        }
        if actions.is_empty() {
            return Err(AccountError::InvalidInput(
                "a token needs at least one scope: pull, push, delete".into(),
            ));
        }
        if expires_at
            .is_some_and(|at| at <= imagehub_metadata::unix_seconds(std::time::SystemTime::now()))
        {
            return Err(AccountError::InvalidInput("expires_at is in the past".into()));
        }
        if let Some(list) = &namespaces {
            for ns in list {
                ns.parse::<AccountName>().map_err(|e| AccountError::InvalidInput(e.to_string()))?;
            }
        }
        let secret = AccessTokenSecret::generate();
        let info = self
            .meta
            .create_access_token(NewAccessToken {
                user_id: me.id,
                name,
                secret_hash: &secret.hash,
                actions,
                namespaces: namespaces.as_deref(),
                expires_at,
            })
            .await?;
        self.audit(
            Some(&me.name),
            AuditAction::TokenCreate,
            Some(&me.name),
            Some(name),
            None,
            Some(serde_json::json!({"id": info.id, "scopes": actions.names()})),
        )
        .await;
        Ok(CreatedToken { info, secret: secret.secret })
    }

    pub async fn tokens(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>> {
        let me = self.account_reader(caller)?;
        Ok(self.meta.access_tokens(me.id).await?)
    }

    pub async fn revoke_token(&self, caller: &Caller, id: i64) -> Result<()> {
        let me = self.password_user(caller)?;
        let name =
            self.meta.delete_access_token(me.id, id).await?.ok_or(AccountError::NoSuchToken(id))?;
        self.audit(
            Some(&me.name),
            AuditAction::TokenRevoke,
            Some(&me.name),
            Some(&name),
            None,
            Some(serde_json::json!({"id": id})),
        )
        .await;
        Ok(())
    }

    /// Managing the account (credentials, email, organizations, settings) needs the
    /// user's own password, so a leaked token cannot mint more or lock the user out.
    fn password_user<'a>(&self, caller: &'a Caller) -> Result<&'a UserCaller> {
        let me = caller.require_user()?;
        if !me.credential.is_password() {
            return Err(AccountError::PasswordRequired { presented: me.credential.kind() });
        }
        Ok(me)
    }

    /// Reading the account (profile, tokens, organizations) needs the password or an
    /// access token; a registry token grants only the repositories it names.
    fn account_reader<'a>(&self, caller: &'a Caller) -> Result<&'a UserCaller> {
        let me = caller.require_user()?;
        match me.credential {
            Credential::Password | Credential::Session | Credential::AccessToken(_) => Ok(me),
            Credential::RefreshToken(_) | Credential::RegistryToken { .. } => {
                Err(AccountError::NotAnAccountCredential { presented: me.credential.kind() })
            }
        }
    }

    // ---- organizations ----

    pub async fn create_org(
        &self,
        caller: &Caller,
        name: &str,
        visibility: Visibility,
        description: &str,
    ) -> Result<OrgRow> {
        let me = self.password_user(caller)?;
        let name: AccountName = name
            .parse()
            .map_err(|e: imagehub_oci::NameError| AccountError::InvalidInput(e.to_string()))?;
        check_description(description)?;
        let org = self.meta.create_org(name.as_str(), me.id, visibility, description).await?;
        self.audit(
            Some(&me.name),
            AuditAction::OrgCreate,
            Some(name.as_str()),
            Some(name.as_str()),
            None,
            None,
        )
        .await;
        Ok(org)
    }

    /// The organizations the caller belongs to (all of them for a site admin), with roles.
    pub async fn orgs(&self, caller: &Caller) -> Result<Vec<(OrgRow, Option<Role>)>> {
        let me = self.account_reader(caller)?;
        Ok(self.meta.orgs(me.id, caller.is_admin()).await?)
    }

    /// An organization and the caller's role in it. Members and admins see it; for
    /// anyone else it does not exist.
    pub async fn org(&self, caller: &Caller, name: &str) -> Result<(OrgRow, Option<Role>)> {
        let not_found = || AccountError::NoSuchOrg(name.to_string());
        self.account_reader(caller)?;
        let org = self.meta.org(name).await?.ok_or_else(not_found)?;
        let role = self.role_in(caller, name).await?;
        if role.is_none() && !caller.is_admin() {
            return Err(not_found());
        }
        Ok((org, role))
    }

    async fn role_in(&self, caller: &Caller, org: &str) -> Result<Option<Role>> {
        let Some(user) = caller.user() else { return Ok(None) };
        Ok(self.meta.member_role(org, user.id).await?)
    }

    /// Fails unless the caller owns the organization or is a site admin.
    async fn require_owner(&self, caller: &Caller, org: &str) -> Result<()> {
        let (_, role) = self.org(caller, org).await?;
        self.password_user(caller)?;
        if role == Some(Role::Owner) || caller.is_admin() {
            Ok(())
        } else {
            Err(AccountError::NotOwner { namespace: org.to_string(), what: "do that" })
        }
    }

    pub async fn update_org(
        &self,
        caller: &Caller,
        org: &str,
        visibility: Option<Visibility>,
        description: Option<&str>,
    ) -> Result<OrgRow> {
        self.require_owner(caller, org).await?;
        description.map(check_description).transpose()?;
        self.meta.update_org(org, visibility, description).await?;
        self.audit(caller.name(), AuditAction::OrgUpdate, Some(org), Some(org), None, Some(serde_json::json!({"default_visibility": visibility.map(Visibility::as_str), "description": description})))
            .await;
        Ok(self.org(caller, org).await?.0)
    }

    pub async fn delete_org(&self, caller: &Caller, org: &str) -> Result<()> {
        self.require_owner(caller, org).await?;
        self.meta.delete_org(org).await?;
        self.audit(caller.name(), AuditAction::OrgDelete, Some(org), Some(org), None, None).await;
        Ok(())
    }

    pub async fn members(&self, caller: &Caller, org: &str) -> Result<Vec<MemberRow>> {
        self.org(caller, org).await?;
        Ok(self.meta.members(org).await?)
    }

    pub async fn set_member(
        &self,
        caller: &Caller,
        org: &str,
        user: &str,
        role: Role,
    ) -> Result<()> {
        self.require_owner(caller, org).await?;
        let member = self
            .meta
            .user_by_name(user)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.to_string()))?;
        self.meta.set_member(org, member.id, role).await?;
        self.audit(
            caller.name(),
            AuditAction::MemberSet,
            Some(org),
            Some(user),
            None,
            Some(serde_json::json!({"role": role.as_str()})),
        )
        .await;
        Ok(())
    }

    pub async fn remove_member(&self, caller: &Caller, org: &str, user: &str) -> Result<()> {
        self.require_owner(caller, org).await?;
        let member = self
            .meta
            .user_by_name(user)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user.to_string()))?;
        if !self.meta.remove_member(org, member.id).await? {
            return Err(AccountError::NotAMember { user: user.to_string(), org: org.to_string() });
        }
        self.audit(caller.name(), AuditAction::MemberRemove, Some(org), Some(user), None, None)
            .await;
        Ok(())
    }

    /// Fails unless `caller` may change the settings of `repository` (visibility,
    /// description); changes nothing, so a batch can check every change first.
    pub async fn check_repository_settings(
        &self,
        caller: &Caller,
        repository: &RepoName,
    ) -> Result<()> {
        self.require_repository_owner(caller, repository).await.map(|_| ())
    }

    /// Fails unless `caller` may create the organization `name` (the name is free and
    /// they logged in with the password) or change it (they own it); changes nothing.
    pub async fn check_org_change(&self, caller: &Caller, name: &str) -> Result<()> {
        match self.meta.namespace_kind(name).await? {
            Some(NamespaceKind::Org) => self.require_owner(caller, name).await,
            Some(NamespaceKind::User) => Err(AccountError::NameTaken(name.to_string())),
            None => self.password_user(caller).map(|_| ()),
        }
    }

    /// Sets a repository's visibility: owners of its organization, the user whose
    /// namespace it is, or site admins.
    pub async fn set_visibility(
        &self,
        caller: &Caller,
        repository: &RepoName,
        visibility: Visibility,
    ) -> Result<()> {
        let (me, namespace) = self.require_repository_owner(caller, repository).await?;
        self.meta.set_repository_visibility(repository.as_str(), visibility).await?;
        self.audit(
            Some(&me.name),
            AuditAction::RepositoryVisibility,
            Some(namespace),
            Some(repository.as_str()),
            None,
            Some(serde_json::json!({"visibility": visibility.as_str()})),
        )
        .await;
        Ok(())
    }

    /// Sets (or with `None`, clears) a repository's own description; same rights as visibility.
    pub async fn set_repository_description(
        &self,
        caller: &Caller,
        repository: &RepoName,
        description: Option<&str>,
    ) -> Result<()> {
        description.map(check_description).transpose()?;
        let (me, namespace) = self.require_repository_owner(caller, repository).await?;
        self.meta.set_repository_description(repository.as_str(), description).await?;
        self.audit(
            Some(&me.name),
            AuditAction::RepositoryDescription,
            Some(namespace),
            Some(repository.as_str()),
            None,
            None,
        )
        .await;
        Ok(())
    }

    /// A repository's own description.
    pub async fn repository_description(&self, repository: &RepoName) -> Result<Option<String>> {
        Ok(self.meta.repository_description(repository.as_str()).await?)
    }

    /// Fails unless the caller, logged in with the password, owns the repository's
    /// namespace (its user, an owner of its organization) or is a site admin.
    /// Whether `caller` may change `repository`'s settings (visibility, description): an
    /// owner of its namespace or a site admin, with the password or a session.
    pub async fn may_manage_repository(
        &self,
        caller: &Caller,
        repository: &RepoName,
    ) -> Result<bool> {
        match self.require_repository_owner(caller, repository).await {
            Ok(_) => Ok(true),
            Err(
                AccountError::NotOwner { .. }
                | AccountError::InvalidInput(_)
                | AccountError::Unauthenticated
                | AccountError::PasswordRequired { .. }
                | AccountError::NotAnAccountCredential { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn require_repository_owner<'a, 'r>(
        &self,
        caller: &'a Caller,
        repository: &'r RepoName,
    ) -> Result<(&'a UserCaller, &'r str)> {
        let namespace = repository.namespace().ok_or_else(|| {
            AccountError::InvalidInput("top-level repositories belong to no namespace".into())
        })?;
        let me = self.password_user(caller)?;
        let allowed = match self.meta.namespace_kind(namespace).await? {
            _ if me.is_admin => true,
            Some(NamespaceKind::User) => namespace == me.name,
            Some(NamespaceKind::Org) => self.role_in(caller, namespace).await? == Some(Role::Owner),
            None => false,
        };
        if !allowed {
            return Err(AccountError::NotOwner {
                namespace: namespace.to_string(),
                what: "change the settings of its repositories",
            });
        }
        Ok((me, namespace))
    }

    // ---- audit ----

    /// Records an event; a failure to record is logged, never fails the operation.
    pub async fn audit(
        &self,
        actor: Option<&str>,
        action: AuditAction,
        namespace: Option<&str>,
        target: Option<&str>,
        client: Option<&str>,
        detail: Option<serde_json::Value>,
    ) {
        let event = NewAuditEvent { actor, action, namespace, target, client, detail };
        if let Err(e) = self.meta.record_audit(event).await {
            tracing::error!(error = %e, action = action.as_str(), "could not record an audit event");
        }
    }

    /// Audit events for the caller: all for site admins, those of the organizations
    /// they own otherwise.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        action: Option<AuditAction>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let me = self.password_user(caller)?;
        if me.is_admin {
            return Ok(self.meta.audit_events(None, action, before, limit).await?);
        }
        let owned: Vec<String> = self
            .meta
            .orgs(me.id, false)
            .await?
            .into_iter()
            .filter(|(_, role)| *role == Some(Role::Owner))
            .map(|(org, _)| org.name)
            .collect();
        if owned.is_empty() {
            return Err(AccountError::AuditClosed);
        }
        Ok(self.meta.audit_events(Some(&owned), action, before, limit).await?)
    }
}

/// Descriptions of organizations and repositories are short texts.
const MAX_DESCRIPTION_CHARS: usize = 1000;

fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(AccountError::InvalidInput(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}
