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

impl std::str::FromStr for DetailSource {
    type Err = String;

    fn from_str(s: &str) -> Result<DetailSource, String> {
        [
            DetailSource::Edit,
            DetailSource::PushReadme,
            DetailSource::ImageReadme,
            DetailSource::Labels,
        ]
        .into_iter()
        .find(|source| source.as_str() == s)
        .ok_or_else(|| {
            format!("detail source {s:?} is not edit, push_readme, image_readme or labels")
        })
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

/// A change to a user's edit: for each field, `None` leaves it as it was, `Some(None)`
/// stops editing it (the README or labels show through again), `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetailsEdit {
    pub docs: Option<Option<String>>,
    pub keywords: Option<Option<Vec<String>>>,
    pub icon: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub url: Option<Option<String>>,
    pub documentation: Option<Option<String>>,
    pub source: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub vendor: Option<Option<String>>,
    pub licenses: Option<Option<String>>,
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

    /// These details (a user's earlier edit) with `edit` applied, field by field.
    pub fn edited(self, edit: DetailsEdit) -> Details {
        fn apply<T>(current: Option<T>, change: Option<Option<T>>) -> Option<T> {
            match change {
                None => current,
                Some(new) => new,
            }
        }
        Details {
            docs: apply(self.docs, edit.docs),
            keywords: apply(self.keywords, edit.keywords),
            icon: apply(self.icon, edit.icon),
            description: apply(self.description, edit.description),
            url: apply(self.url, edit.url),
            documentation: apply(self.documentation, edit.documentation),
            source: apply(self.source, edit.source),
            title: apply(self.title, edit.title),
            vendor: apply(self.vendor, edit.vendor),
            licenses: apply(self.licenses, edit.licenses),
        }
    }

    /// Checks what users may set: URLs are http(s), keywords and texts are bounded.
    pub fn validate(&self) -> Result<(), InvalidDetail> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// The same rules for details an image carries (README front matter, labels): what
    /// fails is dropped rather than refused, and the reasons are returned to be recorded
    /// on the image. Keywords are dropped one by one and cut at [`MAX_KEYWORDS`].
    pub fn sanitized(mut self) -> (Details, Vec<InvalidDetail>) {
        let mut dropped = Vec::new();
        if let Some(keywords) = self.keywords.take() {
            let given = keywords.len();
            let mut kept: Vec<String> = Vec::new();
            for keyword in keywords {
                match keyword_problem(&keyword) {
                    Some(problem) => dropped.push(InvalidDetail { field: "keywords", problem }),
                    None if kept.len() < MAX_KEYWORDS => kept.push(keyword),
                    None => {}
                }
            }
            if given > MAX_KEYWORDS {
                dropped.push(InvalidDetail {
                    field: "keywords",
                    problem: format!("at most {MAX_KEYWORDS} are kept, not {given}"),
                });
            }
            self.keywords = (!kept.is_empty()).then_some(kept);
        }
        // Bounded, so that a hostile image cannot make the record of what was dropped huge.
        dropped.truncate(MAX_KEYWORDS);
        for problem in self.problems() {
            self.clear(problem.field);
            dropped.push(problem);
        }
        (self, dropped)
    }

    /// Every rule the details break, one per field.
    fn problems(&self) -> Vec<InvalidDetail> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("icon", &self.icon),
            ("url", &self.url),
            ("documentation", &self.documentation),
            ("source", &self.source),
        ] {
            if let Some(problem) = value.as_deref().and_then(url_problem) {
                problems.push(InvalidDetail { field, problem });
            }
        }
        if let Some(keywords) = &self.keywords {
            if keywords.len() > MAX_KEYWORDS {
                problems.push(InvalidDetail {
                    field: "keywords",
                    problem: format!("at most {MAX_KEYWORDS}, not {}", keywords.len()),
                });
            } else if let Some(problem) = keywords.iter().find_map(|k| keyword_problem(k)) {
                problems.push(InvalidDetail { field: "keywords", problem });
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
                problems
                    .push(InvalidDetail { field, problem: format!("at most {max} characters") });
            }
        }
        problems
    }

    fn clear(&mut self, field: &str) {
        match field {
            "icon" => self.icon = None,
            "url" => self.url = None,
            "documentation" => self.documentation = None,
            "source" => self.source = None,
            "keywords" => self.keywords = None,
            "description" => self.description = None,
            "title" => self.title = None,
            "vendor" => self.vendor = None,
            "licenses" => self.licenses = None,
            "docs" => self.docs = None,
            other => unreachable!("no detail field {other}"),
        }
    }
}

/// Why `value` is not a URL a page may link to: it must parse as an absolute http(s)
/// URL with a host, and hold nothing that could break out of an HTML attribute or a
/// Markdown link (quotes, angle brackets, backslashes, spaces, control characters).
fn url_problem(value: &str) -> Option<String> {
    let unsafe_char = |c: char| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`')
    };
    if value.len() > MAX_URL_BYTES {
        return Some(format!("a URL of at most {MAX_URL_BYTES} bytes"));
    }
    if let Some(c) = value.chars().find(|c| unsafe_char(*c)) {
        return Some(format!("a URL may not hold {c:?}: {:?}", shorten(value)));
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => None,
        _ => Some(format!("must be an http:// or https:// URL, not {:?}", shorten(value))),
    }
}

fn keyword_problem(keyword: &str) -> Option<String> {
    let bad = keyword.trim().is_empty()
        || keyword.chars().count() > MAX_KEYWORD_CHARS
        || keyword.chars().any(char::is_control);
    bad.then(|| {
        format!("each must be 1 to {MAX_KEYWORD_CHARS} characters, not {:?}", shorten(keyword))
    })
}

/// At most 60 characters of a value, for messages.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// Bounds on what users may set.
pub const MAX_KEYWORDS: usize = 20;
pub const MAX_KEYWORD_CHARS: usize = 50;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_SHORT_CHARS: usize = 200;
const MAX_DOCS_CHARS: usize = 1 << 20;
const MAX_URL_BYTES: usize = 2048;

/// Details from OCI labels (a config's `config.Labels`) or manifest annotations, which
/// use the same `org.opencontainers.image.*` keys.
pub fn details_from_labels(labels: &BTreeMap<String, String>) -> Details {
    let get = |key: &str| {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
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
        let many = Details {
            keywords: Some((0..21).map(|i| i.to_string()).collect()),
            ..Details::default()
        };
        assert_eq!(many.validate().unwrap_err().field, "keywords");
        let empty_keyword = Details { keywords: Some(vec![" ".into()]), ..Details::default() };
        assert!(empty_keyword.validate().is_err());
        let long = Details { description: Some("x".repeat(1001)), ..Details::default() };
        assert_eq!(
            long.validate().unwrap_err().to_string(),
            "description: at most 1000 characters"
        );
        let fine = Details {
            url: Some("https://example.org".into()),
            keywords: Some(vec!["db".into()]),
            ..Details::default()
        };
        assert_eq!(fine.validate(), Ok(()));
    }

    #[track_caller]
    fn check_url(value: &str, ok: bool) {
        assert_eq!(url_problem(value).is_none(), ok, "{value:?}: {:?}", url_problem(value));
    }

    #[test]
    fn urls_are_parsed_not_matched_by_prefix() {
        check_url("https://example.org/a?b=c#d", true);
        check_url("http://localhost:8080/x", true);
        check_url("HTTPS://EXAMPLE.ORG", true);
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://example.org/\" onmouseover=\"alert(1)",
            "https://example.org/'x",
            "https://example.org/<b>",
            "https://exa mple.org",
            "https://example.org/\nx",
            "http:",
            "ftp://example.org",
            "//example.org",
            "example.org",
            "",
        ] {
            check_url(bad, false);
        }
        check_url(&format!("https://example.org/{}", "a".repeat(3000)), false);
    }

    #[test]
    fn hostile_details_are_dropped_field_by_field_with_reasons() {
        let hostile = Details {
            icon: Some("javascript:alert(1)".into()),
            url: Some("https://example.org".into()),
            keywords: Some((0..50_000).map(|i| format!("k{i}")).chain([" ".to_string()]).collect()),
            description: Some("x".repeat(200_000)),
            title: Some("fine".into()),
            ..Details::default()
        };
        let (kept, dropped) = hostile.sanitized();
        assert_eq!(kept.icon, None);
        assert_eq!(kept.url.as_deref(), Some("https://example.org"));
        assert_eq!(kept.keywords.as_ref().map(Vec::len), Some(MAX_KEYWORDS));
        assert_eq!(kept.description, None);
        assert_eq!(kept.title.as_deref(), Some("fine"));
        assert_eq!(kept.validate(), Ok(()), "what is kept passes the edit rules");
        let fields: Vec<&str> = dropped.iter().map(|d| d.field).collect();
        assert!(
            fields.contains(&"icon")
                && fields.contains(&"keywords")
                && fields.contains(&"description"),
            "{dropped:?}"
        );
        assert!(
            dropped.len() <= MAX_KEYWORDS + 10,
            "the record of what was dropped is bounded: {}",
            dropped.len()
        );
    }

    #[test]
    fn an_edit_sets_clears_and_keeps_fields() {
        let earlier = Details {
            description: Some("old".into()),
            url: Some("https://a".into()),
            ..Details::default()
        };
        let edit = DetailsEdit {
            description: Some(Some("new".into())),
            url: Some(None),
            keywords: Some(Some(vec!["db".into()])),
            ..DetailsEdit::default()
        };
        let edited = earlier.clone().edited(edit);
        assert_eq!(edited.description.as_deref(), Some("new"));
        assert_eq!(edited.url, None);
        assert_eq!(edited.keywords, Some(vec!["db".into()]));
        assert_eq!(
            earlier.clone().edited(DetailsEdit::default()),
            earlier,
            "an empty edit changes nothing"
        );
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
        let labels = Details {
            description: Some("labels".into()),
            url: Some("https://labels".into()),
            ..Details::default()
        };
        let readme = Details {
            description: Some("readme".into()),
            docs: Some("docs".into()),
            ..Details::default()
        };
        let edit = Details { description: Some("edited".into()), ..Details::default() };
        let merged = Details::merge(vec![
            (DetailSource::Labels, labels),
            (DetailSource::Edit, edit),
            (DetailSource::ImageReadme, readme),
        ]);
        assert_eq!(merged.description.as_deref(), Some("edited"));
        assert_eq!(merged.docs.as_deref(), Some("docs"));
        assert_eq!(merged.url.as_deref(), Some("https://labels"));
    }
}
