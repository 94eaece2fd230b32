//! Detail info of an image and where each field came from. Sources rank, strongest
//! first: edits by a user, a README given at push, the README in the image, labels.
//! Merging takes each field from the strongest source that has it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where details came from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailSource {
    Edit,
    PushReadme,
    ImageReadme,
    Labels,
}

impl DetailSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DetailSource::Edit => "edit",
            DetailSource::PushReadme => "push_readme",
            DetailSource::ImageReadme => "image_readme",
            DetailSource::Labels => "labels",
        }
    }
}

/// Detail info; every field optional, so that sources can be merged field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<String>,
}

impl Details {
    /// Field by field, the value of the strongest source that has one.
    pub fn merge(mut sources: Vec<(DetailSource, Details)>) -> Details {
        sources.sort_by_key(|(source, _)| *source);
        let mut merged = Details::default();
        for (_, d) in sources {
            merged.docs = merged.docs.or(d.docs);
            merged.keywords = merged.keywords.or(d.keywords);
            merged.icon = merged.icon.or(d.icon);
            merged.description = merged.description.or(d.description);
            merged.url = merged.url.or(d.url);
            merged.documentation = merged.documentation.or(d.documentation);
            merged.source = merged.source.or(d.source);
            merged.title = merged.title.or(d.title);
            merged.vendor = merged.vendor.or(d.vendor);
            merged.licenses = merged.licenses.or(d.licenses);
        }
        merged
    }

    pub fn is_empty(&self) -> bool {
        *self == Details::default()
    }
}

/// Details from OCI labels (a config's `config.Labels`) or manifest annotations, which
/// use the same `org.opencontainers.image.*` keys.
pub fn details_from_labels(labels: &BTreeMap<String, String>) -> Details {
    let get = |key: &str| labels.get(&format!("org.opencontainers.image.{key}")).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    Details {
        description: get("description"),
        url: get("url"),
        documentation: get("documentation"),
        source: get("source"),
        title: get("title"),
        vendor: get("vendor"),
        licenses: get("licenses"),
        ..Details::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_fields() {
        let labels: BTreeMap<String, String> = [
            ("org.opencontainers.image.description", "From labels"),
            ("org.opencontainers.image.url", "https://example.org"),
            ("org.opencontainers.image.licenses", "MIT"),
            ("unrelated", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let d = details_from_labels(&labels);
        assert_eq!(d.description.as_deref(), Some("From labels"));
        assert_eq!(d.licenses.as_deref(), Some("MIT"));
        assert_eq!(d.docs, None);
    }

    #[test]
    fn the_strongest_source_wins_field_by_field() {
        let labels = Details { description: Some("labels".into()), url: Some("https://labels".into()), ..Details::default() };
        let readme = Details { description: Some("readme".into()), docs: Some("docs".into()), ..Details::default() };
        let edit = Details { description: Some("edited".into()), ..Details::default() };
        let merged = Details::merge(vec![(DetailSource::Labels, labels), (DetailSource::Edit, edit), (DetailSource::ImageReadme, readme)]);
        assert_eq!(merged.description.as_deref(), Some("edited"));
        assert_eq!(merged.docs.as_deref(), Some("docs"));
        assert_eq!(merged.url.as_deref(), Some("https://labels"));
    }
}
