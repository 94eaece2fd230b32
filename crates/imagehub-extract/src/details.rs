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

/// A detail a user may not set as given: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidDetail {
    pub field: &'static str,
    pub problem: String,
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

    /// Checks what users may set: URLs are http(s), keywords and texts are bounded.
    pub fn validate(&self) -> Result<(), InvalidDetail> {
        let invalid = |field, problem| Err(InvalidDetail { field, problem });
        for (field, value) in [("icon", &self.icon), ("url", &self.url), ("documentation", &self.documentation), ("source", &self.source)] {
            if let Some(v) = value
                && !(v.starts_with("https://") || v.starts_with("http://"))
            {
                return invalid(field, format!("must be an http:// or https:// URL, not {v:?}"));
            }
        }
        if let Some(keywords) = &self.keywords {
            if keywords.len() > MAX_KEYWORDS {
                return invalid("keywords", format!("at most {MAX_KEYWORDS}, not {}", keywords.len()));
            }
            if let Some(k) = keywords.iter().find(|k| k.trim().is_empty() || k.chars().count() > MAX_KEYWORD_CHARS) {
                return invalid("keywords", format!("each must be 1 to {MAX_KEYWORD_CHARS} characters, not {k:?}"));
            }
        }
        for (field, value, max) in [
            ("description", &self.description, MAX_DESCRIPTION_CHARS),
            ("title", &self.title, MAX_SHORT_CHARS),
            ("vendor", &self.vendor, MAX_SHORT_CHARS),
            ("licenses", &self.licenses, MAX_SHORT_CHARS),
            ("docs", &self.docs, MAX_DOCS_CHARS),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                return invalid(field, format!("at most {max} characters"));
            }
        }
        Ok(())
    }
}

/// Bounds on what users may set.
pub const MAX_KEYWORDS: usize = 20;
pub const MAX_KEYWORD_CHARS: usize = 50;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_SHORT_CHARS: usize = 200;
const MAX_DOCS_CHARS: usize = 1 << 20;

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
    fn validation_names_the_field() {
        let bad_url = Details { icon: Some("javascript:alert(1)".into()), ..Details::default() };
        assert_eq!(bad_url.validate().unwrap_err().field, "icon");
        let many = Details { keywords: Some((0..21).map(|i| i.to_string()).collect()), ..Details::default() };
        assert_eq!(many.validate().unwrap_err().field, "keywords");
        let empty_keyword = Details { keywords: Some(vec![" ".into()]), ..Details::default() };
        assert!(empty_keyword.validate().is_err());
        let long = Details { description: Some("x".repeat(1001)), ..Details::default() };
        assert_eq!(long.validate().unwrap_err().to_string(), "description: at most 1000 characters");
        let fine = Details { url: Some("https://example.org".into()), keywords: Some(vec!["db".into()]), ..Details::default() };
        assert_eq!(fine.validate(), Ok(()));
    }

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
