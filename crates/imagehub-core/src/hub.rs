//! The hub's view of a repository: its images (tags, and digests without tags) with
//! base info and detail info merged from every source.

use std::collections::HashMap;

use imagehub_extract::{DetailSource, Details, DetailsEdit, InvalidDetail};
use imagehub_metadata::{
    BrowseOrder, DetailRow, ImageRow, Metadata, RepositoryFilter, SearchDocument,
};
use imagehub_oci::RepoName;

use crate::datapack::DataPackSpec;
use crate::{CoreError, Registry};

/// An image with its merged details.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub row: ImageRow,
    pub details: Details,
    /// Each source's own details, strongest first (what `details` merges).
    pub sources: Vec<(DetailSource, Details)>,
}

impl ImageView {
    /// The details every source but a user's edit gives: what a field shows when it is
    /// not edited.
    pub fn unedited(&self) -> Details {
        Details::merge(
            self.sources.iter().filter(|(s, _)| *s != DetailSource::Edit).cloned().collect(),
        )
    }
}

impl Registry {
    /// The images of a repository, most recently pushed first.
    pub async fn images(&self, repository: &RepoName) -> Result<Vec<ImageView>, CoreError> {
        let rows = self.meta.images(repository.as_str()).await?;
        let mut references: Vec<&str> = rows.iter().map(|r| r.digest.as_str()).collect();
        references.extend(rows.iter().filter_map(|r| r.tag.as_deref()));
        let details = self.meta.image_details(repository.as_str(), &references).await?;
        Ok(rows.into_iter().map(|row| view(row, &details)).collect())
    }

    /// One image by tag or digest.
    pub async fn image(
        &self,
        repository: &RepoName,
        reference: &str,
    ) -> Result<Option<ImageView>, CoreError> {
        let Some(row) = self.meta.image(repository.as_str(), reference).await? else {
            return Ok(None);
        };
        self.with_details(repository, row).await.map(Some)
    }

    /// One image row with its merged details.
    async fn with_details(
        &self,
        repository: &RepoName,
        row: ImageRow,
    ) -> Result<ImageView, CoreError> {
        let mut references = vec![row.digest.as_str()];
        references.extend(row.tag.as_deref());
        let details = self.meta.image_details(repository.as_str(), &references).await?;
        Ok(view(row, &details))
    }
}

/// Orders images by tag name, the images without a tag after them by digest (listings
/// come most recently pushed first otherwise).
pub fn sort_images_by_name<T: std::borrow::Borrow<ImageView>>(images: &mut [T]) {
    images.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        (a.row.tag.is_none(), &a.row.tag, &a.row.digest).cmp(&(
            b.row.tag.is_none(),
            &b.row.tag,
            &b.row.digest,
        ))
    });
}

/// A search hit: the repository, its latest image (most recently pushed tag) and its
/// pulls.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub repository: String,
    pub latest: Option<ImageView>,
    pub pulls: u64,
}

/// Longest query accepted, and most terms used from it.
const MAX_QUERY_CHARS: usize = 200;
const MAX_QUERY_TERMS: usize = 8;

/// A repository's latest image among `images` (listed most recently pushed first): the
/// most recently pushed tag, or the most recent image when none is tagged.
pub fn latest_image(images: &[ImageView]) -> Option<&ImageView> {
    images.iter().find(|i| i.row.tag.is_some()).or(images.first())
}

impl Registry {
    /// The latest image of `repository` (see [`latest_image`]), found without listing
    /// every image: a repository may hold thousands of tags.
    pub async fn latest_image(
        &self,
        repository: &RepoName,
    ) -> Result<Option<ImageView>, CoreError> {
        Ok(self.latest_images(&[repository.to_string()]).await?.remove(repository.as_str()))
    }

    /// The latest images of several repositories with their merged details, by
    /// repository name, in two queries whatever their number.
    async fn latest_images(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, ImageView>, CoreError> {
        let rows = self.meta.latest_images(names).await?;
        let keys: Vec<(String, String)> = rows
            .iter()
            .flat_map(|(name, row)| {
                std::iter::once(&row.digest)
                    .chain(&row.tag)
                    .map(|reference| (name.clone(), reference.clone()))
            })
            .collect();
        let mut details: HashMap<String, Vec<DetailRow>> = HashMap::new();
        for (name, row) in self.meta.image_details_of(&keys).await? {
            details.entry(name).or_default().push(row);
        }
        Ok(rows
            .into_iter()
            .map(|(name, row)| {
                let image = view(row, details.get(&name).map_or(&[], Vec::as_slice));
                (name, image)
            })
            .collect())
    }

    /// Rebuilds the search row of `repository` from its latest image (or drops it when
    /// the repository has no images left).
    pub async fn refresh_search(&self, repository: &RepoName) -> Result<(), CoreError> {
        self.refresh_search_of(&self.meta, [repository.as_str()]).await
    }

    /// Refreshes the search rows of `repositories`, writing them in one transaction
    /// through `meta` (the indexer's relaxed handle).
    pub(crate) async fn refresh_search_of(
        &self,
        meta: &Metadata,
        repositories: impl IntoIterator<Item = &str>,
    ) -> Result<(), CoreError> {
        let names: Vec<String> = repositories.into_iter().map(str::to_string).collect();
        let mut latest = self.latest_images(&names).await?;
        let documents: Vec<(String, Option<SearchDocument>)> = names
            .into_iter()
            .map(|name| {
                let document = latest.remove(&name).map(|i| SearchDocument {
                    keywords: i.details.keywords.unwrap_or_default(),
                    description: i.details.description.unwrap_or_default(),
                    docs: i.details.docs.unwrap_or_default(),
                });
                (name, document)
            })
            .collect();
        Ok(meta.put_search_documents(&documents).await?)
    }

    /// Repositories matching `query`, best first, among those `filter` lets through
    /// (`None`: all); with the total number of matches.
    pub async fn search(
        &self,
        query: &str,
        filter: Option<&RepositoryFilter>,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<SearchHit>, u64), CoreError> {
        let query: String = query.trim().to_lowercase().chars().take(MAX_QUERY_CHARS).collect();
        let terms: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .take(MAX_QUERY_TERMS)
            .map(str::to_string)
            .collect();
        if terms.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        let found = self.meta.search_repositories(&query, &terms, filter, per_page, offset).await?;
        Ok((self.search_hits(found.names).await?, found.total))
    }

    /// Every repository `filter` lets through that holds an image and, with a `keyword`,
    /// lists it, in `order`, a page at a time; with their number.
    pub async fn browse(
        &self,
        filter: Option<&RepositoryFilter>,
        keyword: Option<&str>,
        order: BrowseOrder,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<SearchHit>, u64), CoreError> {
        let keyword = keyword
            .map(|k| k.trim().to_lowercase().chars().take(MAX_QUERY_CHARS).collect::<String>());
        // A keyword without a letter or digit has no token to match: nothing lists it.
        if keyword.as_ref().is_some_and(|k| !k.chars().any(char::is_alphanumeric)) {
            return Ok((Vec::new(), 0));
        }
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        let found = self
            .meta
            .browse_repositories(filter, keyword.as_deref(), order, per_page, offset)
            .await?;
        Ok((self.search_hits(found.names).await?, found.total))
    }

    /// The hits of a page, with three queries for the whole page rather than three per hit.
    async fn search_hits(&self, names: Vec<String>) -> Result<Vec<SearchHit>, CoreError> {
        let mut latest = self.latest_images(&names).await?;
        let pulls: HashMap<String, u64> =
            self.meta.pull_counts(&names).await?.into_iter().collect();
        Ok(names
            .into_iter()
            .map(|name| {
                let pulls =
                    pulls.get(&name).copied().unwrap_or(0) + self.pulls.pending(&name, None);
                SearchHit { latest: latest.remove(&name), repository: name, pulls }
            })
            .collect())
    }
}

impl Registry {
    /// The details a user stored for `reference` of `source` (an edit, or a README
    /// given at push), if any.
    pub async fn user_details(
        &self,
        repository: &RepoName,
        reference: &str,
        source: DetailSource,
    ) -> Result<Option<Details>, CoreError> {
        let rows = self.meta.image_details(repository.as_str(), &[reference]).await?;
        Ok(rows
            .iter()
            .find(|r| r.source == source)
            .and_then(|r| serde_json::from_str(&r.details_json).ok()))
    }

    /// Stores (or with `None`, removes) a user's details for `reference`, and refreshes
    /// the repository's search row.
    pub async fn set_user_details(
        &self,
        repository: &RepoName,
        reference: &str,
        source: DetailSource,
        details: Option<&Details>,
    ) -> Result<(), CoreError> {
        let json = details
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::to_string(d).expect("details serialise"));
        self.meta
            .put_image_details(repository.as_str(), reference, source, json.as_deref())
            .await?;
        self.refresh_search(repository).await
    }

    /// Applies `change` to the user's edit of `reference` and stores it if the result
    /// obeys the rules every edit does (the inner error names the field that does not).
    pub async fn edit_details(
        &self,
        repository: &RepoName,
        reference: &str,
        change: DetailsEdit,
    ) -> Result<Result<(), InvalidDetail>, CoreError> {
        let current =
            self.user_details(repository, reference, DetailSource::Edit).await?.unwrap_or_default();
        let edit = current.edited(change);
        if let Err(invalid) = edit.validate() {
            return Ok(Err(invalid));
        }
        self.set_user_details(repository, reference, DetailSource::Edit, Some(&edit)).await?;
        Ok(Ok(()))
    }

    /// Deletes a repository: its tags, manifests, blob links, details and (by a trigger)
    /// search row. The blobs themselves go at the next garbage collection. Returns
    /// whether it existed.
    pub async fn delete_repository(&self, repository: &RepoName) -> Result<bool, CoreError> {
        let existed = self.meta.delete_repository(repository.as_str()).await?;
        self.tags.invalidate(repository);
        Ok(existed)
    }

    /// The user edits stored for images of `namespace`, pushed or waiting for their tag:
    /// `(repository, reference, details)`.
    pub async fn edits_in_namespace(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, String, Details)>, CoreError> {
        let rows = self.meta.details_in_namespace(namespace, DetailSource::Edit).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(repository, row)| {
                Some((repository, row.reference, serde_json::from_str(&row.details_json).ok()?))
            })
            .collect())
    }

    /// Stores a DataPack spec under its name, which it returns.
    pub async fn put_datapack(&self, spec: &DataPackSpec) -> Result<String, CoreError> {
        let name = spec.name();
        self.meta.put_datapack(&name, &spec.to_json(), self.settings().datapacks.kept).await?;
        Ok(name)
    }

    /// A stored DataPack spec.
    pub async fn datapack(&self, name: &str) -> Result<Option<DataPackSpec>, CoreError> {
        let Some(json) = self.meta.datapack(name).await? else { return Ok(None) };
        let spec = serde_json::from_str(&json).map_err(|e| CoreError::Internal(Box::new(e)))?;
        Ok(Some(spec))
    }

    /// Forgets DataPacks unused for longer than the configured age; returns how many.
    pub async fn prune_datapacks(&self) -> Result<u64, CoreError> {
        let max_age =
            i64::try_from(self.settings().datapacks.max_age.as_secs()).unwrap_or(i64::MAX);
        Ok(self.meta.prune_datapacks(max_age).await?)
    }

    /// The repositories of `namespace` that `filter` lets through (`None`: all), by name.
    pub async fn repositories_in(
        &self,
        namespace: &str,
        filter: Option<&RepositoryFilter>,
    ) -> Result<Vec<String>, CoreError> {
        Ok(self.meta.repositories_in(namespace, filter).await?)
    }
}

/// Merges the stored details that apply to `row`: image-derived ones by its digest;
/// user-given ones by its tag first, then its digest.
fn view(row: ImageRow, details: &[DetailRow]) -> ImageView {
    let find = |reference: Option<&str>, source: DetailSource| -> Option<Details> {
        let reference = reference?;
        details
            .iter()
            .find(|d| d.reference == reference && d.source == source)
            .and_then(|d| serde_json::from_str(&d.details_json).ok())
    };
    let mut sources = Vec::new();
    for source in [
        DetailSource::Edit,
        DetailSource::PushReadme,
        DetailSource::ImageReadme,
        DetailSource::Labels,
    ] {
        let user_given = matches!(source, DetailSource::Edit | DetailSource::PushReadme);
        let found = if user_given {
            find(row.tag.as_deref(), source).or_else(|| find(Some(&row.digest), source))
        } else {
            find(Some(&row.digest), source)
        };
        if let Some(d) = found {
            sources.push((source, d));
        }
    }
    ImageView { details: Details::merge(sources.clone()), sources, row }
}
