//! Editing an image's details (`/r/{name}/-/{reference}/edit`): a form for the fields
//! people edit most, each showing where its value comes from today and offering to go
//! back to the image's own value; a preview of the docs rendered by the page renderer;
//! the same rules and the same core call as `PATCH /api/v1/…/images/{reference}`.
//! Whoever may pull but not push gets 403; whoever may not pull, the missing-image page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imagehub_auth::Action;
use imagehub_core::{Access, AuditAction, DetailSource, Details, DetailsEdit, ImageView};
use imagehub_oci::RepoName;
use serde::Deserialize;

use super::session::Visitor;
use super::{Chrome, PageError, markdown, render, render_with_status};
use crate::api::ApiState;

/// The fields the form edits (the API edits a few more).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Description,
    Keywords,
    Icon,
    Url,
    Docs,
}

impl Field {
    const ALL: [Field; 5] =
        [Field::Description, Field::Keywords, Field::Icon, Field::Url, Field::Docs];

    /// The form's field name, also the name validation errors use.
    fn name(self) -> &'static str {
        match self {
            Field::Description => "description",
            Field::Keywords => "keywords",
            Field::Icon => "icon",
            Field::Url => "url",
            Field::Docs => "docs",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Field::Description => "Description",
            Field::Keywords => "Keywords",
            Field::Icon => "Icon URL",
            Field::Url => "Project URL",
            Field::Docs => "Documentation (markdown)",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Field::Description => "One or two sentences, at most 1,000 characters.",
            Field::Keywords => "Separated by commas: at most 20, each up to 50 characters.",
            Field::Icon | Field::Url => "An http or https address.",
            Field::Docs => "Shown as the repository's overview.",
        }
    }

    fn multiline(self) -> bool {
        matches!(self, Field::Description | Field::Docs)
    }

    /// The field's value in `details`, as the form shows it.
    fn get(self, details: &Details) -> Option<String> {
        match self {
            Field::Description => details.description.clone(),
            Field::Keywords => details.keywords.as_ref().map(|k| k.join(", ")),
            Field::Icon => details.icon.clone(),
            Field::Url => details.url.clone(),
            Field::Docs => details.docs.clone(),
        }
    }

    /// Records in `edit` what to do with the field: `None` stops editing it.
    fn set(self, edit: &mut DetailsEdit, value: Option<String>) {
        match self {
            Field::Description => edit.description = Some(value),
            Field::Keywords => edit.keywords = Some(value.as_deref().map(keyword_list)),
            Field::Icon => edit.icon = Some(value),
            Field::Url => edit.url = Some(value),
            Field::Docs => edit.docs = Some(value),
        }
    }
}

/// Keywords as a form's field holds them: separated by commas.
pub(super) fn keyword_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect()
}

/// Where a value comes from, as a person reads it.
fn source_label(source: DetailSource) -> &'static str {
    match source {
        DetailSource::Edit => "your edit",
        DetailSource::PushReadme => "the README given at push",
        DetailSource::ImageReadme => "the README in the image",
        DetailSource::Labels => "the image's labels",
    }
}

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage {
    chrome: Chrome,
    name: String,
    reference: String,
    action: String,
    csrf: String,
    fields: Vec<FieldView>,
    /// The docs as they would render, after "Preview".
    preview: Option<String>,
}

struct FieldView {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    multiline: bool,
    value: String,
    /// Where the shown value comes from today; `None` while no source sets it.
    source: Option<&'static str>,
    /// The value without the user's edit, when the edit changes it.
    image_value: Option<String>,
    edited: bool,
    reset: bool,
    problem: Option<String>,
}

/// What the form sends.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EditForm {
    csrf: String,
    description: String,
    keywords: String,
    icon: String,
    url: String,
    docs: String,
    reset_description: Option<String>,
    reset_keywords: Option<String>,
    reset_icon: Option<String>,
    reset_url: Option<String>,
    reset_docs: Option<String>,
    /// `preview` or `save`.
    action: String,
}

impl EditForm {
    fn value(&self, field: Field) -> &str {
        match field {
            Field::Description => &self.description,
            Field::Keywords => &self.keywords,
            Field::Icon => &self.icon,
            Field::Url => &self.url,
            Field::Docs => &self.docs,
        }
    }

    fn reset(&self, field: Field) -> bool {
        match field {
            Field::Description => &self.reset_description,
            Field::Keywords => &self.reset_keywords,
            Field::Icon => &self.reset_icon,
            Field::Url => &self.reset_url,
            Field::Docs => &self.reset_docs,
        }
        .is_some()
    }

    /// The change the form asks for: a field equal to the image's own value, empty, or
    /// reset is not edited, so that the image's value shows (and follows later pushes).
    fn change(&self, image: &ImageView) -> DetailsEdit {
        let unedited = image.unedited();
        let mut edit = DetailsEdit::default();
        for field in Field::ALL {
            let value = self.value(field).trim().replace("\r\n", "\n");
            let own = field.get(&unedited);
            let keep = !self.reset(field) && !value.is_empty() && Some(&value) != own.as_ref();
            field.set(&mut edit, keep.then_some(value));
        }
        edit
    }
}

/// `GET /r/{name}/-/{reference}/edit`.
pub async fn form(
    state: &ApiState,
    visitor: Visitor,
    name: &str,
    reference: &str,
) -> Result<Response, PageError> {
    if state.auth.is_none() {
        return Err(PageError::forbidden(
            "Editing in the browser needs accounts, whose sessions protect the form. \
             Without them, edit through PATCH /api/v1/orgs/…/images/….",
        ));
    }
    if visitor.csrf.is_none() {
        let next = format!("/r/{name}/-/{reference}/edit");
        let login = format!(
            "/login?{}",
            form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish()
        );
        return Ok(Redirect::to(&login).into_response());
    }
    let (repository, image) = editable(state, &visitor, name, reference).await?;
    let fields = Field::ALL
        .iter()
        .map(|&field| field_view(field, &image, field.get(&image.details).unwrap_or_default()))
        .collect();
    Ok(render(&page(&visitor, &repository, reference, fields, None)))
}

/// `POST /r/{name}/-/{reference}/edit`: previews, or saves and shows the repository.
pub async fn save(
    state: &ApiState,
    visitor: Visitor,
    name: &str,
    reference: &str,
    form: EditForm,
) -> Result<Response, PageError> {
    visitor.check_csrf(Some(&form.csrf))?;
    let (repository, image) = editable(state, &visitor, name, reference).await?;
    let shown = |problem: Option<(&str, String)>| -> Vec<FieldView> {
        Field::ALL
            .iter()
            .map(|&field| {
                let mut view = field_view(field, &image, form.value(field).to_string());
                view.reset = form.reset(field);
                if let Some((name, text)) = &problem {
                    view.problem = (*name == field.name()).then(|| text.clone());
                }
                view
            })
            .collect()
    };
    if form.action == "preview" {
        let preview = Some(markdown::render(&form.docs));
        return Ok(render(&page(&visitor, &repository, reference, shown(None), preview)));
    }
    let outcome = state.registry.edit_details(&repository, reference, form.change(&image)).await?;
    if let Err(invalid) = outcome {
        let fields = shown(Some((invalid.field, invalid.problem)));
        let page = page(&visitor, &repository, reference, fields, None);
        return Ok(render_with_status(&page, StatusCode::BAD_REQUEST));
    }
    let target = format!("{repository}:{reference}");
    let namespace = repository.namespace();
    let actor = visitor.caller.name();
    state.accounts.audit(actor, AuditAction::ImageEdit, namespace, Some(&target), None, None).await;
    Ok(Redirect::to(&format!("/r/{repository}")).into_response())
}

/// Where the visitor can edit `image`'s details, if they may: with a session (the
/// form's CSRF protection) and push rights.
pub async fn edit_link(
    state: &ApiState,
    visitor: &Visitor,
    repository: &RepoName,
    image: &ImageView,
) -> Result<Option<String>, PageError> {
    if visitor.csrf.is_none()
        || state.accounts.authorize(&visitor.caller, repository, Action::Push).await?
            != Access::Allowed
    {
        return Ok(None);
    }
    let reference = image.row.tag.as_deref().unwrap_or(&image.row.digest);
    Ok(Some(format!("/r/{repository}/-/{reference}/edit")))
}

/// The repository and image, if the visitor may edit them.
async fn editable(
    state: &ApiState,
    visitor: &Visitor,
    name: &str,
    reference: &str,
) -> Result<(RepoName, ImageView), PageError> {
    let not_found = || PageError::not_found(format!("There is no image {name}:{reference}."));
    let repository: RepoName = name.parse().map_err(|_| not_found())?;
    match state.accounts.authorize(&visitor.caller, &repository, Action::Push).await? {
        Access::Allowed => {}
        Access::Denied => {
            return Err(PageError::forbidden(format!(
                "You may read {repository} but not edit it. Its owners can give you push rights."
            )));
        }
        Access::Hidden => return Err(not_found()),
    }
    let image = state.registry.image(&repository, reference).await?.ok_or_else(not_found)?;
    Ok((repository, image))
}

fn field_view(field: Field, image: &ImageView, value: String) -> FieldView {
    let source = image.sources.iter().find(|(_, d)| field.get(d).is_some()).map(|(s, _)| *s);
    let edited = source == Some(DetailSource::Edit);
    FieldView {
        name: field.name(),
        label: field.label(),
        hint: field.hint(),
        multiline: field.multiline(),
        value,
        source: source.map(source_label),
        image_value: edited.then(|| field.get(&image.unedited()).unwrap_or_default()),
        edited,
        reset: false,
        problem: None,
    }
}

fn page(
    visitor: &Visitor,
    repository: &RepoName,
    reference: &str,
    fields: Vec<FieldView>,
    preview: Option<String>,
) -> EditPage {
    EditPage {
        chrome: visitor.chrome(""),
        name: repository.to_string(),
        reference: reference.to_string(),
        action: format!("/r/{repository}/-/{reference}/edit"),
        csrf: visitor.csrf.clone().unwrap_or_default(),
        fields,
        preview,
    }
}
