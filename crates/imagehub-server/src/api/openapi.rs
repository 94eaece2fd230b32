//! The OpenAPI 3 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and served at `/api/v1/openapi.json`.
//!
//! Everything in it comes from the code: the answers are the structs of [`super::views`],
//! the path parameters those of [`super::params`], the errors those of [`super::error`],
//! and the request bodies the handlers' own structs.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorCode, ErrorItem, TooManyRequests, Unauthorized};
use super::views::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imagehub management API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The JSON management API of imagehub: users, access tokens, organizations and their members, \
repositories and their images, search, DataPacks and the audit log.\n\n\
It takes the same credentials as the registry: HTTP Basic (a user name with the password, or with an access token), \
a registry bearer JWT from `/token`, or an access token (`ihp_…`) as bearer. Calls without credentials act as \
the anonymous user, who sees public repositories only. With accounts off (`auth.enabled = false`) everyone may do \
anything the API offers, as through `/v2`, and the account operations answer 404.\n\n\
Every error answers `{\"errors\":[{\"code\",\"message\",\"detail\"}]}` (`ErrorBody`); `detail` names \
the field, document or repository at fault where there is one. Besides the responses each \
operation lists, any call can answer 500 (`INTERNAL`), and 502 (`UPSTREAM`) when Basic credentials are checked \
by a login webhook that fails."
    ),
    paths(
        super::users::create_user,
        super::users::list_users,
        super::users::get_user,
        super::users::update_user,
        super::users::list_tokens,
        super::users::create_token,
        super::users::revoke_token,
        super::orgs::list_orgs,
        super::orgs::create_org,
        super::orgs::get_org,
        super::orgs::update_org,
        super::orgs::delete_org,
        super::orgs::list_members,
        super::orgs::set_member,
        super::orgs::remove_member,
        super::images::list_repositories,
        super::images::get_repository,
        super::orgs::update_repo,
        super::images::delete_repository,
        super::users::audit,
        super::images::list_images,
        super::images::get_image,
        super::images::edit_image,
        super::images::delete_image,
        super::images::put_readme,
        super::images::run_index,
        super::search::search,
        super::datapacks::create_datapack,
        super::datapacks::get_datapack,
        super::apply::apply,
        super::apply::export,
        super::imports::import_into_org,
        super::imports::import_into_project,
        super::imports::get_job,
        super::builds::create,
        super::builds::list,
        super::builds::get,
        super::builds::cancel,
        super::builds::command,
        super::imports::cancel_job,
        super::imports::job_events,
        super::imports::get_group,
        super::imports::cancel_group,
        super::sync::create_rule,
        super::sync::list_rules,
        super::sync::get_rule,
        super::sync::update_rule,
        super::sync::delete_rule,
        super::sync::run_rule,
        super::sync::list_runs,
        super::imports::list_org_jobs,
        super::imports::list_my_jobs,
        serve,
    ),
    components(
        schemas(
            ErrorBody,
            ErrorItem,
            ErrorCode,
            User,
            UserList,
            super::imports::NewImport,
            super::builds::NewBuild,
            super::builds::BuildJob,
            super::builds::BuildJobs,
            super::imports::UpstreamAuth,
            super::imports::ImportJob,
            super::imports::ImportJobList,
            super::imports::BatchItem,
            super::imports::ImportGroup,
            super::sync::NewSyncRule,
            super::sync::SyncRule,
            super::sync::SyncRuleList,
            super::sync::SyncRun,
            super::sync::SyncRunList,
            AccessToken,
            CreatedAccessToken,
            AccessTokenList,
            Scope,
            AuditEvent,
            AuditLog,
            Org,
            OrgList,
            Role,
            Visibility,
            Member,
            MemberList,
            MemberRole,
            RepositorySettings,
            Repository,
            RepositoryList,
            Image,
            ImageList,
            ImageDetails,
            DetailOrigins,
            super::images::ImageEdit,
            Platform,
            DetailSource,
            IndexRun,
            SearchResults,
            SearchResult,
            DataPack,
            DataPackImage,
            PackKind,
            Applied,
            AppliedDocument,
            ApplyResult,
            super::users::NewUser,
            super::users::UserChange,
            super::users::NewToken,
            super::orgs::NewOrg,
            super::orgs::OrgChange,
            super::orgs::Membership,
            super::orgs::RepoChange,
            super::datapacks::DataPackRequest,
        ),
        responses(Unauthorized, TooManyRequests),
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "users", description = "Accounts: creating users, the caller's own account."),
        (name = "tokens", description = "The caller's access tokens (`ihp_…`), for registry clients and scripts."),
        (name = "orgs", description = "Organizations and their members."),
        (name = "repositories", description = "Repositories of a namespace (an organization or a user's own), their visibility."),
        (name = "images", description = "A repository's images: base info from indexing, merged detail info, README and edits."),
        (name = "search", description = "Searching the repositories the caller may pull."),
        (name = "datapacks", description = "DataPacks: the aggregated info of a list of images in one cacheable answer."),
        (name = "manifests", description = "The seed's imagehub.sealos.io/v1 documents (Image, Repository, Organization, DataPack): apply and export."),
        (name = "imports", description = "Importing images from other registries (Docker Hub, GHCR, any OCI registry) as background jobs."),
        (name = "builds", description = "Cluster images built on the server from the recipes repository (seed 003), and the chat command that starts them."),
        (name = "audit", description = "The audit log."),
        (name = "admin", description = "Operations for site admins."),
        (name = "meta", description = "This document."),
    )
)]
pub struct ApiDoc;

/// Declares the credentials the API takes; operations name the ones they accept (an
/// empty requirement, `{}`, means anonymous calls are answered too).
struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A user name with its password, or with one of the user's access tokens (`ihp_…`). Operations that \
                         manage credentials or organizations need the password.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("registry JWT or ihp_ access token")
                    .description(Some(
                        "A registry JWT from `GET /token`, or an access token (`ihp_…`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3 document of `/api/v1`, generated from the code. Credentials are not looked at.",
    responses((status = 200, description = "The OpenAPI document.", body = Object, content_type = "application/json")),
    security(())
)]
pub async fn serve() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises")
    });
    ([(header::CONTENT_TYPE, "application/json")], document.as_str())
}
