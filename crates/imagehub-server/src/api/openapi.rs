//! The OpenAPI 3 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and served at `/api/v1/openapi.json`.
//!
//! The handlers build their answers with `json!`; the structs in [`schema`] describe that
//! JSON for the document only and are never built. Keep them in step with `user_json`,
//! `token_json`, `org_json`, `repository_json`, `image_json` and the search and DataPack
//! answers.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorCode, ErrorItem, TooManyRequests, Unauthorized};
use schema::*;

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
        serve,
    ),
    components(
        schemas(
            ErrorBody,
            ErrorItem,
            ErrorCode,
            User,
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
            RepositoryVisibility,
            Repository,
            RepositoryList,
            Image,
            ImageList,
            ImageDetails,
            ImageEdit,
            Platform,
            DetailSource,
            IndexRun,
            SearchResults,
            SearchResult,
            DataPack,
            DataPackImage,
            super::users::NewUser,
            super::users::UserChange,
            super::users::NewToken,
            super::orgs::NewOrg,
            super::orgs::OrgChange,
            super::orgs::Membership,
            super::orgs::RepoChange,
            super::datapacks::DataPackSpec,
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

/// Schema-only descriptions of the JSON the handlers build.
#[allow(dead_code)]
pub mod schema {
    use serde::Deserialize;
    use utoipa::{IntoParams, ToSchema};

    /// Path parameters of a namespace's routes.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct NamespacePath {
        /// The namespace: an organization, or a user's own.
        pub org: String,
    }

    /// Path parameters of a repository's routes.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct RepoPath {
        /// The namespace: an organization, or a user's own.
        pub org: String,
        /// The repository name within the namespace, percent-encoded when it has slashes (`team%2Fapp` for `org/team/app`).
        pub repo: String,
    }

    /// Path parameters of an image's routes.
    #[derive(IntoParams)]
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
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct OrgPath {
        /// The organization's name.
        pub org: String,
    }

    /// Path parameters of a membership's routes.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct MemberPath {
        /// The organization's name.
        pub org: String,
        /// The user's name.
        pub user: String,
    }

    /// An account.
    #[derive(ToSchema)]
    pub struct User {
        pub name: String,
        #[schema(required = true)]
        pub email: Option<String>,
        /// Whether the user is a site admin.
        pub admin: bool,
        /// Where the account comes from: `local`, `htpasswd` or `webhook`.
        #[schema(examples("local"))]
        pub source: String,
        #[schema(format = DateTime)]
        pub created_at: String,
    }

    /// What an access token allows.
    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Scope {
        Pull,
        Push,
        Delete,
    }

    /// An access token; its secret is shown only when it is created.
    #[derive(ToSchema)]
    pub struct AccessToken {
        pub id: i64,
        pub name: String,
        pub scopes: Vec<Scope>,
        /// Namespaces the token is limited to; `null` for all.
        #[schema(required = true)]
        pub namespaces: Option<Vec<String>>,
        #[schema(required = true, format = DateTime)]
        pub expires_at: Option<String>,
        #[schema(format = DateTime)]
        pub created_at: String,
        #[schema(required = true, format = DateTime)]
        pub last_used_at: Option<String>,
    }

    /// A new access token with its secret, which is in this answer and nowhere else, ever.
    #[derive(ToSchema)]
    pub struct CreatedAccessToken {
        pub id: i64,
        pub name: String,
        pub scopes: Vec<Scope>,
        #[schema(required = true)]
        pub namespaces: Option<Vec<String>>,
        #[schema(required = true, format = DateTime)]
        pub expires_at: Option<String>,
        #[schema(format = DateTime)]
        pub created_at: String,
        #[schema(required = true, format = DateTime)]
        pub last_used_at: Option<String>,
        /// The secret (`ihp_…`): the password of Basic credentials, or a bearer token.
        pub secret: String,
    }

    #[derive(ToSchema)]
    pub struct AccessTokenList {
        pub tokens: Vec<AccessToken>,
    }

    /// One audit event.
    #[derive(ToSchema)]
    pub struct AuditEvent {
        /// Increasing; pass the last one seen as `before` for the next page.
        pub id: i64,
        #[schema(format = DateTime)]
        pub at: String,
        /// Who did it; `null` for anonymous callers and failed logins.
        #[schema(required = true)]
        pub actor: Option<String>,
        /// `login`, `login.failed`, `user.create`, `user.password`, `token.create`, `token.revoke`, `org.create`,
        /// `org.update`, `org.delete`, `member.set`, `member.remove`, `repository.visibility`, `repository.delete`,
        /// `image.edit`, `image.readme`, `image.delete`, …
        pub action: String,
        #[schema(required = true)]
        pub namespace: Option<String>,
        #[schema(required = true)]
        pub target: Option<String>,
        /// The client's address, where recorded.
        #[schema(required = true)]
        pub client: Option<String>,
        /// More about the event; its shape depends on the action.
        #[schema(required = true, value_type = Option<Object>)]
        pub detail: Option<serde_json::Value>,
    }

    /// Audit events, newest first.
    #[derive(ToSchema)]
    pub struct AuditLog {
        pub events: Vec<AuditEvent>,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Visibility {
        Public,
        Private,
    }

    /// A member's role in an organization.
    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Role {
        Owner,
        Developer,
        Viewer,
    }

    /// An organization.
    #[derive(ToSchema)]
    pub struct Org {
        pub name: String,
        /// The visibility of repositories created in it.
        pub default_visibility: Visibility,
        pub description: String,
        #[schema(format = DateTime)]
        pub created_at: String,
        /// The caller's role; `null` for site admins who are not members.
        #[schema(required = true)]
        pub role: Option<Role>,
    }

    #[derive(ToSchema)]
    pub struct OrgList {
        pub orgs: Vec<Org>,
    }

    #[derive(ToSchema)]
    pub struct Member {
        pub user: String,
        pub role: Role,
        #[schema(format = DateTime)]
        pub added_at: String,
    }

    #[derive(ToSchema)]
    pub struct MemberList {
        pub members: Vec<Member>,
    }

    /// A member's role as now set.
    #[derive(ToSchema)]
    pub struct MemberRole {
        pub user: String,
        pub role: Role,
    }

    /// A repository's visibility as now set.
    #[derive(ToSchema)]
    pub struct RepositoryVisibility {
        /// The full repository name, `org/repo`.
        pub name: String,
        pub visibility: Visibility,
        /// The repository's own description, if set.
        #[schema(required = true)]
        pub description: Option<String>,
    }

    /// A repository with its latest image.
    #[derive(ToSchema)]
    pub struct Repository {
        /// The full repository name, `org/repo`.
        pub name: String,
        pub visibility: Visibility,
        /// The repository's own description, if set.
        #[schema(required = true)]
        pub description: Option<String>,
        /// How many images (tags, and untagged manifests) it has.
        pub images: u64,
        pub pull_count: u64,
        /// The most recently pushed tagged image (or image, if none is tagged); without `details.docs`.
        #[schema(required = true)]
        pub latest: Option<Image>,
    }

    #[derive(ToSchema)]
    pub struct RepositoryList {
        pub namespace: String,
        pub repositories: Vec<Repository>,
    }

    /// One platform of an image (an image manifest has one; an index one per child).
    #[derive(ToSchema)]
    pub struct Platform {
        pub os: String,
        pub architecture: String,
        /// Absent when the platform has none.
        #[schema(nullable = false)]
        pub variant: Option<String>,
        /// Config and layers, in bytes.
        pub size: u64,
    }

    /// Where detail info came from, strongest first.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum DetailSource {
        Edit,
        PushReadme,
        ImageReadme,
        Labels,
    }

    /// Detail info, each field from the strongest source that has it (an edit, a README
    /// given at push, the README in the image, labels); fields no source has are absent.
    #[derive(ToSchema)]
    pub struct ImageDetails {
        /// The README's markdown; only in single-image answers and in DataPacks of type `detail`.
        #[schema(nullable = false)]
        pub docs: Option<String>,
        #[schema(nullable = false)]
        pub keywords: Option<Vec<String>>,
        #[schema(nullable = false)]
        pub icon: Option<String>,
        #[schema(nullable = false)]
        pub description: Option<String>,
        #[schema(nullable = false)]
        pub url: Option<String>,
        #[schema(nullable = false)]
        pub documentation: Option<String>,
        #[schema(nullable = false)]
        pub source: Option<String>,
        #[schema(nullable = false)]
        pub title: Option<String>,
        #[schema(nullable = false)]
        pub vendor: Option<String>,
        #[schema(nullable = false)]
        pub licenses: Option<String>,
        /// The config digest; `null` for an index or before indexing.
        #[schema(required = true)]
        pub id: Option<String>,
        /// The architectures of `platforms`; in image answers, not in DataPacks.
        #[schema(nullable = false)]
        pub arch: Option<Vec<String>>,
    }

    /// A user's edit of an image's details. Fields given replace those of earlier edits;
    /// a field given as `null` is no longer edited.
    #[derive(ToSchema, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ImageEdit {
        /// Markdown.
        pub docs: Option<String>,
        /// At most 20, each 1 to 50 characters.
        pub keywords: Option<Vec<String>>,
        /// An http(s) URL.
        pub icon: Option<String>,
        /// At most 1000 characters.
        pub description: Option<String>,
        /// An http(s) URL.
        pub url: Option<String>,
        /// An http(s) URL.
        pub documentation: Option<String>,
        /// An http(s) URL.
        pub source: Option<String>,
        pub title: Option<String>,
        pub vendor: Option<String>,
        pub licenses: Option<String>,
    }

    /// An image: a tag, or a manifest without a tag.
    #[derive(ToSchema)]
    pub struct Image {
        /// `org/repo:tag`, or `org/repo@digest` for an untagged manifest.
        pub name: String,
        #[schema(required = true)]
        pub tag: Option<String>,
        /// The manifest digest.
        pub digest: String,
        pub media_type: String,
        /// Empty before indexing.
        pub platforms: Vec<Platform>,
        /// In bytes; `null` before indexing.
        #[schema(required = true)]
        pub size: Option<u64>,
        /// From the image config.
        #[schema(required = true)]
        pub created: Option<String>,
        #[schema(format = DateTime)]
        pub pushed_at: String,
        #[schema(required = true)]
        pub pushed_by: Option<String>,
        pub pull_count: u64,
        /// Whether the indexing job has run.
        pub indexed: bool,
        /// What indexing found wrong with the image's content.
        #[schema(required = true)]
        pub index_error: Option<String>,
        pub details: ImageDetails,
        /// The sources that hold details, strongest first; only in single-image answers.
        #[schema(nullable = false)]
        pub detail_sources: Option<Vec<DetailSource>>,
    }

    /// A page of a repository's images (most recently pushed first, or by name);
    /// without `details.docs`.
    #[derive(ToSchema)]
    pub struct ImageList {
        /// The full repository name, `org/repo`.
        pub repository: String,
        /// Images over all pages.
        pub total: u64,
        pub page: u64,
        pub per_page: u64,
        pub images: Vec<Image>,
    }

    /// What a run of the indexing queue did.
    #[derive(ToSchema)]
    pub struct IndexRun {
        /// Jobs run.
        pub ran: u64,
        /// Jobs still due (retries wait).
        pub pending: u64,
    }

    /// A page of search results.
    #[derive(ToSchema)]
    pub struct SearchResults {
        pub query: String,
        pub page: u32,
        pub per_page: u32,
        /// Matching repositories in all pages.
        pub total: u64,
        pub results: Vec<SearchResult>,
    }

    /// A repository found, with info from its latest image.
    #[derive(ToSchema)]
    pub struct SearchResult {
        /// The full repository name, `org/repo`.
        pub name: String,
        #[schema(required = true)]
        pub description: Option<String>,
        pub keywords: Vec<String>,
        #[schema(required = true)]
        pub icon: Option<String>,
        /// The tag of the latest image; `null` when it is untagged.
        #[schema(required = true)]
        pub latest_tag: Option<String>,
        pub platforms: Vec<Platform>,
        #[schema(required = true, format = DateTime)]
        pub pushed_at: Option<String>,
        pub pull_count: u64,
    }

    /// A DataPack's result, computed for the caller when asked.
    #[derive(ToSchema)]
    pub struct DataPack {
        /// `imagehub.sealos.io/v1`.
        #[schema(rename = "apiVersion")]
        pub api_version: String,
        /// `DataPack`.
        pub kind: String,
        /// `dp-` and 32 hex digits: the hash of the normalised spec.
        pub name: String,
        /// `base` or `detail`.
        #[schema(rename = "type")]
        pub kind_of_info: String,
        pub images: Vec<DataPackImage>,
        /// Names that do not exist or that the caller may not pull.
        pub unknown: Vec<String>,
    }

    /// One image of a DataPack.
    #[derive(ToSchema)]
    pub struct DataPackImage {
        /// The name as the spec gives it.
        pub name: String,
        pub digest: String,
        pub media_type: String,
        pub platforms: Vec<Platform>,
        #[schema(required = true)]
        pub size: Option<u64>,
        #[schema(required = true)]
        pub created: Option<String>,
        #[schema(format = DateTime)]
        pub pushed_at: String,
        #[schema(required = true)]
        pub pushed_by: Option<String>,
        /// Only in DataPacks of type `detail`.
        #[schema(nullable = false)]
        pub details: Option<ImageDetails>,
    }
}
