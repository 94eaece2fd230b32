//! A repository's page (`/r/{name}`): its icon, description, keywords, link and
//! visibility; the README of its latest image, rendered and sanitised (Overview); its
//! tags and untagged images with platforms, sizes, push times and the commands that pull
//! them (Tags). Whoever may not pull the repository gets the page a missing one gets.

use std::collections::HashSet;

use askama::Template;
use axum::Form;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Request};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use imagehub_auth::Action;
use imagehub_core::{Access, ImageView};
use imagehub_oci::RepoName;
use serde::Deserialize;

use super::format::{When, bytes, count, default_icon, now, platform_label, short_digest, when};
use super::session::Visitor;
use super::settings::SettingsView;
use super::{Chrome, PageError, host, markdown, render};
use crate::api::ApiState;
use crate::api::views::Platform;

/// Images on one page of the Tags tab.
const PER_PAGE: usize = 50;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RepositoryQuery {
    tab: Option<String>,
    sort: TagSort,
    page: Option<u32>,
    /// `hide`: leave out per-platform helper tags (`v1-amd64` beside `v1`).
    platform_tags: Option<String>,
}

/// The orders of the Tags tab, as they appear in the URL.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum TagSort {
    #[default]
    Pushed,
    Name,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    name: String,
    href: String,
    icon: Option<String>,
    initials: String,
    hue: u8,
    description: Option<String>,
    keywords: Vec<String>,
    url: Option<String>,
    /// `public` or `private`, with accounts on.
    visibility: Option<&'static str>,
    pulls: String,
    tags_tab: bool,
    settings_tab: bool,
    /// The settings, for those who may change them.
    settings: Option<SettingsView>,
    csrf: String,
    readme: Option<String>,
    images: Vec<ImageRow>,
    image_count: usize,
    /// The Tags tab's order, its links, and its pages.
    by_name: bool,
    sort_by_push: String,
    sort_by_name: String,
    /// Per-platform helper tags: how many, whether hidden, the link that flips it.
    platform_tags: usize,
    hide_platform_tags: bool,
    toggle_platform_tags: String,
    previous: Option<String>,
    next: Option<String>,
    page: usize,
    pages: usize,
    host: String,
    /// What `docker pull` names for the latest image.
    latest: String,
    /// Where to edit the latest image's details, for those who may.
    edit: Option<String>,
}

/// One image as the Tags tab lists it.
struct ImageRow {
    /// The tag, or the short digest of an untagged manifest.
    label: String,
    tagged: bool,
    short_digest: String,
    digest: String,
    platforms: Vec<String>,
    size: Option<String>,
    pushed: When,
    pushed_by: Option<String>,
    pulls: String,
    /// `name:tag` or `name@digest`.
    reference: String,
    /// The image's page.
    href: String,
    /// The tag this one is a per-platform helper of (`v1` for `v1-amd64`).
    platform_tag_of: Option<String>,
}

/// `GET /r/{name}`, and the image pages below it (`/r/{name}/-/{reference}`).
pub async fn repository(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(name): Path<String>,
    query: Result<Query<RepositoryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let Some((name, rest)) = name.split_once("/-/") {
        return match rest.strip_suffix("/edit") {
            Some(reference) => super::edit::form(&state, visitor, name, reference).await,
            None => super::image::image(&state, visitor, name, rest, &headers).await,
        };
    }
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let not_found = || PageError::not_found(format!("There is no repository {name}."));
    let repository: RepoName = name.parse().map_err(|_| not_found())?;
    if state.accounts.authorize(&visitor.caller, &repository, Action::Pull).await?
        != Access::Allowed
    {
        return Err(not_found());
    }
    let settings = super::settings::view(&state, &visitor, &repository).await?;
    let settings_tab = query.tab.as_deref() == Some("settings");
    if settings_tab && settings.is_none() {
        return Err(PageError::forbidden(format!(
            "Only owners of {repository}'s namespace see and change its settings."
        )));
    }
    let images = state.registry.images(&repository).await?;
    let Some(latest) = imagehub_core::latest_image(&images) else { return Err(not_found()) };
    let now = now();
    let tag_names: HashSet<&str> = images.iter().filter_map(|i| i.row.tag.as_deref()).collect();
    let parent_of = |image: &ImageView| {
        image.row.tag.as_deref().and_then(|tag| platform_tag_parent(tag, &tag_names))
    };
    let hide_platform_tags = query.platform_tags.as_deref() == Some("hide");
    let platform_tags = images.iter().filter(|i| parent_of(i).is_some()).count();
    let mut listed: Vec<&ImageView> =
        images.iter().filter(|i| !hide_platform_tags || parent_of(i).is_none()).collect();
    if query.sort == TagSort::Name {
        imagehub_core::sort_images_by_name(&mut listed);
    }
    let pages = listed.len().div_ceil(PER_PAGE).max(1);
    let page = (query.page.unwrap_or(1) as usize).clamp(1, pages);
    let pulls = state.registry.image_pull_counts(&repository).await?;
    let rows = listed
        .iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|image| {
            let pulls = pulls.get(&image.row.digest).copied().unwrap_or(0);
            let mut row = ImageRow::new(&repository, image, pulls, now);
            row.platform_tag_of = parent_of(image).map(str::to_string);
            row
        })
        .collect();
    let tags_link = |sort: TagSort, hide: bool, page: usize| {
        let sort = if sort == TagSort::Name { "&sort=name" } else { "" };
        let hide = if hide { "&platform_tags=hide" } else { "" };
        format!("/r/{repository}?tab=tags{sort}{hide}&page={page}")
    };
    let (sort, hide) = (query.sort, hide_platform_tags);
    let details = &latest.details;
    let (initials, hue) = default_icon(repository.as_str());
    let visibility = match state.auth {
        Some(_) => Some(state.accounts.visibility_of(&repository).await?.as_str()),
        None => None,
    };
    let description = state
        .accounts
        .repository_description(&repository)
        .await?
        .or_else(|| details.description.clone());
    let page = RepositoryPage {
        chrome: visitor.chrome(""),
        name: repository.to_string(),
        href: format!("/r/{repository}"),
        icon: details.icon.clone(),
        initials,
        hue,
        description,
        keywords: details.keywords.clone().unwrap_or_default(),
        url: details.url.clone(),
        visibility,
        pulls: count(state.registry.pull_count(&repository, None).await?),
        tags_tab: query.tab.as_deref() == Some("tags"),
        settings_tab,
        settings,
        csrf: visitor.csrf.clone().unwrap_or_default(),
        readme: details.docs.as_deref().map(markdown::render),
        image_count: images.len(),
        by_name: query.sort == TagSort::Name,
        sort_by_push: tags_link(TagSort::Pushed, hide, 1),
        sort_by_name: tags_link(TagSort::Name, hide, 1),
        toggle_platform_tags: tags_link(sort, !hide, 1),
        hide_platform_tags: hide,
        platform_tags,
        previous: (page > 1).then(|| tags_link(sort, hide, page - 1)),
        next: (page < pages).then(|| tags_link(sort, hide, page + 1)),
        page,
        pages,
        images: rows,
        host: host(&state, &headers),
        latest: ImageRow::reference_of(&repository, latest),
        edit: super::edit::edit_link(&state, &visitor, &repository, latest).await?,
    };
    Ok(render(&page))
}

/// `POST /r/{name}` (settings, deletion) and `POST /r/{name}/-/{reference}/edit`.
pub async fn repository_post(
    State(state): State<ApiState>,
    visitor: Visitor,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    let Some((name, rest)) = name.split_once("/-/") else {
        let Form(form) = form_of(request).await?;
        return super::settings::save(&state, visitor, &name, form).await;
    };
    let Some(reference) = rest.strip_suffix("/edit") else {
        return Err(PageError::not_found("There is nothing to send a form to here."));
    };
    let Form(form) = form_of(request).await?;
    super::edit::save(&state, visitor, name, reference, form).await
}

async fn form_of<T: serde::de::DeserializeOwned>(request: Request) -> Result<Form<T>, PageError> {
    Form::<T>::from_request(request, &()).await.map_err(|e| PageError::bad_request(e.body_text()))
}

/// Architectures that name per-platform helper tags (`v1-amd64`, `v1-linux-arm64`), as
/// multi-arch build scripts push them next to the index.
const ARCHITECTURES: [&str; 14] = [
    "amd64", "arm64", "arm", "armv6", "armv7", "arm64v8", "386", "i386", "ppc64le", "s390x",
    "riscv64", "mips64le", "x86_64", "aarch64",
];

/// The tag `tag` is a per-platform helper of: `v1` for `v1-amd64` or `v1-linux-arm64`
/// when `v1` is a tag too.
fn platform_tag_parent<'t>(tag: &str, tags: &HashSet<&'t str>) -> Option<&'t str> {
    let (parent, arch) = tag.rsplit_once('-')?;
    if !ARCHITECTURES.contains(&arch) {
        return None;
    }
    let parent = parent.strip_suffix("-linux").unwrap_or(parent);
    tags.get(parent).copied()
}

impl ImageRow {
    fn new(repository: &RepoName, image: &ImageView, pulls: u64, now: i64) -> ImageRow {
        let row = &image.row;
        let short_digest = short_digest(&row.digest);
        let platforms = Platform::of(row.info.as_ref())
            .iter()
            .map(|p| platform_label(&p.os, &p.architecture, p.variant.as_deref()))
            .collect();
        ImageRow {
            label: row.tag.clone().unwrap_or_else(|| short_digest.clone()),
            tagged: row.tag.is_some(),
            short_digest,
            digest: row.digest.clone(),
            platforms,
            size: row.info.as_ref().and_then(|i| i.size).map(bytes),
            pushed: when(row.pushed_at, now),
            pushed_by: row.pushed_by.clone(),
            pulls: count(pulls),
            reference: ImageRow::reference_of(repository, image),
            href: format!("/r/{repository}/-/{}", row.tag.as_deref().unwrap_or(&row.digest)),
            platform_tag_of: None,
        }
    }

    fn reference_of(repository: &RepoName, image: &ImageView) -> String {
        match &image.row.tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => format!("{repository}@{}", image.row.digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tags_belong_to_the_tag_they_extend() {
        let tags: HashSet<&str> = ["v1", "v1.2", "latest", "edge-arm64"].into_iter().collect();
        assert_eq!(platform_tag_parent("v1-amd64", &tags), Some("v1"));
        assert_eq!(platform_tag_parent("v1-linux-arm64", &tags), Some("v1"));
        assert_eq!(platform_tag_parent("v1.2-s390x", &tags), Some("v1.2"));
        assert_eq!(platform_tag_parent("v2-amd64", &tags), None, "no v2 tag");
        assert_eq!(platform_tag_parent("v1-beta", &tags), None, "not an architecture");
        assert_eq!(platform_tag_parent("amd64", &tags), None);
    }
}
