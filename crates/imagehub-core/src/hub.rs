//! The hub's view of a repository: its images (tags, and digests without tags) with
//! base info and detail info merged from every source.

use imagehub_extract::{DetailSource, Details};
use imagehub_metadata::{DetailRow, ImageRow};
use imagehub_oci::RepoName;

use crate::{CoreError, Registry};

/// An image with its merged details.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub row: ImageRow,
    pub details: Details,
    /// Which sources contributed, strongest first.
    pub sources: Vec<DetailSource>,
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
    pub async fn image(&self, repository: &RepoName, reference: &str) -> Result<Option<ImageView>, CoreError> {
        let Some(row) = self.meta.image(repository.as_str(), reference).await? else { return Ok(None) };
        let mut references = vec![row.digest.as_str()];
        references.extend(row.tag.as_deref());
        let details = self.meta.image_details(repository.as_str(), &references).await?;
        Ok(Some(view(row, &details)))
    }
}

/// Merges the stored details that apply to `row`: image-derived ones by its digest;
/// user-given ones by its tag first, then its digest.
fn view(row: ImageRow, details: &[DetailRow]) -> ImageView {
    let find = |reference: Option<&str>, source: DetailSource| -> Option<Details> {
        let reference = reference?;
        details
            .iter()
            .find(|d| d.reference == reference && d.source == source.as_str())
            .and_then(|d| serde_json::from_str(&d.details_json).ok())
    };
    let mut sources = Vec::new();
    for source in [DetailSource::Edit, DetailSource::PushReadme, DetailSource::ImageReadme, DetailSource::Labels] {
        let user_given = matches!(source, DetailSource::Edit | DetailSource::PushReadme);
        let found = if user_given { find(row.tag.as_deref(), source).or_else(|| find(Some(&row.digest), source)) } else { find(Some(&row.digest), source) };
        if let Some(d) = found {
            sources.push((source, d));
        }
    }
    let used = sources.iter().map(|(s, _)| *s).collect();
    ImageView { details: Details::merge(sources), sources: used, row }
}
