//! Explore (`/`): every repository the visitor may see, the most recently pushed first,
//! or those matching a search (the ranking of `/api/v1/search`), as cards, a page at a
//! time. An empty hub explains how to push the first image to this server.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use imagehub_core::BrowseOrder;

use super::cards::Listing;
use super::session::Visitor;
use super::{Chrome, PageError, host, render};
use crate::api::ApiState;

/// Cards on one page.
const PER_PAGE: u32 = 24;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ExploreQuery {
    q: String,
    keyword: String,
    sort: Sort,
    page: Option<u32>,
}

/// The orders a visitor picks from, as they appear in the URL.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Sort {
    #[default]
    Recent,
    Pulls,
    Name,
}

impl Sort {
    const ALL: [Sort; 3] = [Sort::Recent, Sort::Pulls, Sort::Name];

    fn order(self) -> BrowseOrder {
        match self {
            Sort::Recent => BrowseOrder::Pushed,
            Sort::Pulls => BrowseOrder::Pulls,
            Sort::Name => BrowseOrder::Name,
        }
    }

    fn value(self) -> &'static str {
        match self {
            Sort::Recent => "recent",
            Sort::Pulls => "pulls",
            Sort::Name => "name",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::Recent => "Recently pushed",
            Sort::Pulls => "Most pulled",
            Sort::Name => "Name",
        }
    }
}

#[derive(Template)]
#[template(path = "explore.html")]
struct ExplorePage {
    chrome: Chrome,
    query: String,
    /// The keyword the listing is narrowed to, when not searching.
    keyword: String,
    sort: Sort,
    host: String,
    /// Whether visitors log in (accounts on).
    accounts: bool,
    listing: Listing,
}

/// `GET /?q=…&page=…`, or without `q`: `GET /?keyword=…&sort=recent|pulls|name&page=…`
/// (a search ranks by relevance, so it takes neither).
pub async fn explore(
    State(state): State<ApiState>,
    visitor: Visitor,
    query: Result<Query<ExploreQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let filter = state.accounts.catalog_filter(&visitor.caller).await?;
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    let text = query.q.trim().to_string();
    let keyword = query.keyword.trim().to_string();
    let (hits, total) = match text.is_empty() {
        true => {
            let keyword = Some(keyword.as_str()).filter(|k| !k.is_empty());
            let order = query.sort.order();
            state.registry.browse(filter.as_ref(), keyword, order, page, PER_PAGE).await?
        }
        false => state.registry.search(&text, filter.as_ref(), page, PER_PAGE).await?,
    };
    let link = |page: u32| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        if !text.is_empty() {
            url.append_pair("q", &text);
        } else {
            if !keyword.is_empty() {
                url.append_pair("keyword", &keyword);
            }
            if query.sort != Sort::default() {
                url.append_pair("sort", query.sort.value());
            }
        }
        url.append_pair("page", &page.to_string());
        format!("/?{}", url.finish())
    };
    let page_view = ExplorePage {
        chrome: visitor.chrome(&text),
        host: host(&state, &headers),
        accounts: state.auth.is_some(),
        listing: Listing::new(&hits, total, page, PER_PAGE, link),
        query: text,
        keyword,
        sort: query.sort,
    };
    Ok(render(&page_view))
}
