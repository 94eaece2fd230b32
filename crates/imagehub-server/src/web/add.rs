//! Adding an image (`/new`): the seed's `Image`, `Repository` and `Organization` YAML,
//! pasted or uploaded, or a form giving the details of a tag, pushed or not yet (they
//! wait for it). Both go through `apply_manifests`, the code behind `POST
//! /api/v1/apply`, so they follow its rules: every document checked, rights included,
//! before any is applied. The answer lists what each document created or changed.

use askama::Template;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::edit::keyword_list;
use super::session::Visitor;
use super::{Chrome, PageError, render, render_with_status};
use crate::api::views::{AppliedDocument, ApplyResult};
use crate::api::{API_VERSION, ApiState, ApiV1Error, MAX_APPLY_BYTES, apply_manifests};

#[derive(Template)]
#[template(path = "add.html")]
struct AddPage {
    chrome: Chrome,
    csrf: String,
    problem: Option<String>,
    /// What the visitor sent, shown again with a problem.
    form: AddForm,
    /// What the last apply did, document by document.
    applied: Vec<AppliedLine>,
}

/// The fields of both forms; `intent` tells which was sent.
#[derive(Default)]
struct AddForm {
    csrf: String,
    intent: String,
    yaml: String,
    image: String,
    tag: String,
    description: String,
    keywords: String,
    icon: String,
    url: String,
    docs: String,
}

struct AppliedLine {
    kind: &'static str,
    name: String,
    result: &'static str,
    href: String,
}

/// `GET /new`.
pub async fn form(visitor: Visitor) -> Result<Response, PageError> {
    if visitor.session_user().is_none() {
        return Ok(Redirect::to("/login?next=/new").into_response());
    }
    Ok(render(&page(&visitor, None, AddForm::default(), Vec::new())))
}

/// `POST /new` (multipart, for the upload): `intent` is `yaml` (`yaml` or the uploaded
/// `file`) or `details` (`image`, `tag` and the detail fields).
pub async fn add(
    State(state): State<ApiState>,
    visitor: Visitor,
    request: Request,
) -> Result<Response, PageError> {
    let form = read_form(request, &state).await?;
    visitor.check_csrf(Some(&form.csrf))?;
    if visitor.session_user().is_none() {
        return Err(PageError::forbidden("Log in to add images."));
    }
    let text = match form.intent.as_str() {
        "yaml" if form.yaml.trim().is_empty() => {
            let problem = "Paste the YAML or choose a file.".to_string();
            return Ok(refuse(&visitor, StatusCode::BAD_REQUEST, problem, form));
        }
        "yaml" => form.yaml.clone(),
        "details" => image_document(&form),
        _ => return Err(PageError::bad_request("The form asked for nothing this page does.")),
    };
    match apply_manifests(&state, &visitor.caller, &text).await {
        Ok(applied) => {
            let applied = applied.into_iter().map(AppliedLine::new).collect();
            Ok(render(&page(&visitor, None, AddForm::default(), applied)))
        }
        Err(e) if e.status().is_server_error() => {
            Err(PageError::internal(e.cause().unwrap_or(e.message())))
        }
        Err(e) => Ok(refuse(&visitor, e.status(), problem_of(&e, &form), form)),
    }
}

/// The details form as the one `Image` document it stands for.
fn image_document(form: &AddForm) -> String {
    let mut detail = serde_json::Map::new();
    for (key, value) in [
        ("description", &form.description),
        ("icon", &form.icon),
        ("url", &form.url),
        ("docs", &form.docs),
    ] {
        if !value.trim().is_empty() {
            detail.insert(key.to_string(), json!(value.trim()));
        }
    }
    if !form.keywords.trim().is_empty() {
        detail.insert("keywords".to_string(), json!(keyword_list(&form.keywords)));
    }
    let name = format!("{}:{}", form.image.trim(), form.tag.trim());
    json!({"apiVersion": API_VERSION, "kind": "Image", "spec": {"name": name, "detail": detail}})
        .to_string()
}

/// The apply's error as the visitor should read it: for the details form, in the
/// form's own words rather than the manifest's.
fn problem_of(error: &ApiV1Error, form: &AddForm) -> String {
    let message = error.message();
    if form.intent != "details" {
        return message.to_string();
    }
    let message = message.trim_start_matches("document 1: ");
    match message.strip_prefix("spec.name: ") {
        Some(problem) => format!("Image and tag: {problem}"),
        None => message.strip_prefix("spec.detail.").unwrap_or(message).to_string(),
    }
}

fn refuse(visitor: &Visitor, status: StatusCode, problem: String, form: AddForm) -> Response {
    render_with_status(&page(visitor, Some(problem), form, Vec::new()), status)
}

fn page(
    visitor: &Visitor,
    problem: Option<String>,
    form: AddForm,
    applied: Vec<AppliedLine>,
) -> AddPage {
    AddPage {
        chrome: visitor.chrome(""),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        problem,
        form,
        applied,
    }
}

impl AddPage {
    fn api_version(&self) -> &'static str {
        API_VERSION
    }
}

impl AppliedLine {
    fn new(document: AppliedDocument) -> AppliedLine {
        let href = match document.kind {
            "Image" => match document.name.rsplit_once(':') {
                Some((repository, tag)) => format!("/r/{repository}/-/{tag}"),
                None => format!("/r/{}", document.name),
            },
            "Repository" => format!("/r/{}", document.name),
            "Organization" => format!("/o/{}", document.name),
            _ => String::new(),
        };
        let result = match document.result {
            ApplyResult::Created => "created",
            ApplyResult::Configured => "changed",
            ApplyResult::Unchanged => "unchanged",
        };
        AppliedLine { kind: document.kind, name: document.name, result, href }
    }
}

/// Reads the multipart form, its text fields and an uploaded file, at most
/// [`MAX_APPLY_BYTES`] in all.
async fn read_form(request: Request, state: &ApiState) -> Result<AddForm, PageError> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| PageError::bad_request(e.body_text()))?;
    let mut form = AddForm::default();
    let mut budget = MAX_APPLY_BYTES;
    let too_large = || PageError::too_large(TOO_LARGE);
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            budget = budget.checked_sub(chunk.len()).ok_or_else(too_large)?;
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| PageError::bad_request(format!("The field {name} is not UTF-8 text.")))?;
        let slot = match name.as_str() {
            "csrf" => &mut form.csrf,
            "intent" => &mut form.intent,
            // An uploaded file stands in for the pasted text when one was chosen.
            "yaml" | "file" if value.trim().is_empty() => continue,
            "yaml" | "file" => &mut form.yaml,
            "image" => &mut form.image,
            "tag" => &mut form.tag,
            "description" => &mut form.description,
            "keywords" => &mut form.keywords,
            "icon" => &mut form.icon,
            "url" => &mut form.url,
            "docs" => &mut form.docs,
            _ => continue,
        };
        *slot = value;
    }
    Ok(form)
}

const TOO_LARGE: &str = "The form is over 4 MiB; apply larger sets with the API.";

/// A form that could not be read: too large (the route's body limit), or malformed.
fn unreadable(e: MultipartError) -> PageError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => PageError::too_large(TOO_LARGE),
        _ => PageError::bad_request(e.body_text()),
    }
}
