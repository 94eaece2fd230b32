//! DataPacks (seed 001): the aggregated info of a list of images in one answer.
//! `POST /api/v1/datapacks` with `{"type": "base" | "detail", "names": [...]}` stores the
//! normalised spec under its hash and answers the result; `GET /api/v1/datapacks/{name}`
//! answers it again. Results are computed when asked, for the caller (names they may
//! not see are "unknown"), so they change exactly when an image in them changes; the
//! ETag is the hash of the answer, and `If-None-Match` gets a 304 while it holds.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imagehub_auth::Action;
use imagehub_core::{Caller, DataPackSpec};
use imagehub_oci::ImageName;
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest as _;
use utoipa::ToSchema;

use super::views::{DataPack, DataPackImage, PackKind};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, json_body,
};

/// What a DataPack holds: the kind of info, and image names (`org/repo:tag`,
/// `org/repo@digest`, or `org/repo` for its latest image).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataPackRequest {
    /// `base`: base info; `detail`: base info and details.
    #[serde(rename = "type")]
    kind: PackKind,
    /// 1 to 500 image names: `org/repo:tag`, `org/repo@digest`, or `org/repo` for its latest image.
    #[schema(min_items = 1, max_items = 500)]
    names: Vec<String>,
}

impl DataPackRequest {
    /// The spec in normal form (names checked, deduplicated, sorted).
    fn into_spec(self) -> Result<DataPackSpec, ApiV1Error> {
        DataPackSpec::new(self.kind.into(), self.names)
            .map_err(|e| ApiV1Error::invalid(e.to_string()))
    }
}

/// `POST /api/v1/datapacks`.
#[utoipa::path(
    post,
    path = "/api/v1/datapacks",
    tag = "datapacks",
    summary = "Create a DataPack",
    description = "Stores the normalised spec (names deduplicated and sorted) under its hash, and answers the result, \
                   computed for the caller: names that do not exist or that the caller may not pull are `unknown`. \
                   Anonymous callers get the result (200) without anything being stored. Stored DataPacks are a \
                   cache: the least recently used go beyond `datapacks.max_kept`, and unused ones after \
                   `datapacks.max_age_secs`.",
    params(("If-None-Match" = Option<String>, Header, description = "ETags of answers the client holds; a match answers 304.")),
    request_body = DataPackRequest,
    responses(
        (status = 200, description = "The result, for an anonymous caller; nothing was stored.", body = DataPack, headers(("ETag" = String, description = "The hash of the answer; send it back as `If-None-Match`."))),
        (status = 201, description = "The DataPack's result.", body = DataPack, headers(("ETag" = String, description = "The hash of the answer; send it back as `If-None-Match`."))),
        (status = 304, description = "The result still matches `If-None-Match`.", headers(("ETag" = String, description = "The hash of the answer; send it back as `If-None-Match`."))),
        (status = 400, description = "An invalid spec or image name, or a malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn create_datapack(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    request: Request,
) -> ApiResult {
    let headers = request.headers().clone();
    let spec = json_body::<DataPackRequest>(request).await?.into_spec()?;
    // Anonymous callers get the result but store nothing, so they cannot fill the disk;
    // what users store is bounded in number and age.
    if caller.user().is_none() {
        return answer(&state, &caller, &spec.name(), &spec, &headers, StatusCode::OK).await;
    }
    let name = store(&state, &spec).await?;
    answer(&state, &caller, &name, &spec, &headers, StatusCode::CREATED).await
}

/// Checks a spec given as JSON (a `DataPack` document's `spec` in `apply`).
pub(super) fn checked_spec(spec: Value) -> Result<DataPackSpec, ApiV1Error> {
    let request: DataPackRequest =
        serde_json::from_value(spec).map_err(|e| ApiV1Error::invalid(format!("spec: {e}")))?;
    request.into_spec()
}

/// Stores a checked spec; returns the DataPack's name.
pub(super) async fn store(state: &ApiState, spec: &DataPackSpec) -> Result<String, ApiV1Error> {
    state.registry.put_datapack(spec).await.map_err(super::internal)
}

/// `GET /api/v1/datapacks/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/datapacks/{name}",
    tag = "datapacks",
    summary = "Get a DataPack",
    description = "The result of a stored DataPack, computed for the caller now; it changes exactly when an image in \
                   it changes.",
    params(
        ("name" = String, Path, description = "The DataPack's name (`dp-` and 32 hex digits), as its creation answered."),
        ("If-None-Match" = Option<String>, Header, description = "ETags of answers the client holds; a match answers 304."),
    ),
    responses(
        (status = 200, description = "The DataPack's result.", body = DataPack, headers(("ETag" = String, description = "The hash of the answer; send it back as `If-None-Match`."))),
        (status = 304, description = "The result still matches `If-None-Match`.", headers(("ETag" = String, description = "The hash of the answer; send it back as `If-None-Match`."))),
        (status = 400, description = "A malformed Authorization header.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such DataPack.", body = ErrorBody),
        (status = 429, response = TooManyRequests),
    ),
    security(("basic" = []), ("bearer" = []), ())
)]
pub async fn get_datapack(
    State(state): State<ApiState>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let spec = state.registry.datapack(&name).await.map_err(super::internal)?;
    let spec =
        spec.ok_or_else(|| ApiV1Error::new(ErrorCode::NotFound, format!("no DataPack {name:?}")))?;
    answer(&state, &caller, &name, &spec, &headers, StatusCode::OK).await
}

/// The result for `caller`, or 304 when it still matches the client's ETag.
async fn answer(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    spec: &DataPackSpec,
    headers: &HeaderMap,
    status: StatusCode,
) -> ApiResult {
    let mut images = Vec::new();
    let mut unknown = Vec::new();
    for image_name in spec.names() {
        match image_info(state, caller, image_name, spec.kind().into()).await? {
            Some(info) => images.push(info),
            None => unknown.push(image_name.clone()),
        }
    }
    let body = DataPack {
        api_version: "imagehub.sealos.io/v1",
        kind: "DataPack",
        name: name.to_string(),
        info: spec.kind().into(),
        images,
        unknown,
    };
    let bytes = serde_json::to_vec(&body).expect("JSON serialises");
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&bytes))[..32]);
    let matches =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(',').any(|candidate| candidate.trim() == etag || candidate.trim() == "*")
        });
    let etag_value = HeaderValue::from_str(&etag).expect("hex ETags are valid headers");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let mut response: Response =
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes)
            .into_response();
    response.headers_mut().insert(header::ETAG, etag_value);
    Ok(response)
}

/// One image's info, or `None` when it does not exist or the caller may not pull it.
async fn image_info(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    kind: PackKind,
) -> Result<Option<DataPackImage>, ApiV1Error> {
    let ImageName { repository, reference } =
        name.parse().map_err(|e| ApiV1Error::invalid(format!("{name:?}: {e}")))?;
    let actions = state.accounts.repository_actions(caller, &repository).await?;
    if !actions.contains(Action::Pull) {
        return Ok(None);
    }
    let image = match &reference {
        Some(reference) => state
            .registry
            .image(&repository, &reference.to_string())
            .await
            .map_err(super::internal)?,
        None => state.registry.latest_image(&repository).await.map_err(super::internal)?,
    };
    let Some(image) = image else { return Ok(None) };
    Ok(Some(DataPackImage::new(name, &image, kind)))
}
