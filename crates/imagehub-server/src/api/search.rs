//! `GET /api/v1/search?q=&page=&per_page=`: repositories by name, then keyword, then
//! description and docs, among those the caller may pull.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::views::{SearchResult, SearchResults};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, TooManyRequests, Unauthorized, ok,
};

const DEFAULT_PER_PAGE: u32 = 20;
const MAX_PER_PAGE: u32 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to search for: words matched against repository names, keywords, descriptions and docs; the last
    /// word also matches as a prefix (`redi` finds `redis`).
    #[serde(default)]
    #[param(required = true, min_length = 1)]
    q: String,
    /// The page, from 1 (the default).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page: 1 to 100, 20 by default.
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    summary = "Search repositories",
    description = "Repositories the caller may pull, ranked by name (equal to the query, then starting with it, shorter \
                   first, then containing it), then keyword, then description and docs, the newest repository first \
                   within each of the last three; each with \
                   info from its latest image.",
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of results.", body = SearchResults),
        (status = 400, description = "`q` is missing or empty, an invalid query, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn search(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiV1Error::invalid(e.body_text()))?;
    if query.q.trim().is_empty() {
        return Err(ApiV1Error::invalid("q is empty: say what to search for"));
    }
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE).clamp(1, MAX_PER_PAGE);
    let filter = state.accounts.catalog_filter(&caller).await?;
    let (hits, total) = state
        .registry
        .search(&query.q, filter.as_ref(), page, per_page)
        .await
        .map_err(super::internal)?;
    let results = hits.iter().map(SearchResult::from).collect();
    ok(StatusCode::OK, SearchResults { query: query.q, page, per_page, total, results })
}
