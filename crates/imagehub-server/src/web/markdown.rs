//! READMEs as HTML: markdown rendered by pulldown-cmark, then sanitised by ammonia, so
//! nothing an image's author wrote can run in a visitor's browser: no scripts, no event
//! handlers, no `javascript:` URLs, no styles; links open without the referrer.
//! Headings get `user-content-` anchors (as GitHub's), so links to them work and no id
//! a README chooses can clobber the page's own.

use std::collections::HashMap;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// The prefix of every id a README's HTML may carry.
const ID_PREFIX: &str = "user-content-";

/// `markdown` as safe HTML.
pub fn render(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = with_heading_ids(Parser::new_ext(markdown, options).collect());
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    ammonia::Builder::default()
        .add_tag_attributes("h1", ["id"])
        .add_tag_attributes("h2", ["id"])
        .add_tag_attributes("h3", ["id"])
        .add_tag_attributes("h4", ["id"])
        .add_tag_attributes("h5", ["id"])
        .add_tag_attributes("h6", ["id"])
        .id_prefix(Some(ID_PREFIX))
        .link_rel(Some("nofollow noopener noreferrer"))
        .url_schemes(["http", "https", "mailto"].into())
        .clean(&html)
        .to_string()
}

/// Gives every heading an id from its text (`## Getting started` → `getting-started`),
/// numbered when two headings read the same, unless the markdown set one.
fn with_heading_ids(mut events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { id: None, .. }) = &events[i] {
            let mut text = String::new();
            for event in &events[i + 1..] {
                match event {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => text.push_str(t),
                    _ => {}
                }
            }
            let mut slug = slug(&text);
            let n = seen.entry(slug.clone()).or_insert(0);
            if *n > 0 {
                slug = format!("{slug}-{n}");
            }
            *n += 1;
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(slug));
            }
        }
        i += 1;
    }
    events
}

/// Lower-case letters and digits, words joined by `-`.
fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.trim().chars() {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if (c.is_whitespace() || c == '-') && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_string();
    if slug.is_empty() { "section".to_string() } else { slug }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_in_a_readme_can_run() {
        for hostile in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<svg onload=alert(1)>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<form action=\"https://evil.example\"><input name=q></form>",
        ] {
            let html = render(hostile).to_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "javascript:",
                "<iframe",
                "style=",
                "data:text",
                "<form",
                "<input",
            ] {
                assert!(!html.contains(bad), "{hostile:?} rendered as {html:?}");
            }
        }
    }

    #[test]
    fn markdown_keeps_its_shape() {
        let html = render(
            "# Title\n\n## Getting started\n\n```sh\ndocker run x\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.org)\n\n## Getting started\n",
        );
        assert!(html.contains("<h1 id=\"user-content-title\">Title</h1>"), "{html}");
        assert!(html.contains("id=\"user-content-getting-started\""), "{html}");
        assert!(html.contains("id=\"user-content-getting-started-1\""), "{html}");
        assert!(html.contains("<pre><code>docker run x\n</code></pre>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(
            html.contains("href=\"https://example.org\"")
                && html.contains("rel=\"nofollow noopener noreferrer\""),
            "{html}"
        );
    }

    #[test]
    fn slugs_read_like_the_heading() {
        assert_eq!(slug("Getting Started!"), "getting-started");
        assert_eq!(slug("  v1.2 — notes "), "v12-notes");
        assert_eq!(slug("???"), "section");
    }
}
