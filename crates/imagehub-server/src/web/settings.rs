//! A repository's settings, as a tab of its page (`/r/{name}?tab=settings`) for owners
//! of its namespace and site admins: visibility and description, through the same
//! `Accounts` calls as `PATCH /api/v1/orgs/{org}/repos/{repo}`; and deleting it, which
//! needs the delete right (as `DELETE` on the API) and the repository's name typed out.

use axum::response::{IntoResponse, Redirect, Response};
use imagehub_auth::{Action, Visibility};
use imagehub_core::{Access, AccountError, AuditAction};
use imagehub_oci::RepoName;
use serde::Deserialize;

use super::PageError;
use super::session::Visitor;
use crate::api::ApiState;

/// What the settings tab shows.
pub struct SettingsView {
    pub public: bool,
    pub description: String,
}

/// What the settings forms send (`intent` tells which).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    /// `settings` or `delete`.
    intent: String,
    visibility: String,
    description: String,
    /// The repository's name, typed to confirm a deletion.
    confirm: String,
}

/// The settings of `repository`, if the visitor may change them.
pub async fn view(
    state: &ApiState,
    visitor: &Visitor,
    repository: &RepoName,
) -> Result<Option<SettingsView>, PageError> {
    if state.auth.is_none()
        || visitor.csrf.is_none()
        || !state.accounts.may_manage_repository(&visitor.caller, repository).await?
    {
        return Ok(None);
    }
    let visibility = state.accounts.visibility_of(repository).await?;
    let description = state.accounts.repository_description(repository).await?;
    Ok(Some(SettingsView {
        public: visibility == Visibility::Public,
        description: description.unwrap_or_default(),
    }))
}

/// `POST /r/{name}`: saves the settings or deletes the repository.
pub async fn save(
    state: &ApiState,
    visitor: Visitor,
    name: &str,
    form: SettingsForm,
) -> Result<Response, PageError> {
    visitor.check_csrf(Some(&form.csrf))?;
    let not_found = || PageError::not_found(format!("There is no repository {name}."));
    let repository: RepoName = name.parse().map_err(|_| not_found())?;
    let access = state.accounts.authorize(&visitor.caller, &repository, Action::Delete).await?;
    if access == Access::Hidden {
        return Err(not_found());
    }
    match form.intent.as_str() {
        "settings" => save_settings(state, &visitor, &repository, &form).await,
        "delete" if access != Access::Allowed => Err(PageError::forbidden(format!(
            "You may not delete {repository}: it needs the delete right in its namespace."
        ))),
        "delete" if form.confirm.trim() != repository.as_str() => {
            Err(PageError::bad_request(format!(
                "To delete the repository, type its name ({repository}) exactly. Nothing was deleted."
            )))
        }
        "delete" => {
            if !state.registry.delete_repository(&repository).await? {
                return Err(not_found());
            }
            let target = repository.to_string();
            let actor = visitor.caller.name();
            let namespace = repository.namespace();
            let action = AuditAction::RepositoryDelete;
            state.accounts.audit(actor, action, namespace, Some(&target), None, None).await;
            Ok(Redirect::to("/").into_response())
        }
        _ => Err(PageError::bad_request("The form asked for nothing this page does.")),
    }
}

async fn save_settings(
    state: &ApiState,
    visitor: &Visitor,
    repository: &RepoName,
    form: &SettingsForm,
) -> Result<Response, PageError> {
    let visibility: Visibility = form.visibility.parse().map_err(PageError::bad_request)?;
    let description = Some(form.description.trim()).filter(|d| !d.is_empty());
    let caller = &visitor.caller;
    let current = state.accounts.visibility_of(repository).await?;
    let changed = async {
        if visibility != current {
            state.accounts.set_visibility(caller, repository, visibility).await?;
        }
        state.accounts.set_repository_description(caller, repository, description).await
    };
    match changed.await {
        Ok(()) => Ok(Redirect::to(&format!("/r/{repository}?tab=settings")).into_response()),
        Err(e @ AccountError::InvalidInput(_)) => Err(PageError::bad_request(e.to_string())),
        Err(AccountError::NotOwner { namespace, .. }) => Err(PageError::forbidden(format!(
            "Only owners of {namespace} change the settings of its repositories."
        ))),
        Err(e) => Err(e.into()),
    }
}
