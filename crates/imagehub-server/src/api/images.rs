//! `/api/v1/orgs/{org}/repos/{repo}/images[/{ref}]`: a repository's images with their
//! base info and merged detail info; `/api/v1/admin/index` runs the indexing queue now.
//! Only callers who may pull a repository see its images; for anyone else it does not
//! exist.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use imagehub_auth::Action;
use imagehub_core::{AuditAction, Caller, DetailSource, DetailsEdit, ImageView};
use imagehub_oci::{Reference, RepoName};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::double_option;
use super::params::{ImagePath, NamespacePath, RepoPath};
use super::views::{Detail, Image, ImageList, IndexRun, Repository, RepositoryList};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, internal, json_body, ok,
};

/// Largest README accepted at push, as for a README read from an image.
const README_LIMIT: usize = 1 << 20;

/// Fields a user may edit.
const EDITABLE: [&str; 10] = [
    "docs",
    "keywords",
    "icon",
    "description",
    "url",
    "documentation",
    "source",
    "title",
    "vendor",
    "licenses",
];

/// `GET …/images`: most recently pushed first.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/repos/{repo}/images",
    tag = "images",
    summary = "List a repository's images",
    description = "Tags, and manifests without a tag, most recently pushed first; with base info, merged details \
                   (without `docs`) and pulls. Callers who may pull the repository see it.",
    params(RepoPath, ImagesQuery),
    responses(
        (status = 200, description = "The images.", body = ImageList),
        (status = 400, description = "An invalid repository name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such repository, it has no images, or the caller may not pull it.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn list_images(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(RepoPath { org, repo }): Path<RepoPath>,
    query: Result<Query<ImagesQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let name = readable_repository(&state, &caller, &org, &repo).await?;
    let mut images = state.registry.images(&name).await.map_err(internal)?;
    if images.is_empty() {
        return Err(super::repository_not_found(&name));
    }
    match query.sort.as_deref().unwrap_or("pushed") {
        "pushed" => {} // the registry lists them most recent first
        "name" => imagehub_core::sort_images_by_name(&mut images),
        other => {
            return Err(ApiV1Error::invalid(format!(
                "sort {other:?} is neither \"pushed\" nor \"name\""
            )));
        }
    }
    let total = images.len();
    let page = query.page.unwrap_or(1).max(1) as usize;
    let per_page =
        query.per_page.unwrap_or(DEFAULT_IMAGES_PER_PAGE).clamp(1, MAX_IMAGES_PER_PAGE) as usize;
    let pulls = state.registry.image_pull_counts(&name).await.map_err(internal)?;
    let listed = images
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|image| {
            let pulls = pulls.get(&image.row.digest).copied().unwrap_or(0);
            Image::new(name.as_str(), image, pulls, Detail::Summary)
        })
        .collect();
    let (total, page, per_page) = (total as u64, page as u64, per_page as u64);
    ok(
        StatusCode::OK,
        ImageList { repository: name.to_string(), total, page, per_page, images: listed },
    )
}

const DEFAULT_IMAGES_PER_PAGE: u32 = 50;
const MAX_IMAGES_PER_PAGE: u32 = 500;

/// Sorting and paging of an image listing.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImagesQuery {
    /// `pushed` (most recent first, the default) or `name` (tags by name, then untagged).
    sort: Option<String>,
    /// Page number, from 1.
    page: Option<u32>,
    /// Images per page (default 50, at most 500).
    per_page: Option<u32>,
}

/// `GET …/images/{ref}`: `{ref}` is a tag or a digest.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/repos/{repo}/images/{reference}",
    tag = "images",
    summary = "Get an image",
    description = "Base info, merged details with the README (`docs`) and where they came from, and pulls.",
    params(ImagePath),
    responses(
        (status = 200, description = "The image.", body = Image),
        (status = 400, description = "An invalid repository name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such repository or image, or the caller may not pull the repository.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn get_image(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(ImagePath { org, repo, reference }): Path<ImagePath>,
) -> ApiResult {
    let name = readable_repository(&state, &caller, &org, &repo).await?;
    let image = existing_image(&state, &name, &reference).await?;
    ok(StatusCode::OK, image_view(&state, &name, &image, Detail::Full).await?)
}

/// `POST /api/v1/admin/index`: runs the indexing jobs that are due and answers when they
/// are done (site admins; for operators and tests that must not wait on a timer).
#[utoipa::path(
    post,
    path = "/api/v1/admin/index",
    tag = "admin",
    summary = "Run the indexing queue now",
    description = "Runs the indexing jobs that are due and answers when they are done; for operators and tests that \
                   must not wait on a timer. Site admins, with their password (Basic).",
    responses(
        (status = 200, description = "What ran.", body = IndexRun),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not a site admin, or not logged in with the password.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []))
)]
pub async fn run_index(State(state): State<ApiState>, ApiCaller(caller): ApiCaller) -> ApiResult {
    if !caller.is_admin() {
        caller.require_user()?;
        return Err(ApiV1Error::new(
            ErrorCode::Denied,
            "only site admins, with their password, run the indexing queue",
        ));
    }
    let ran = state.registry.run_index_jobs().await.map_err(internal)?;
    let pending = state.registry.pending_index_jobs().await.map_err(internal)?;
    ok(StatusCode::OK, IndexRun { ran: ran as u64, pending })
}

/// `PATCH …/images/{ref}`: a user's edit of the details, the strongest source. Fields
/// given replace those of earlier edits; a field given as `null` is no longer edited
/// (the README or the labels show through again). Needs push.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/repos/{repo}/images/{reference}",
    tag = "images",
    summary = "Edit an image's details",
    description = "A user's edit, the strongest source of details. Fields given replace those of earlier edits; a \
                   field given as `null` is no longer edited (the README or the labels show through again). Needs push.",
    params(ImagePath),
    request_body = ImageEdit,
    responses(
        (status = 200, description = "The image as it now reads.", body = Image),
        (status = 400, description = "An unknown field, an invalid value, an invalid repository name, or a malformed \
                                      Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may pull but not push.", body = ErrorBody),
        (status = 404, description = "No such repository or image, or the caller may not pull the repository.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn edit_image(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(ImagePath { org, repo, reference }): Path<ImagePath>,
    request: Request,
) -> ApiResult {
    let name = repository_for(&state, &caller, &org, &repo, Action::Push).await?;
    let patch: Map<String, Value> = json_body(request).await?;
    if let Some(unknown) = patch.keys().find(|k| !EDITABLE.contains(&k.as_str())) {
        return Err(ApiV1Error::invalid(format!(
            "{unknown:?} is not an editable field ({})",
            EDITABLE.join(", ")
        ))
        .with_detail("field", unknown.as_str()));
    }
    let change: ImageEdit = serde_json::from_value(Value::Object(patch))
        .map_err(|e| ApiV1Error::invalid(format!("invalid details: {e}")))?;
    existing_image(&state, &name, &reference).await?;
    state
        .registry
        .edit_details(&name, &reference, change.into())
        .await
        .map_err(internal)?
        .map_err(|e| ApiV1Error::invalid_field(e.field, e.problem))?;
    audit(&state, &caller, AuditAction::ImageEdit, &name, &reference).await;
    let image = existing_image(&state, &name, &reference).await?;
    ok(StatusCode::OK, image_view(&state, &name, &image, Detail::Full).await?)
}

/// `PUT …/images/{ref}/readme`: a README given at push (markdown, front matter allowed),
/// for images that hold none. Needs push.
#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/repos/{repo}/images/{reference}/readme",
    tag = "images",
    summary = "Give an image a README",
    description = "A README given at push, for images that hold none: markdown, YAML front matter allowed (its fields \
                   set details). It ranks below edits and above the README in the image. Needs push.",
    params(ImagePath),
    request_body(content = String, content_type = "text/markdown", description = "The README: UTF-8 markdown, at most 1 MiB."),
    responses(
        (status = 200, description = "The image as it now reads.", body = Image),
        (status = 400, description = "Not UTF-8, invalid front matter, an invalid repository name, or a malformed \
                                      Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may pull but not push.", body = ErrorBody),
        (status = 404, description = "No such repository or image, or the caller may not pull the repository.", body = ErrorBody),
        (status = 413, description = "The README is larger than 1 MiB.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn put_readme(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(ImagePath { org, repo, reference }): Path<ImagePath>,
    request: Request,
) -> ApiResult {
    let name = repository_for(&state, &caller, &org, &repo, Action::Push).await?;
    existing_image(&state, &name, &reference).await?;
    let body: Bytes = axum::body::to_bytes(request.into_body(), README_LIMIT)
        .await
        .map_err(|_| ApiV1Error::new(ErrorCode::TooLarge, "a README may be at most 1 MiB"))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiV1Error::invalid("the README is not UTF-8 text"))?;
    let readme = imagehub_core::parse_readme(text, false);
    readme.details.validate().map_err(|e| {
        ApiV1Error::invalid_field(e.field, e.problem).context("README front matter")
    })?;
    state
        .registry
        .set_user_details(&name, &reference, DetailSource::PushReadme, Some(&readme.details))
        .await
        .map_err(internal)?;
    audit(&state, &caller, AuditAction::ImageReadme, &name, &reference).await;
    let image = existing_image(&state, &name, &reference).await?;
    ok(StatusCode::OK, image_view(&state, &name, &image, Detail::Full).await?)
}

/// `DELETE …/images/{ref}`: a tag, or a manifest with its tags. Needs delete.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/repos/{repo}/images/{reference}",
    tag = "images",
    summary = "Delete an image",
    description = "A tag (the manifest stays), or a digest: the manifest with its tags. Needs delete.",
    params(ImagePath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "An invalid repository name or reference, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may pull but not delete.", body = ErrorBody),
        (status = 404, description = "No such repository or image, or the caller may not pull the repository.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn delete_image(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(ImagePath { org, repo, reference }): Path<ImagePath>,
) -> ApiResult {
    let name = repository_for(&state, &caller, &org, &repo, Action::Delete).await?;
    let parsed: Reference = reference
        .parse()
        .map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid(e.to_string()))?;
    match state.registry.delete_manifest(&name, &parsed).await {
        Ok(()) => {}
        Err(imagehub_core::CoreError::NameUnknown(_)) => {
            return Err(super::repository_not_found(&name));
        }
        Err(imagehub_core::CoreError::ManifestUnknown(_)) => {
            return Err(no_image(&name, &reference));
        }
        Err(e) => return Err(internal(e)),
    }
    audit(&state, &caller, AuditAction::ImageDelete, &name, &reference).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/repos`: the repositories of a namespace the caller may pull,
/// each with its latest image.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/repos",
    tag = "repositories",
    summary = "List a namespace's repositories",
    description = "The repositories of a namespace (an organization or a user's own) that the caller may pull, each \
                   with its latest image. A namespace without such repositories answers an empty list.",
    params(NamespacePath),
    responses(
        (status = 200, description = "The repositories.", body = RepositoryList),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn list_repositories(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(NamespacePath { org }): Path<NamespacePath>,
) -> ApiResult {
    let filter = state.accounts.catalog_filter(&caller).await?;
    let names = state.registry.repositories_in(&org, filter.as_ref()).await.map_err(internal)?;
    let mut repositories = Vec::with_capacity(names.len());
    for name in names {
        let Ok(repository) = name.parse::<RepoName>() else { continue };
        repositories.push(repository_view(&state, &repository).await?);
    }
    ok(StatusCode::OK, RepositoryList { namespace: org, repositories })
}

/// `GET /api/v1/orgs/{org}/repos/{repo}`.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/repos/{repo}",
    tag = "repositories",
    summary = "Get a repository",
    description = "Its visibility, number of images, pulls and latest image. Callers who may pull it see it.",
    params(RepoPath),
    responses(
        (status = 200, description = "The repository.", body = Repository),
        (status = 400, description = "An invalid repository name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such repository, it has no images, or the caller may not pull it.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn get_repository(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(RepoPath { org, repo }): Path<RepoPath>,
) -> ApiResult {
    let name = repository_for(&state, &caller, &org, &repo, Action::Pull).await?;
    let repository = repository_view(&state, &name).await?;
    if repository.images == 0 {
        return Err(super::repository_not_found(&name));
    }
    ok(StatusCode::OK, repository)
}

/// `DELETE /api/v1/orgs/{org}/repos/{repo}`: every tag and manifest (blobs go to GC).
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/repos/{repo}",
    tag = "repositories",
    summary = "Delete a repository",
    description = "Every tag and manifest; the blobs go to garbage collection. Needs delete.",
    params(RepoPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "An invalid repository name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may pull but not delete.", body = ErrorBody),
        (status = 404, description = "No such repository, it has no images, or the caller may not pull it.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn delete_repository(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(RepoPath { org, repo }): Path<RepoPath>,
) -> ApiResult {
    let name = repository_for(&state, &caller, &org, &repo, Action::Delete).await?;
    if !state.registry.delete_repository(&name).await.map_err(internal)? {
        return Err(super::repository_not_found(&name));
    }
    audit(&state, &caller, AuditAction::RepositoryDelete, &name, "").await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn repository_view(state: &ApiState, name: &RepoName) -> Result<Repository, ApiV1Error> {
    let images = state.registry.images(name).await.map_err(internal)?;
    let latest = match imagehub_core::latest_image(&images) {
        Some(latest) => Some(image_view(state, name, latest, Detail::Summary).await?),
        None => None,
    };
    Ok(Repository {
        name: name.to_string(),
        visibility: state.accounts.visibility_of(name).await?.into(),
        description: state.accounts.repository_description(name).await?,
        images: images.len() as u64,
        pull_count: state.registry.pull_count(name, None).await.map_err(internal)?,
        latest,
    })
}

async fn existing_image(
    state: &ApiState,
    name: &RepoName,
    reference: &str,
) -> Result<ImageView, ApiV1Error> {
    let image = state.registry.image(name, reference).await.map_err(internal)?;
    match image {
        Some(image) => Ok(image),
        None if !state.registry.repository_exists(name).await.map_err(internal)? => {
            Err(super::repository_not_found(name))
        }
        None => Err(no_image(name, reference)),
    }
}

fn no_image(name: &RepoName, reference: &str) -> ApiV1Error {
    ApiV1Error::new(ErrorCode::NotFound, format!("{name} has no image {reference:?}"))
        .with_detail("repository", name.as_str())
        .with_detail("reference", reference)
}

async fn audit(
    state: &ApiState,
    caller: &Caller,
    action: AuditAction,
    name: &RepoName,
    reference: &str,
) {
    let target =
        if reference.is_empty() { name.to_string() } else { format!("{name}:{reference}") };
    state.accounts.audit(caller.name(), action, name.namespace(), Some(&target), None, None).await;
}

/// The repository `{org}/{repo}` if the caller may do `action` to it (see
/// [`super::authorize`] for the answers otherwise).
async fn repository_for(
    state: &ApiState,
    caller: &Caller,
    org: &str,
    repo: &str,
    action: Action,
) -> Result<RepoName, ApiV1Error> {
    let name: RepoName = format!("{org}/{repo}")
        .parse()
        .map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid_field("repository", e))?;
    super::authorize(state, caller, &name, action).await?;
    Ok(name)
}

/// The repository `{org}/{repo}` if the caller may pull it; 404 otherwise.
async fn readable_repository(
    state: &ApiState,
    caller: &Caller,
    org: &str,
    repo: &str,
) -> Result<RepoName, ApiV1Error> {
    repository_for(state, caller, org, repo, Action::Pull).await
}

/// An image of `name` with its pulls.
async fn image_view(
    state: &ApiState,
    name: &RepoName,
    image: &ImageView,
    detail: Detail,
) -> Result<Image, ApiV1Error> {
    let pulls = state.registry.pull_count(name, Some(&image.row.digest)).await.map_err(internal)?;
    Ok(Image::new(name.as_str(), image, pulls, detail))
}

/// A user's edit of an image's details. Fields given replace those of earlier edits; a
/// field given as `null` is no longer edited.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageEdit {
    /// Markdown.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    docs: Option<Option<String>>,
    /// At most 20, each 1 to 50 characters.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    keywords: Option<Option<Vec<String>>>,
    /// An http(s) URL.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    icon: Option<Option<String>>,
    /// At most 1000 characters.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    url: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    documentation: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    source: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    title: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    vendor: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    licenses: Option<Option<String>>,
}

impl From<ImageEdit> for DetailsEdit {
    fn from(e: ImageEdit) -> DetailsEdit {
        DetailsEdit {
            docs: e.docs,
            keywords: e.keywords,
            icon: e.icon,
            description: e.description,
            url: e.url,
            documentation: e.documentation,
            source: e.source,
            title: e.title,
            vendor: e.vendor,
            licenses: e.licenses,
        }
    }
}
