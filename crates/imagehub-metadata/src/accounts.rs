//! Rows of the accounts model: users, organizations, memberships, repository
//! visibility, access tokens and audit events. The rules that use them live in core.

use std::str::FromStr;

use imagehub_auth::{Actions, Role, Visibility};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, MetadataError, Result, now, visibility};

/// What owns a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    User,
    Org,
}

/// Where a user account comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    Local,
    Htpasswd,
    Webhook,
}

impl UserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Htpasswd => "htpasswd",
            UserSource::Webhook => "webhook",
        }
    }

    fn stored(s: &str) -> Result<UserSource> {
        match s {
            "local" => Ok(UserSource::Local),
            "htpasswd" => Ok(UserSource::Htpasswd),
            "webhook" => Ok(UserSource::Webhook),
            other => Err(MetadataError::Corrupt(format!("user source {other:?}"))),
        }
    }
}

/// What the audit trail records; stored as its dotted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Login,
    LoginFailed,
    LoginThrottled,
    UserCreate,
    UserPassword,
    TokenCreate,
    TokenRevoke,
    OrgCreate,
    OrgUpdate,
    OrgDelete,
    MemberSet,
    MemberRemove,
    RepositoryVisibility,
    RepositoryDescription,
    RepositoryDelete,
    RegistryDelete,
    ImageEdit,
    ImageReadme,
    ImageDelete,
    ImageImport,
}

impl AuditAction {
    pub const ALL: [AuditAction; 20] = [
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::LoginThrottled,
        AuditAction::UserCreate,
        AuditAction::UserPassword,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::OrgCreate,
        AuditAction::OrgUpdate,
        AuditAction::OrgDelete,
        AuditAction::MemberSet,
        AuditAction::MemberRemove,
        AuditAction::RepositoryVisibility,
        AuditAction::RepositoryDescription,
        AuditAction::RepositoryDelete,
        AuditAction::RegistryDelete,
        AuditAction::ImageEdit,
        AuditAction::ImageReadme,
        AuditAction::ImageDelete,
        AuditAction::ImageImport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::LoginThrottled => "login.throttled",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserPassword => "user.password",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::OrgCreate => "org.create",
            AuditAction::OrgUpdate => "org.update",
            AuditAction::OrgDelete => "org.delete",
            AuditAction::MemberSet => "member.set",
            AuditAction::MemberRemove => "member.remove",
            AuditAction::RepositoryVisibility => "repository.visibility",
            AuditAction::RepositoryDescription => "repository.description",
            AuditAction::RepositoryDelete => "repository.delete",
            AuditAction::RegistryDelete => "registry.delete",
            AuditAction::ImageEdit => "image.edit",
            AuditAction::ImageReadme => "image.readme",
            AuditAction::ImageDelete => "image.delete",
            AuditAction::ImageImport => "image.import",
        }
    }

    /// The action named `s` (its dotted name), if there is one.
    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn stored(s: &str) -> Result<AuditAction> {
        AuditAction::parse(s).ok_or_else(|| MetadataError::Corrupt(format!("audit action {s:?}")))
    }
}

/// A value the database holds as text, which its `CHECK` constraints keep valid.
fn stored<T: FromStr<Err = String>>(value: &str) -> Result<T> {
    value.parse().map_err(MetadataError::Corrupt)
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub source: UserSource,
    pub is_admin: bool,
    pub created_at: i64,
    /// Tokens issued before this (Unix seconds) no longer stand for the user.
    pub sessions_valid_after: i64,
}

/// A user about to be created.
pub struct NewUser<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub source: UserSource,
    pub is_admin: bool,
}

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub name: String,
    pub default_visibility: Visibility,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user: String,
    pub role: Role,
    pub added_at: i64,
}

#[derive(Debug, Clone)]
pub struct AccessTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub actions: Actions,
    pub namespaces: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// An access token about to be stored.
pub struct NewAccessToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub actions: Actions,
    pub namespaces: Option<&'a [String]>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub actor: Option<String>,
    pub action: AuditAction,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub client: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub actor: Option<&'a str>,
    pub action: AuditAction,
    pub namespace: Option<&'a str>,
    pub target: Option<&'a str>,
    pub client: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

/// Which repositories a caller may see in listings (the catalog): public ones (when
/// `public` is set), every repository of `namespaces`, all within `only_namespaces`
/// when an access token narrows the caller.
#[derive(Debug, Clone, Default)]
pub struct RepositoryFilter {
    pub public: bool,
    pub namespaces: Vec<String>,
    pub only_namespaces: Option<Vec<String>>,
}

impl RepositoryFilter {
    /// What `filter` (`None`: everything) lets through of one namespace's repositories.
    pub fn within(filter: Option<&RepositoryFilter>, namespace: &str) -> RepositoryFilter {
        let only = |allowed: bool| Some(if allowed { vec![namespace.to_string()] } else { vec![] });
        match filter {
            None => RepositoryFilter {
                public: false,
                namespaces: vec![namespace.to_string()],
                only_namespaces: only(true),
            },
            Some(f) => RepositoryFilter {
                public: f.public,
                namespaces: f.namespaces.clone(),
                only_namespaces: only(
                    f.only_namespaces.as_ref().is_none_or(|o| o.iter().any(|n| n == namespace)),
                ),
            },
        }
    }
}

pub(crate) const USER_COLUMNS: &str =
    "id, name, email, password_hash, source, is_admin, created_at, sessions_valid_after";
const TOKEN_COLUMNS: &str =
    "id, user_id, name, actions, namespaces, expires_at, created_at, last_used_at";

impl Metadata {
    pub async fn count_users(&self) -> Result<u64> {
        let row = sqlx::query("SELECT count(*) FROM users").fetch_one(&self.pool).await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// Creates a user and their personal namespace; fails with `NameTaken` when a user
    /// or organization already has the name.
    pub async fn create_user(&self, user: NewUser<'_>) -> Result<UserRow> {
        let mut tx = self.begin_write().await?;
        let now = now();
        claim_namespace(&mut tx, user.name, NamespaceKind::User, None, now).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, email, password_hash, source, is_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING {USER_COLUMNS}"
        ))
        .bind(user.name)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.source.as_str())
        .bind(user.is_admin)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        user_row(&row)
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Users by name, from the first after `after` on: a page of the admins' list.
    pub async fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name > $1 ORDER BY name LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_row).collect()
    }

    /// Sets a new password and ends the sessions (registry and refresh tokens) issued
    /// before it.
    pub async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1, sessions_valid_after = $2 WHERE id = $3")
            .bind(hash)
            .bind(now())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_email(&self, user_id: i64, email: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn namespace_kind(&self, name: &str) -> Result<Option<NamespaceKind>> {
        let row = sqlx::query("SELECT kind FROM namespaces WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_kind(r.get(0))).transpose()
    }

    /// Creates an organization owned by `owner_id`.
    pub async fn create_org(
        &self,
        name: &str,
        owner_id: i64,
        default_visibility: Visibility,
        description: &str,
    ) -> Result<OrgRow> {
        let mut tx = self.begin_write().await?;
        let now = now();
        claim_namespace(
            &mut tx,
            name,
            NamespaceKind::Org,
            Some((default_visibility.as_str(), description)),
            now,
        )
        .await?;
        sqlx::query(
            "INSERT INTO org_members (org, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)",
        )
        .bind(name)
        .bind(owner_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(OrgRow {
            name: name.into(),
            default_visibility,
            description: description.into(),
            created_at: now,
        })
    }

    pub async fn org(&self, name: &str) -> Result<Option<OrgRow>> {
        let row = sqlx::query("SELECT name, default_visibility, description, created_at FROM namespaces WHERE name = $1 AND kind = 'org'")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_row).transpose()
    }

    /// Organizations `user_id` belongs to, with the role, or every organization (role
    /// `None`) when `user_id` is `None`.
    /// The organizations `user_id` belongs to (with `all`, every one), with their role.
    pub async fn orgs(&self, user_id: i64, all: bool) -> Result<Vec<(OrgRow, Option<Role>)>> {
        let rows = sqlx::query(
            "SELECT n.name, n.default_visibility, n.description, n.created_at, m.role
             FROM namespaces n LEFT JOIN org_members m ON m.org = n.name AND m.user_id = $1
             WHERE n.kind = 'org' AND ($2 OR m.user_id IS NOT NULL) ORDER BY n.name",
        )
        .bind(user_id)
        .bind(all)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: Option<String> = r.get(4);
                Ok((org_row(r)?, role.as_deref().map(stored).transpose()?))
            })
            .collect()
    }

    pub async fn update_org(
        &self,
        name: &str,
        default_visibility: Option<Visibility>,
        description: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE namespaces SET default_visibility = COALESCE($1, default_visibility), description = COALESCE($2, description)
             WHERE name = $3 AND kind = 'org'",
        )
        .bind(default_visibility.map(Visibility::as_str))
        .bind(description)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an organization that holds no repositories; `OrgNotEmpty` otherwise.
    pub async fn delete_org(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let repos: i64 = sqlx::query("SELECT count(*) FROM repositories WHERE namespace = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if repos > 0 {
            return Err(MetadataError::OrgNotEmpty { repositories: repos as u64 });
        }
        let done = sqlx::query("DELETE FROM namespaces WHERE name = $1 AND kind = 'org'")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repository_visibility WHERE name LIKE $1 ESCAPE '\\'")
            .bind(format!("{}/%", name.replace('_', "\\_")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn members(&self, org: &str) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT u.name, m.role, m.added_at FROM org_members m JOIN users u ON u.id = m.user_id
             WHERE m.org = $1 ORDER BY u.name",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.get(1);
                Ok(MemberRow { user: r.get(0), role: stored(&role)?, added_at: r.get(2) })
            })
            .collect()
    }

    pub async fn member_role(&self, org: &str, user_id: i64) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM org_members WHERE org = $1 AND user_id = $2")
            .bind(org)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored(&r.get::<String, _>(0))).transpose()
    }

    /// Adds a member or changes their role. Refuses (`LastOwner`) to demote the last owner.
    pub async fn set_member(&self, org: &str, user_id: i64, role: Role) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if role != Role::Owner {
            ensure_other_owner(&mut tx, org, user_id).await?;
        }
        sqlx::query(
            "INSERT INTO org_members (org, user_id, role, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member; returns whether they were one. Refuses to remove the last owner.
    pub async fn remove_member(&self, org: &str, user_id: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        ensure_other_owner(&mut tx, org, user_id).await?;
        let done = sqlx::query("DELETE FROM org_members WHERE org = $1 AND user_id = $2")
            .bind(org)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The visibility of `repository`: its own setting, else its namespace's default,
    /// else private.
    pub async fn repository_visibility(
        &self,
        repository: &str,
        namespace: Option<&str>,
    ) -> Result<Visibility> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT visibility FROM repository_visibility WHERE name = $1),
                             (SELECT default_visibility FROM namespaces WHERE name = $2), 'private')",
        )
        .bind(repository)
        .bind(namespace)
        .fetch_one(&self.pool)
        .await?;
        stored(&row.get::<String, _>(0))
    }

    pub async fn set_repository_visibility(
        &self,
        repository: &str,
        visibility: Visibility,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO repository_visibility (name, visibility) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET visibility = excluded.visibility",
        )
        .bind(repository)
        .bind(visibility.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets (or with `None`, clears) a repository's own description.
    pub async fn set_repository_description(
        &self,
        repository: &str,
        description: Option<&str>,
    ) -> Result<()> {
        match description {
            Some(d) => sqlx::query(
                "INSERT INTO repository_descriptions (name, description) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description",
            )
            .bind(repository)
            .bind(d),
            None => {
                sqlx::query("DELETE FROM repository_descriptions WHERE name = $1").bind(repository)
            }
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn repository_description(&self, repository: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT description FROM repository_descriptions WHERE name = $1")
            .bind(repository)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// A page of repository names the filter lets through, sorted.
    pub async fn list_visible_repositories(
        &self,
        last: Option<&str>,
        limit: u32,
        filter: &RepositoryFilter,
    ) -> Result<Vec<String>> {
        let params = visibility::Params::of(Some(filter));
        let sql = format!(
            "SELECT r.name FROM repositories r {} WHERE r.name > $1 AND {} ORDER BY r.name LIMIT $6",
            visibility::JOINS,
            visibility::condition(2)
        );
        let query = sqlx::query(&sql).bind(last.unwrap_or(""));
        let rows =
            visibility::bind(query, &params).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    pub async fn create_access_token(&self, token: NewAccessToken<'_>) -> Result<AccessTokenRow> {
        let namespaces = token.namespaces.map(|n| serde_json::Value::from(n.to_vec()).to_string());
        let row = sqlx::query(&format!(
            "INSERT INTO access_tokens (user_id, name, secret_hash, actions, namespaces, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(token.user_id)
        .bind(token.name)
        .bind(token.secret_hash)
        .bind(token.actions.to_string())
        .bind(namespaces)
        .bind(token.expires_at)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => MetadataError::NameTaken(token.name.to_string()),
            _ => e.into(),
        })?;
        token_row(&row)
    }

    /// The unexpired token with this secret hash, and its user; marks it used.
    pub async fn use_access_token(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(AccessTokenRow, UserRow)>> {
        let now = now();
        let row = sqlx::query(&format!(
            "UPDATE access_tokens SET last_used_at = $1 WHERE secret_hash = $2 AND (expires_at IS NULL OR expires_at > $1)
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(now)
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_row(&row)?;
        let user = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(token.user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((token, user_row(&user)?)))
    }

    /// The token with this id if it still exists and has not expired.
    pub async fn live_access_token(&self, id: i64) -> Result<Option<AccessTokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(id)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    pub async fn access_tokens(&self, user_id: i64) -> Result<Vec<AccessTokenRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Deletes one of a user's tokens; returns its name if it existed.
    pub async fn delete_access_token(&self, user_id: i64, id: i64) -> Result<Option<String>> {
        let row =
            sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2 RETURNING name")
                .bind(id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn record_audit(&self, event: NewAuditEvent<'_>) -> Result<()> {
        sqlx::query("INSERT INTO audit_events (at, actor, action, namespace, target, client, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(now())
            .bind(event.actor)
            .bind(event.action.as_str())
            .bind(event.namespace)
            .bind(event.target)
            .bind(event.client)
            .bind(event.detail.map(|d| d.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Audit events, newest first, before event id `before`; only those of
    /// `namespaces` when given.
    pub async fn audit_events(
        &self,
        namespaces: Option<&[String]>,
        action: Option<AuditAction>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, namespace, target, client, detail FROM audit_events
             WHERE id < $1 AND ($2 IS NULL OR namespace IN (SELECT value FROM json_each($2)))
               AND ($3 IS NULL OR action = $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(namespaces.map(|n| serde_json::Value::from(n.to_vec()).to_string()))
        .bind(action.map(AuditAction::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.get(0),
                    at: r.get(1),
                    actor: r.get(2),
                    action: AuditAction::stored(&r.get::<String, _>(3))?,
                    namespace: r.get(4),
                    target: r.get(5),
                    client: r.get(6),
                    detail: r
                        .get::<Option<String>, _>(7)
                        .and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .collect()
    }
}

async fn claim_namespace(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    kind: NamespaceKind,
    org: Option<(&str, &str)>,
    now: i64,
) -> Result<()> {
    let (visibility, description) = org.unwrap_or(("private", ""));
    let kind = match kind {
        NamespaceKind::User => "user",
        NamespaceKind::Org => "org",
    };
    let done = sqlx::query(
        "INSERT INTO namespaces (name, kind, default_visibility, description, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(kind)
    .bind(visibility)
    .bind(description)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(MetadataError::NameTaken(name.to_string()));
    }
    Ok(())
}

/// Fails with `LastOwner` unless `org` has an owner other than `user_id`.
async fn ensure_other_owner(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    user_id: i64,
) -> Result<()> {
    let others: i64 = sqlx::query(
        "SELECT count(*) FROM org_members WHERE org = $1 AND role = 'owner' AND user_id != $2",
    )
    .bind(org)
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?
    .get(0);
    let is_owner =
        sqlx::query("SELECT 1 FROM org_members WHERE org = $1 AND role = 'owner' AND user_id = $2")
            .bind(org)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
    if is_owner && others == 0 { Err(MetadataError::LastOwner) } else { Ok(()) }
}

fn parse_kind(kind: String) -> Result<NamespaceKind> {
    match kind.as_str() {
        "user" => Ok(NamespaceKind::User),
        "org" => Ok(NamespaceKind::Org),
        other => Err(MetadataError::Corrupt(format!("namespace kind {other:?}"))),
    }
}

pub(crate) fn user_row(r: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.get(0),
        name: r.get(1),
        email: r.get(2),
        password_hash: r.get(3),
        source: UserSource::stored(&r.get::<String, _>(4))?,
        is_admin: crate::flag(r, 5),
        created_at: r.get(6),
        sessions_valid_after: r.get(7),
    })
}

fn org_row(r: &AnyRow) -> Result<OrgRow> {
    Ok(OrgRow {
        name: r.get(0),
        default_visibility: stored(&r.get::<String, _>(1))?,
        description: r.get(2),
        created_at: r.get(3),
    })
}

fn token_row(r: &AnyRow) -> Result<AccessTokenRow> {
    let namespaces = r
        .get::<Option<String>, _>(4)
        .map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| MetadataError::Corrupt(format!("token namespaces: {e}")))
        })
        .transpose()?;
    Ok(AccessTokenRow {
        id: r.get(0),
        user_id: r.get(1),
        name: r.get(2),
        actions: Actions::parse_strict(&r.get::<String, _>(3)).map_err(MetadataError::Corrupt)?,
        namespaces,
        expires_at: r.get(5),
        created_at: r.get(6),
        last_used_at: r.get(7),
    })
}
