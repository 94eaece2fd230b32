//! Content discovery: `GET /v2/<name>/tags/list`, `GET /v2/_catalog` and
//! `GET /v2/<name>/referrers/<digest>`. Listings are read from the database index,
//! sorted, and paginated with `n`/`last` and an RFC 5988 `Link` header.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use imagehub_auth::Scope;
use imagehub_core::{Referrer, RepositoryFilter};
use imagehub_oci::{Digest, media_type};
use serde::Serialize;
use serde_json::Value;

use super::{HandlerResult, V2Request, V2State};
use crate::auth::{Auth, Identity, account_error};
use crate::error::{ApiError, EdgeError};

/// Page size for `_catalog` when the client gives no `n`, as distribution does.
const DEFAULT_CATALOG_PAGE: u32 = 1000;
/// Largest page served for an explicit `n`; a bigger `n` gets this many and a `Link` to
/// the rest. Without `n`, a tag list is complete, as the spec asks.
const MAX_PAGE: u32 = 10_000;
/// "No limit": one less than the largest value, so fetching one more still fits.
const UNLIMITED: u32 = u32::MAX - 1;

#[derive(Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}

#[derive(Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// Pagination parameters: the page size and where the previous page ended.
struct Page {
    n: u32,
    last: Option<String>,
}

impl Page {
    fn from_query(query: &HashMap<String, String>, default_n: u32) -> Result<Page, ApiError> {
        let n = match query.get("n") {
            None => default_n,
            Some(raw) => raw
                .parse::<u32>()
                .map_err(|_| {
                    EdgeError::MalformedQuery(format!("n={raw:?} is not a non-negative integer"))
                })?
                .min(MAX_PAGE),
        };
        Ok(Page { n, last: query.get("last").cloned() })
    }

    /// Runs `fetch` for one more item than the page holds, to learn whether a next page
    /// exists without a second query; returns the page and the `Link` for the next one.
    async fn fetch<F, Fut>(
        &self,
        path: &str,
        fetch: F,
    ) -> Result<(Vec<String>, Option<String>), ApiError>
    where
        F: FnOnce(Option<String>, u32) -> Fut,
        Fut: Future<Output = Result<Vec<String>, imagehub_core::CoreError>>,
    {
        if self.n == 0 {
            return Ok((Vec::new(), None));
        }
        let mut items = fetch(self.last.clone(), self.n + 1).await?;
        let link = if items.len() > self.n as usize {
            items.truncate(self.n as usize);
            items.last().map(|last| {
                format!("<{path}?n={}&last={}>; rel=\"next\"", self.n, encode_query_value(last))
            })
        } else {
            None
        };
        Ok((items, link))
    }
}

/// Percent-encodes a query value; names and tags only need `/` and `+`-free ASCII kept.
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn json_body(body: &impl Serialize, link: Option<String>) -> HandlerResult {
    let json = serde_json::to_vec(body).map_err(|e| ApiError::internal(&e))?;
    json_with_link(Bytes::from(json), link)
}

fn json_with_link(json: Bytes, link: Option<String>) -> HandlerResult {
    let mut response =
        Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    if let Some(link) = link {
        response = response.header(header::LINK, link);
    }
    response.body(json.into()).map_err(|e| ApiError::internal(&e))
}

/// `GET /v2/<name>/tags/list`: every tag, or pages of `n` with a `Link` to the next.
pub async fn list_tags(request: V2Request) -> HandlerResult {
    let (registry, name) = (&request.registry, &request.name);
    if !request.query.contains_key("n") && !request.query.contains_key("last") {
        // The complete list, as most clients ask for it: rendered once per version.
        let tags = registry.all_tags(name).await?;
        let body = tags.rendered(|tags| {
            Bytes::from(
                serde_json::to_vec(&TagList { name: name.as_str(), tags })
                    .expect("tag lists serialise"),
            )
        });
        return json_with_link(body, None);
    }
    let page = Page::from_query(&request.query, UNLIMITED)?;
    let path = format!("/v2/{name}/tags/list");
    let (tags, link) = page
        .fetch(&path, |last, limit| async move {
            registry.list_tags(name, last.as_deref(), limit).await
        })
        .await?;
    if tags.is_empty() && page.n == 0 {
        // n=0 skips the query, so check the repository exists the long way.
        registry.list_tags(name, None, 1).await?;
    }
    json_body(&TagList { name: name.as_str(), tags: &tags }, link)
}

/// `GET /v2/_catalog`: repository names, a page at a time.
/// With accounts on, only what the caller may pull is listed.
pub async fn list_catalog(
    State(state): State<V2State>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: axum::extract::Request,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let (parts, _) = request.into_parts();
    let result = async {
        let filter = match &state.auth {
            None => None,
            Some(auth) => catalog_filter(auth, &parts).await?,
        };
        let page = Page::from_query(&query, DEFAULT_CATALOG_PAGE)?;
        let registry = state.registry.clone();
        let (repositories, link) = page
                .fetch("/v2/_catalog", |last, limit| {
                    let (registry, filter) = (registry.clone(), filter.clone());
                    async move {
                        registry.list_repositories(last.as_deref(), limit, filter.as_ref()).await
                    }
                })
                .await?;
        json_body(&Catalog { repositories: &repositories }, link)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The caller's catalog filter; a bearer token must carry `registry:catalog:*`.
async fn catalog_filter(
    auth: &Auth,
    parts: &axum::http::request::Parts,
) -> Result<Option<RepositoryFilter>, ApiError> {
    let identity = auth.identify(parts).await.map_err(|e| auth.refusal(&parts.headers, e))?;
    if let Identity::Token(claims) = &identity
        && !claims.grants_catalog()
    {
        return Err(auth.challenge(&parts.headers, Some(Scope::Catalog), true));
    }
    let caller = auth.caller(&identity).await.map_err(|e| account_error(&e))?;
    auth.accounts.catalog_filter(&caller).await.map_err(|e| account_error(&e))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrersIndex {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<ReferrerDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerDescriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
}

impl From<Referrer> for ReferrerDescriptor {
    fn from(r: Referrer) -> Self {
        ReferrerDescriptor {
            media_type: r.media_type,
            digest: r.digest,
            size: r.size,
            artifact_type: r.artifact_type,
            annotations: r.annotations_json.and_then(|json| serde_json::from_str(&json).ok()),
        }
    }
}

/// `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is
/// `digest`, filtered by `artifactType` when asked (and then says so in `OCI-Filters-Applied`).
pub async fn list_referrers(request: V2Request, digest: &str) -> HandlerResult {
    let subject: Digest = digest.parse()?;
    let artifact_type = request.query("artifactType").filter(|t| !t.is_empty());
    let referrers = request.registry.referrers(&request.name, &subject, artifact_type).await?;
    let index = ReferrersIndex {
        schema_version: 2,
        media_type: media_type::OCI_INDEX,
        manifests: referrers.into_iter().map(ReferrerDescriptor::from).collect(),
    };
    let json = serde_json::to_vec(&index).map_err(|e| ApiError::internal(&e))?;
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type::OCI_INDEX);
    if artifact_type.is_some() {
        response = response.header("oci-filters-applied", "artifactType");
    }
    response.body(json.into()).map_err(|e| ApiError::internal(&e))
}
