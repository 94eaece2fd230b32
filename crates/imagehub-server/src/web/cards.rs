//! Repositories as cards, a page at a time: the lists of explore and of an
//! organization's page (`templates/cards.html` and `templates/pager.html`).

use imagehub_core::SearchHit;

use super::format::{When, count, default_icon, now, platform_label, when_rfc3339};
use crate::api::views::SearchResult;

/// One page of a list of repositories.
pub struct Listing {
    pub cards: Vec<Card>,
    /// Repositories in the whole list.
    pub total: u64,
    pub page: u32,
    pub pages: u32,
    pub previous: Option<String>,
    pub next: Option<String>,
}

impl Listing {
    /// Page `page` of `total` repositories, `per_page` to a page, holding `hits`;
    /// `link` writes the address of another page.
    pub fn new(
        hits: &[SearchHit],
        total: u64,
        page: u32,
        per_page: u32,
        link: impl Fn(u32) -> String,
    ) -> Listing {
        let now = now();
        let pages = u32::try_from(total.div_ceil(u64::from(per_page))).unwrap_or(u32::MAX).max(1);
        Listing {
            cards: hits.iter().map(|hit| Card::new(SearchResult::from(hit), now)).collect(),
            total,
            page,
            pages,
            previous: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

/// One repository as a card shows it.
pub struct Card {
    pub name: String,
    pub href: String,
    pub icon: Option<String>,
    pub initials: String,
    pub hue: u8,
    pub description: Option<String>,
    pub keywords: Vec<String>,
    pub latest_tag: Option<String>,
    pub platforms: Vec<String>,
    pub pulls: String,
    pub pushed: Option<When>,
}

impl Card {
    pub fn new(result: SearchResult, now: i64) -> Card {
        let (initials, hue) = default_icon(&result.name);
        let mut platforms: Vec<String> = result
            .platforms
            .iter()
            .map(|p| platform_label(&p.os, &p.architecture, p.variant.as_deref()))
            .collect();
        platforms.dedup();
        let pushed = result.pushed_at.as_deref().and_then(|at| when_rfc3339(at, now));
        Card {
            href: format!("/r/{}", result.name),
            name: result.name,
            icon: result.icon,
            initials,
            hue,
            description: result.description,
            keywords: result.keywords,
            latest_tag: result.latest_tag,
            platforms,
            pulls: count(result.pull_count),
            pushed,
        }
    }
}
