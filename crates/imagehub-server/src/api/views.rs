//! What `/api/v1` answers: one struct per answer, built by the handlers from the rows
//! and views below them, serialised as is and described by the same derive in the
//! OpenAPI document, so the document is the code (as crates.io's `views.rs` and
//! garage's admin API do). The web UI renders the same structs.
//!
//! Fields a source may not have are either `null` (marked `required`: always present)
//! or absent (marked not `nullable`: skipped when empty), as each field's doc says.

use imagehub_core::accounts::AccessTokenInfo;
use imagehub_core::{ImageInfo, ImageRow, ImageView, OrgRow, UserRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::timestamp;

/// An account.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<&UserRow> for User {
    fn from(user: &UserRow) -> User {
        User {
            name: user.name.clone(),
            email: user.email.clone(),
            admin: user.is_admin,
            source: user.source.as_str().to_string(),
            created_at: timestamp(user.created_at),
        }
    }
}

/// What an access token allows.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Pull,
    Push,
    Delete,
}

impl From<imagehub_auth::Action> for Scope {
    fn from(action: imagehub_auth::Action) -> Scope {
        match action {
            imagehub_auth::Action::Pull => Scope::Pull,
            imagehub_auth::Action::Push => Scope::Push,
            imagehub_auth::Action::Delete => Scope::Delete,
        }
    }
}

/// An access token; its secret is shown only when it is created.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<&AccessTokenInfo> for AccessToken {
    fn from(token: &AccessTokenInfo) -> AccessToken {
        AccessToken {
            id: token.id,
            name: token.name.clone(),
            scopes: token.actions.iter().map(Scope::from).collect(),
            namespaces: token.namespaces.clone(),
            expires_at: token.expires_at.map(timestamp),
            created_at: timestamp(token.created_at),
            last_used_at: token.last_used_at.map(timestamp),
        }
    }
}

/// A new access token with its secret, which is in this answer and nowhere else, ever.
#[derive(Debug, Serialize, ToSchema)]
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

impl CreatedAccessToken {
    pub fn new(token: AccessToken, secret: String) -> CreatedAccessToken {
        let AccessToken { id, name, scopes, namespaces, expires_at, created_at, last_used_at } =
            token;
        CreatedAccessToken {
            id,
            name,
            scopes,
            namespaces,
            expires_at,
            created_at,
            last_used_at,
            secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenList {
    pub tokens: Vec<AccessToken>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Increasing; pass the last one seen as `before` for the next page.
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who did it; `null` for anonymous callers and failed logins.
    #[schema(required = true)]
    pub actor: Option<String>,
    /// `login`, `login.failed`, `login.throttled`, `user.create`, `user.password`,
    /// `token.create`, `token.revoke`, `org.create`, `org.update`, `org.delete`,
    /// `member.set`, `member.remove`, `repository.visibility`, `repository.delete`,
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

impl From<imagehub_core::AuditEvent> for AuditEvent {
    fn from(e: imagehub_core::AuditEvent) -> AuditEvent {
        AuditEvent {
            id: e.id,
            at: timestamp(e.at),
            actor: e.actor,
            action: e.action.as_str().to_string(),
            namespace: e.namespace,
            target: e.target,
            client: e.client,
            detail: e.detail,
        }
    }
}

/// A page of users, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// Audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl From<imagehub_auth::Visibility> for Visibility {
    fn from(visibility: imagehub_auth::Visibility) -> Visibility {
        match visibility {
            imagehub_auth::Visibility::Public => Visibility::Public,
            imagehub_auth::Visibility::Private => Visibility::Private,
        }
    }
}

impl From<Visibility> for imagehub_auth::Visibility {
    fn from(visibility: Visibility) -> imagehub_auth::Visibility {
        match visibility {
            Visibility::Public => imagehub_auth::Visibility::Public,
            Visibility::Private => imagehub_auth::Visibility::Private,
        }
    }
}

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Developer,
    Viewer,
}

impl From<imagehub_auth::Role> for Role {
    fn from(role: imagehub_auth::Role) -> Role {
        match role {
            imagehub_auth::Role::Owner => Role::Owner,
            imagehub_auth::Role::Developer => Role::Developer,
            imagehub_auth::Role::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for imagehub_auth::Role {
    fn from(role: Role) -> imagehub_auth::Role {
        match role {
            Role::Owner => imagehub_auth::Role::Owner,
            Role::Developer => imagehub_auth::Role::Developer,
            Role::Viewer => imagehub_auth::Role::Viewer,
        }
    }
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
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

impl Org {
    pub fn new(org: &OrgRow, role: Option<imagehub_auth::Role>) -> Org {
        Org {
            name: org.name.clone(),
            default_visibility: org.default_visibility.into(),
            description: org.description.clone(),
            created_at: timestamp(org.created_at),
            role: role.map(Role::from),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub orgs: Vec<Org>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user: String,
    pub role: Role,
    #[schema(format = DateTime)]
    pub added_at: String,
}

impl From<&imagehub_core::MemberRow> for Member {
    fn from(member: &imagehub_core::MemberRow) -> Member {
        Member {
            user: member.user.clone(),
            role: member.role.into(),
            added_at: timestamp(member.added_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<Member>,
}

/// A member's role as now set.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRole {
    pub user: String,
    pub role: Role,
}

/// A repository's settings as now set.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositorySettings {
    /// The full repository name, `org/repo`.
    pub name: String,
    pub visibility: Visibility,
    /// The repository's own description, if set.
    #[schema(required = true)]
    pub description: Option<String>,
}

/// A repository with its latest image.
#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryList {
    pub namespace: String,
    pub repositories: Vec<Repository>,
}

/// One platform of an image (an image manifest has one; an index one per child).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Absent when the platform has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub variant: Option<String>,
    /// Config and layers, in bytes.
    pub size: u64,
}

impl Platform {
    /// The platforms indexing found (none before indexing).
    pub fn of(info: Option<&ImageInfo>) -> Vec<Platform> {
        info.and_then(|i| serde_json::from_str(&i.platforms_json).ok()).unwrap_or_default()
    }
}

/// Where detail info came from, strongest first.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetailSource {
    Edit,
    PushReadme,
    ImageReadme,
    Labels,
}

impl From<imagehub_core::DetailSource> for DetailSource {
    fn from(source: imagehub_core::DetailSource) -> DetailSource {
        match source {
            imagehub_core::DetailSource::Edit => DetailSource::Edit,
            imagehub_core::DetailSource::PushReadme => DetailSource::PushReadme,
            imagehub_core::DetailSource::ImageReadme => DetailSource::ImageReadme,
            imagehub_core::DetailSource::Labels => DetailSource::Labels,
        }
    }
}

/// Detail info, each field from the strongest source that has it (an edit, a README
/// given at push, the README in the image, labels); fields no source has are absent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageDetails {
    /// The README's markdown; only in single-image answers and in DataPacks of type `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub docs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub keywords: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub licenses: Option<String>,
    /// The config digest; `null` for an index or before indexing.
    #[schema(required = true)]
    pub id: Option<String>,
    /// The architectures of `platforms`; in image answers, not in DataPacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub arch: Option<Vec<String>>,
}

/// How much of the details an answer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Lists: no docs.
    Summary,
    /// One image: docs, and where details came from.
    Full,
}

impl ImageDetails {
    fn new(image: &ImageView, with_docs: bool, arch: Option<Vec<String>>) -> ImageDetails {
        let d = image.details.clone();
        ImageDetails {
            docs: d.docs.filter(|_| with_docs),
            keywords: d.keywords,
            icon: d.icon,
            description: d.description,
            url: d.url,
            documentation: d.documentation,
            source: d.source,
            title: d.title,
            vendor: d.vendor,
            licenses: d.licenses,
            id: image.row.info.as_ref().and_then(|i| i.config_digest.clone()),
            arch,
        }
    }
}

/// An image: a tag, or a manifest without a tag.
#[derive(Debug, Serialize, ToSchema)]
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
    /// What indexing found wrong with the image's content, and details it dropped.
    #[schema(required = true)]
    pub index_error: Option<String>,
    pub details: ImageDetails,
    /// The sources that hold details, strongest first; only in single-image answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail_sources: Option<Vec<DetailSource>>,
    /// Where each detail shown comes from (the strongest source setting it); only in
    /// single-image answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail_origins: Option<DetailOrigins>,
}

/// For each detail that has a value, the source it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailOrigins {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<DetailSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub keywords: Option<DetailSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub icon: Option<DetailSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub url: Option<DetailSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub docs: Option<DetailSource>,
}

impl DetailOrigins {
    fn of(image: &ImageView) -> DetailOrigins {
        let origin = |has: fn(&imagehub_core::Details) -> bool| {
            image.sources.iter().find(|(_, d)| has(d)).map(|(s, _)| DetailSource::from(*s))
        };
        DetailOrigins {
            description: origin(|d| d.description.is_some()),
            keywords: origin(|d| d.keywords.as_ref().is_some_and(|k| !k.is_empty())),
            icon: origin(|d| d.icon.is_some()),
            url: origin(|d| d.url.is_some()),
            docs: origin(|d| d.docs.is_some()),
        }
    }
}

impl Image {
    /// `image` of repository `name`, pulled `pull_count` times.
    pub fn new(name: &str, image: &ImageView, pull_count: u64, detail: Detail) -> Image {
        let row = &image.row;
        let info = row.info.as_ref();
        let platforms = Platform::of(info);
        let arch = platforms.iter().map(|p| p.architecture.clone()).collect();
        let full = detail == Detail::Full;
        Image {
            name: image_name(name, row),
            tag: row.tag.clone(),
            digest: row.digest.clone(),
            media_type: row.media_type.clone(),
            platforms,
            size: info.and_then(|i| i.size),
            created: info.and_then(|i| i.created.clone()),
            pushed_at: timestamp(row.pushed_at),
            pushed_by: row.pushed_by.clone(),
            pull_count,
            indexed: info.is_some(),
            index_error: info.and_then(|i| i.error.clone()),
            details: ImageDetails::new(image, full, Some(arch)),
            detail_sources: full.then(|| {
                image.sources.iter().map(|(source, _)| DetailSource::from(*source)).collect()
            }),
            detail_origins: full.then(|| DetailOrigins::of(image)),
        }
    }
}

/// `org/repo:tag`, or `org/repo@digest` for a manifest without a tag.
fn image_name(repository: &str, row: &ImageRow) -> String {
    match &row.tag {
        Some(tag) => format!("{repository}:{tag}"),
        None => format!("{repository}@{}", row.digest),
    }
}

/// A page of a repository's images (most recently pushed first, or by name);
/// without `details.docs`.
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexRun {
    /// Jobs run.
    pub ran: u64,
    /// Jobs still due (retries wait).
    pub pending: u64,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub query: String,
    pub page: u32,
    pub per_page: u32,
    /// Matching repositories in all pages.
    pub total: u64,
    pub results: Vec<SearchResult>,
}

/// A repository found, with info from its latest image.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<&imagehub_core::SearchHit> for SearchResult {
    fn from(hit: &imagehub_core::SearchHit) -> SearchResult {
        let latest = hit.latest.as_ref();
        let details = latest.map(|l| &l.details);
        SearchResult {
            name: hit.repository.clone(),
            description: details.and_then(|d| d.description.clone()),
            keywords: details.and_then(|d| d.keywords.clone()).unwrap_or_default(),
            icon: details.and_then(|d| d.icon.clone()),
            latest_tag: latest.and_then(|l| l.row.tag.clone()),
            platforms: Platform::of(latest.and_then(|l| l.row.info.as_ref())),
            pushed_at: latest.map(|l| timestamp(l.row.pushed_at)),
            pull_count: hit.pulls,
        }
    }
}

/// What kind of info a DataPack holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackKind {
    /// Base info.
    Base,
    /// Base info and details.
    Detail,
}

impl From<imagehub_core::PackKind> for PackKind {
    fn from(kind: imagehub_core::PackKind) -> PackKind {
        match kind {
            imagehub_core::PackKind::Base => PackKind::Base,
            imagehub_core::PackKind::Detail => PackKind::Detail,
        }
    }
}

impl From<PackKind> for imagehub_core::PackKind {
    fn from(kind: PackKind) -> imagehub_core::PackKind {
        match kind {
            PackKind::Base => imagehub_core::PackKind::Base,
            PackKind::Detail => imagehub_core::PackKind::Detail,
        }
    }
}

/// A DataPack's result, computed for the caller when asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataPack {
    /// `imagehub.sealos.io/v1`.
    #[serde(rename = "apiVersion")]
    #[schema(rename = "apiVersion")]
    pub api_version: &'static str,
    /// `DataPack`.
    pub kind: &'static str,
    /// `dp-` and 32 hex digits: the hash of the normalised spec.
    pub name: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub info: PackKind,
    pub images: Vec<DataPackImage>,
    /// Names that do not exist or that the caller may not pull.
    pub unknown: Vec<String>,
}

/// One image of a DataPack.
#[derive(Debug, Serialize, ToSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<ImageDetails>,
}

impl DataPackImage {
    /// `image` as a DataPack names it (`name`, as the spec gives it).
    pub fn new(name: &str, image: &ImageView, kind: PackKind) -> DataPackImage {
        let row = &image.row;
        let info = row.info.as_ref();
        DataPackImage {
            name: name.to_string(),
            digest: row.digest.clone(),
            media_type: row.media_type.clone(),
            platforms: Platform::of(info),
            size: info.and_then(|i| i.size),
            created: info.and_then(|i| i.created.clone()),
            pushed_at: timestamp(row.pushed_at),
            pushed_by: row.pushed_by.clone(),
            details: (kind == PackKind::Detail).then(|| ImageDetails::new(image, true, None)),
        }
    }
}

/// What applying one document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplyResult {
    Created,
    Configured,
    Unchanged,
}

impl ApplyResult {
    /// `Configured` when something changed, else `Unchanged`.
    pub fn changed(changed: bool) -> ApplyResult {
        if changed { ApplyResult::Configured } else { ApplyResult::Unchanged }
    }
}

/// One applied document.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedDocument {
    /// `Image`, `Repository`, `Organization` or `DataPack`.
    pub kind: &'static str,
    /// What it names: `org/repo:tag`, `org/repo`, the organization, the DataPack's name.
    pub name: String,
    pub result: ApplyResult,
}

/// What an apply did, document by document, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    pub applied: Vec<AppliedDocument>,
}
