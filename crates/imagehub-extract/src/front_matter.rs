//! A README's YAML front matter (`keywords`, `description`, `icon`, `url`) and body.
//! Without a description in the front matter, the first paragraph of the body, as plain
//! text, is the description.

use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde::Deserialize;

use crate::details::Details;

/// Longest description kept from a README's first paragraph.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// A parsed README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readme {
    pub details: Details,
    /// Why the front matter was ignored, if it was.
    pub front_matter_error: Option<String>,
}

#[derive(Deserialize, Default)]
struct FrontMatter {
    #[serde(default)]
    keywords: Option<Keywords>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Keywords as a YAML list or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Keywords {
    List(Vec<String>),
    Text(String),
}

/// Splits and parses a README; `truncated` adds a note that the text was cut.
pub fn parse_readme(text: &str, truncated: bool) -> Readme {
    let (yaml, body) = split_front_matter(text);
    let (front, front_matter_error) = match yaml.map(serde_yaml_ng::from_str::<Option<FrontMatter>>)
    {
        None => (FrontMatter::default(), None),
        Some(Ok(front)) => (front.unwrap_or_default(), None),
        Some(Err(e)) => {
            (FrontMatter::default(), Some(format!("README front matter is not valid YAML: {e}")))
        }
    };
    let mut docs = body.trim_start_matches(['\r', '\n']).to_string();
    if truncated {
        docs.push_str("\n\n---\n*This README was longer than 1 MiB and has been cut off here.*\n");
    }
    let keywords = front.keywords.map(|k| match k {
        Keywords::List(list) => list,
        Keywords::Text(text) => text.split(',').map(str::to_string).collect(),
    });
    let keywords = keywords.map(|k| {
        k.into_iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect::<Vec<_>>()
    });
    let description = nonempty(front.description).or_else(|| first_paragraph(&docs));
    let details = Details {
        docs: Some(docs).filter(|d| !d.trim().is_empty()),
        keywords: keywords.filter(|k| !k.is_empty()),
        description,
        icon: nonempty(front.icon),
        url: nonempty(front.url),
        ..Details::default()
    };
    Readme { details, front_matter_error }
}

/// `(front matter YAML, body)`: front matter is a first line `---` up to a line `---`
/// or `...`.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

/// The first paragraph of markdown as plain text.
fn first_paragraph(markdown: &str) -> Option<String> {
    let mut text = String::new();
    let mut inside = false;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Paragraph) => inside = true,
            Event::End(TagEnd::Paragraph) if inside => break,
            Event::Text(t) | Event::Code(t) if inside => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak if inside => text.push(' '),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(MAX_DESCRIPTION_CHARS).collect();
    Some(text).filter(|t| !t.is_empty())
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_supplies_the_fields_and_the_body_is_the_docs() {
        let text = "---\nkeywords: [database, sql]\ndescription: A database\nicon: https://x/icon.png\nurl: https://x\n---\n# MySQL\n\nBody.\n";
        let readme = parse_readme(text, false);
        assert_eq!(readme.details.keywords, Some(vec!["database".to_string(), "sql".to_string()]));
        assert_eq!(readme.details.description.as_deref(), Some("A database"));
        assert_eq!(readme.details.icon.as_deref(), Some("https://x/icon.png"));
        assert_eq!(readme.details.url.as_deref(), Some("https://x"));
        assert_eq!(readme.details.docs.as_deref(), Some("# MySQL\n\nBody.\n"));
        assert_eq!(readme.front_matter_error, None);
    }

    #[test]
    fn without_front_matter_the_first_paragraph_is_the_description() {
        let readme = parse_readme("# Title\n\nFast **cache** for\n`redis` users.\n\nMore.", false);
        assert_eq!(readme.details.description.as_deref(), Some("Fast cache for redis users."));
        assert_eq!(readme.details.keywords, None);
    }

    #[test]
    fn keywords_may_be_one_string_and_bad_yaml_is_reported() {
        let readme = parse_readme("---\nkeywords: web, proxy ,\n---\nbody", false);
        assert_eq!(readme.details.keywords, Some(vec!["web".to_string(), "proxy".to_string()]));
        let bad = parse_readme("---\nkeywords: [unclosed\n---\nFirst paragraph.", false);
        assert!(bad.front_matter_error.is_some());
        assert_eq!(bad.details.description.as_deref(), Some("First paragraph."));
    }

    #[test]
    fn a_cut_readme_says_so() {
        let readme = parse_readme("text", true);
        assert!(readme.details.docs.unwrap().contains("cut off"));
    }

    #[test]
    fn an_unclosed_front_matter_is_just_text() {
        let readme = parse_readme("---\nnot closed\n", false);
        assert_eq!(readme.front_matter_error, None);
        assert!(readme.details.docs.unwrap().starts_with("---"));
    }
}
