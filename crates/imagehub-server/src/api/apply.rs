//! The seed's manifests (`apiVersion: imagehub.sealos.io/v1`, kinds `Image`,
//! `Repository`, `Organization`, `DataPack`): `POST /api/v1/apply` creates or updates
//! what one or more YAML or JSON documents describe, with the seed webhook's checks and
//! defaults; `GET /api/v1/export?kind=…&org=…` writes the same YAML back, so applying
//! an export changes nothing.
//!
//! An `Image`'s `spec.detail` is the user's edit of that image (the strongest source of
//! details), stored by tag, so details for a tag not pushed yet wait for it.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use imagehub_auth::{Action, Visibility};
use imagehub_core::{Caller, DataPackSpec, DetailSource, Details};
use imagehub_oci::{ImageName, Reference, RepoName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::views::{Applied, AppliedDocument, ApplyResult};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, ok,
};

pub const API_VERSION: &str = "imagehub.sealos.io/v1";
/// Largest body `apply` reads.
pub const MAX_APPLY_BYTES: usize = 4 << 20;
/// Most documents in one `apply`.
const MAX_DOCUMENTS: usize = 1000;

/// One manifest document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

/// `Image.spec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSpec {
    name: String,
    #[serde(default)]
    detail: ImageDetail,
}

/// `Image.spec.detail`, in the seed's field names. `ID` and `arch` are computed from
/// the image, so they are accepted (the seed's examples carry them) but not stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ImageDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    docs: Option<String>,
    #[serde(rename = "ID", default, skip_serializing)]
    id: Option<String>,
    #[serde(default, skip_serializing)]
    arch: Option<String>,
}

impl ImageDetail {
    fn to_details(&self) -> Details {
        Details {
            url: self.url.clone(),
            keywords: self.keywords.clone(),
            description: self.description.clone(),
            icon: self.icon.clone(),
            docs: self.docs.clone(),
            ..Details::default()
        }
    }

    fn from_details(d: &Details) -> ImageDetail {
        ImageDetail {
            url: d.url.clone(),
            keywords: d.keywords.clone(),
            description: d.description.clone(),
            icon: d.icon.clone(),
            docs: d.docs.clone(),
            id: None,
            arch: None,
        }
    }
}

/// `Repository.spec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositorySpec {
    name: String,
    visibility: Visibility,
}

/// `Organization.spec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationSpec {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_visibility: Option<Visibility>,
}

/// `POST /api/v1/apply`: YAML (one or more `---`-separated documents) or JSON (one
/// document or an array). Every document is checked, its validity and the caller's
/// right to make its change, before any is applied, so a bad or forbidden one leaves
/// nothing half-done. (Only a failure of the server itself midway could.)
#[utoipa::path(
    post,
    path = "/api/v1/apply",
    tag = "manifests",
    summary = "Apply imagehub.sealos.io/v1 manifests",
    description = "Creates or updates what `Image`, `Repository`, `Organization` and `DataPack` documents describe \
                   (YAML, `---`-separated, or JSON). An `Image`'s `spec.detail` becomes the edit of `spec.name` \
                   (`org/repo:tag`); `metadata.name` defaults to `spec.name` with `/` and `:` as `.`. Every document is \
                   checked before any is applied.",
    request_body(content = String, content_type = "application/yaml", description = "One or more manifest documents."),
    responses(
        (status = 200, description = "What each document did, in order.", body = Applied),
        (status = 400, description = "A document is invalid; the message names the document and the field.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The caller may not change what a document describes.", body = ErrorBody),
        (status = 409, description = "An organization's name is taken.", body = ErrorBody),
        (status = 413, description = "The body is over 4 MiB.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn apply(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_APPLY_BYTES)
        .await
        .map_err(|_| ApiV1Error::new(ErrorCode::TooLarge, "apply takes at most 4 MiB"))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiV1Error::invalid("the body is not UTF-8 text"))?;
    let applied = apply_manifests(&state, &caller, text).await?;
    ok(StatusCode::OK, Applied { applied })
}

/// Checks every document of `text` (YAML or JSON), then applies them in order: what
/// `POST /api/v1/apply` and the web UI's "Add an image" page do.
pub async fn apply_manifests(
    state: &ApiState,
    caller: &Caller,
    text: &str,
) -> Result<Vec<AppliedDocument>, ApiV1Error> {
    if text.len() > MAX_APPLY_BYTES {
        return Err(ApiV1Error::new(ErrorCode::TooLarge, "apply takes at most 4 MiB"));
    }
    let documents = parse_documents(text)?;
    let mut checked = Vec::with_capacity(documents.len());
    for (i, document) in documents.into_iter().enumerate() {
        checked.push(check(state, caller, document).await.map_err(|e| {
            e.context(&format!("document {}", i + 1)).with_detail("document", i + 1)
        })?);
    }
    let mut results = Vec::with_capacity(checked.len());
    for document in checked {
        results.push(apply_one(state, caller, document).await?);
    }
    Ok(results)
}

/// A document that passed every check, ready to apply.
enum Checked {
    Image { name: String, repository: RepoName, tag: String, details: Box<Details> },
    Repository { name: RepoName, visibility: Visibility },
    Organization { spec: OrganizationSpec },
    DataPack { spec: DataPackSpec },
}

fn parse_documents(text: &str) -> Result<Vec<Document>, ApiV1Error> {
    let trimmed = text.trim_start();
    let documents: Vec<Document> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .map_err(|e| ApiV1Error::invalid(format!("invalid JSON: {e}")))?
    } else if trimmed.starts_with('{') {
        vec![
            serde_json::from_str(trimmed)
                .map_err(|e| ApiV1Error::invalid(format!("invalid JSON: {e}")))?,
        ]
    } else {
        let mut documents = Vec::new();
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let in_document = |e: ApiV1Error| {
                e.context(&format!("document {}", i + 1)).with_detail("document", i + 1)
            };
            let value = serde_yaml_ng::Value::deserialize(document)
                .map_err(|e| in_document(ApiV1Error::invalid(format!("invalid YAML: {e}"))))?;
            if value.is_null() {
                continue; // an empty document between separators
            }
            let document = serde_yaml_ng::from_value(value)
                .map_err(|e| in_document(ApiV1Error::invalid(e.to_string())))?;
            documents.push(document);
        }
        documents
    };
    if documents.is_empty() || documents.len() > MAX_DOCUMENTS {
        return Err(ApiV1Error::invalid(format!("apply takes 1 to {MAX_DOCUMENTS} documents")));
    }
    Ok(documents)
}

async fn check(
    state: &ApiState,
    caller: &Caller,
    document: Document,
) -> Result<Checked, ApiV1Error> {
    if document.api_version != API_VERSION {
        return Err(ApiV1Error::invalid_field(
            "apiVersion",
            format!("must be {API_VERSION}, not {:?}", document.api_version),
        ));
    }
    let field_error =
        |e: serde_path_to_error::Error<serde_json::Error>| match e.path().to_string().as_str() {
            "." => ApiV1Error::invalid_field("spec", e.inner()),
            path => ApiV1Error::invalid_field(&format!("spec.{path}"), e.inner()),
        };
    match document.kind.as_str() {
        "Image" => {
            let spec: ImageSpec =
                serde_path_to_error::deserialize(document.spec).map_err(field_error)?;
            let must_be = || {
                ApiV1Error::invalid_field(
                    "spec.name",
                    format!("{:?} must be org/repo:tag", spec.name),
                )
            };
            let image: ImageName =
                spec.name.parse().map_err(|e| ApiV1Error::invalid_field("spec.name", e))?;
            let (repository, tag) = match image {
                ImageName { repository, reference: Some(Reference::Tag(tag)) }
                    if repository.namespace().is_some() =>
                {
                    (repository, tag)
                }
                _ => return Err(must_be()),
            };
            let expected = metadata_name(&spec.name);
            if let Some(given) = &document.metadata.name
                && *given != expected
            {
                return Err(ApiV1Error::invalid_field(
                    "metadata.name",
                    format!("{given:?} must be {expected:?} (spec.name with '/' and ':' as '.')"),
                ));
            }
            let details = spec.detail.to_details();
            details.validate().map_err(|e| {
                ApiV1Error::invalid_field(&format!("spec.detail.{}", e.field), e.problem)
            })?;
            super::authorize(state, caller, &repository, Action::Push).await?;
            Ok(Checked::Image {
                name: spec.name.clone(),
                repository,
                tag: tag.as_str().to_string(),
                details: Box::new(details),
            })
        }
        "Repository" => {
            let spec: RepositorySpec =
                serde_path_to_error::deserialize(document.spec).map_err(field_error)?;
            let name: RepoName = spec
                .name
                .parse()
                .map_err(|e: imagehub_oci::NameError| ApiV1Error::invalid_field("spec.name", e))?;
            state.accounts.check_repository_settings(caller, &name).await?;
            Ok(Checked::Repository { name, visibility: spec.visibility })
        }
        "Organization" => {
            let spec: OrganizationSpec =
                serde_path_to_error::deserialize(document.spec).map_err(field_error)?;
            spec.name
                .parse::<imagehub_oci::AccountName>()
                .map_err(|e| ApiV1Error::invalid_field("spec.name", e))?;
            if state.auth.is_none() {
                return Err(ApiV1Error::invalid(format!(
                    "{}: organizations need accounts, which are off here (auth.enabled = false)",
                    spec.name
                )));
            }
            state.accounts.check_org_change(caller, &spec.name).await?;
            Ok(Checked::Organization { spec })
        }
        "DataPack" => {
            // Anonymous callers get DataPack results but never store them.
            caller.require_user()?;
            Ok(Checked::DataPack { spec: super::datapacks::checked_spec(document.spec)? })
        }
        other => Err(ApiV1Error::invalid_field(
            "kind",
            format!("{other:?} is not one of Image, Repository, Organization, DataPack"),
        )),
    }
}

async fn apply_one(
    state: &ApiState,
    caller: &Caller,
    document: Checked,
) -> Result<AppliedDocument, ApiV1Error> {
    match document {
        Checked::Image { name, repository, tag, details } => {
            let current = state
                .registry
                .user_details(&repository, &tag, DetailSource::Edit)
                .await
                .map_err(super::internal)?;
            let unchanged =
                current.as_ref() == Some(&*details) || (current.is_none() && details.is_empty());
            if !unchanged {
                state
                    .registry
                    .set_user_details(&repository, &tag, DetailSource::Edit, Some(&details))
                    .await
                    .map_err(super::internal)?;
            }
            Ok(AppliedDocument { kind: "Image", name, result: ApplyResult::changed(!unchanged) })
        }
        Checked::Repository { name, visibility } => {
            let current = state.accounts.visibility_of(&name).await?;
            if current != visibility {
                state.accounts.set_visibility(caller, &name, visibility).await?;
            }
            let result = ApplyResult::changed(current != visibility);
            Ok(AppliedDocument { kind: "Repository", name: name.to_string(), result })
        }
        Checked::Organization { spec } => {
            let existing = match state.accounts.org(caller, &spec.name).await {
                Ok((org, _)) => Some(org),
                Err(imagehub_core::AccountError::NoSuchOrg(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let result = match existing {
                None => {
                    let visibility = spec.default_visibility.unwrap_or(Visibility::Private);
                    state
                        .accounts
                        .create_org(
                            caller,
                            &spec.name,
                            visibility,
                            spec.description.as_deref().unwrap_or(""),
                        )
                        .await?;
                    ApplyResult::Created
                }
                Some(org) => {
                    let same_visibility =
                        spec.default_visibility.is_none_or(|v| v == org.default_visibility);
                    let same_description =
                        spec.description.as_ref().is_none_or(|d| *d == org.description);
                    if same_visibility && same_description {
                        ApplyResult::Unchanged
                    } else {
                        state
                            .accounts
                            .update_org(
                                caller,
                                &spec.name,
                                spec.default_visibility,
                                spec.description.as_deref(),
                            )
                            .await?;
                        ApplyResult::Configured
                    }
                }
            };
            Ok(AppliedDocument { kind: "Organization", name: spec.name, result })
        }
        Checked::DataPack { spec } => {
            let name = super::datapacks::store(state, &spec).await?;
            Ok(AppliedDocument { kind: "DataPack", name, result: ApplyResult::Configured })
        }
    }
}

/// The seed's default `metadata.name`: `labring/mysql:v8.0.25` → `labring.mysql.v8.0.25`.
fn metadata_name(spec_name: &str) -> String {
    spec_name.replace(['/', ':'], ".")
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `Image`, `Repository` or `Organization`.
    kind: String,
    /// The organization (or user namespace).
    org: String,
}

/// `GET /api/v1/export?kind=Image|Repository|Organization&org=NAME`: YAML documents.
#[utoipa::path(
    get,
    path = "/api/v1/export",
    tag = "manifests",
    summary = "Export imagehub.sealos.io/v1 manifests",
    description = "YAML documents for a namespace's images with user edits (pushed or waiting for their tag), its \
                   repositories' visibility, or the organization; applying them changes nothing.",
    params(ExportQuery),
    responses(
        (status = 200, description = "YAML documents.", content_type = "application/yaml", body = String),
        (status = 400, description = "An unknown kind or a missing parameter.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The organization is unknown to the caller.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn export(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    let documents = match query.kind.as_str() {
        "Image" => export_images(&state, &caller, &query.org).await?,
        "Repository" => export_repositories(&state, &caller, &query.org).await?,
        "Organization" => {
            let (org, _) = state.accounts.org(&caller, &query.org).await?;
            let visibility = org.default_visibility;
            let spec = OrganizationSpec {
                name: org.name.clone(),
                description: Some(org.description).filter(|d| !d.is_empty()),
                default_visibility: Some(visibility),
            };
            vec![document("Organization", &org.name, &spec)]
        }
        other => {
            return Err(ApiV1Error::invalid(format!(
                "kind {other:?} is not one of Image, Repository, Organization"
            )));
        }
    };
    let mut yaml = String::new();
    for d in &documents {
        yaml.push_str("---\n");
        yaml.push_str(
            &serde_yaml_ng::to_string(d).map_err(|e| ApiV1Error::invalid(e.to_string()))?,
        );
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"))],
        yaml,
    )
        .into_response())
}

/// Every image of `org` with a user edit (pushed or waiting for its tag) that the
/// caller may pull.
async fn export_images(
    state: &ApiState,
    caller: &Caller,
    org: &str,
) -> Result<Vec<Document>, ApiV1Error> {
    let edits = state.registry.edits_in_namespace(org).await.map_err(super::internal)?;
    let mut documents = Vec::new();
    for (repository, reference, details) in edits {
        let Ok(name) = repository.parse::<RepoName>() else { continue };
        if !state.accounts.repository_actions(caller, &name).await?.contains(Action::Pull)
            || reference.contains(':')
        {
            continue; // not visible, or an edit by digest (Image documents name tags)
        }
        let spec_name = format!("{repository}:{reference}");
        let spec =
            ImageSpec { name: spec_name.clone(), detail: ImageDetail::from_details(&details) };
        documents.push(document("Image", &metadata_name(&spec_name), &spec));
    }
    Ok(documents)
}

async fn export_repositories(
    state: &ApiState,
    caller: &Caller,
    org: &str,
) -> Result<Vec<Document>, ApiV1Error> {
    let filter = state.accounts.catalog_filter(caller).await?;
    let names =
        state.registry.repositories_in(org, filter.as_ref()).await.map_err(super::internal)?;
    let mut documents = Vec::new();
    for name in names {
        let Ok(repository) = name.parse::<RepoName>() else { continue };
        let visibility = state.accounts.visibility_of(&repository).await?;
        documents.push(document(
            "Repository",
            &metadata_name(&name),
            &RepositorySpec { name: name.clone(), visibility },
        ));
    }
    Ok(documents)
}

fn document(kind: &str, name: &str, spec: &impl Serialize) -> Document {
    Document {
        api_version: API_VERSION.to_string(),
        kind: kind.to_string(),
        metadata: Metadata { name: Some(name.to_string()), namespace: None },
        spec: serde_json::to_value(spec).expect("specs serialise"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_follow_the_seed() {
        assert_eq!(metadata_name("labring/mysql:v8.0.25"), "labring.mysql.v8.0.25");
    }

    #[test]
    fn yaml_and_json_documents_parse() {
        let yaml = "apiVersion: imagehub.sealos.io/v1\nkind: Image\nspec:\n  name: a/b:1\n---\n---\napiVersion: imagehub.sealos.io/v1\nkind: DataPack\nspec: {type: base, names: [a/b:1]}\n";
        assert_eq!(parse_documents(yaml).unwrap().len(), 2);
        let json =
            r#"[{"apiVersion":"imagehub.sealos.io/v1","kind":"Image","spec":{"name":"a/b:1"}}]"#;
        assert_eq!(parse_documents(json).unwrap().len(), 1);
        assert!(parse_documents("kind: [").is_err());
        assert!(parse_documents("").is_err());
    }
}
