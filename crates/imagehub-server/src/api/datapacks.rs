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
use imagehub_core::Caller;
use imagehub_oci::{Digest, RepoName, Tag};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use utoipa::ToSchema;

use super::views::{DataPack, DataPackImage, PackKind};
use super::{
    ApiCaller, ApiResult, ApiState, ApiV1Error, ErrorBody, ErrorCode, TooManyRequests,
    Unauthorized, json_body,
};

/// Most names in one DataPack.
const MAX_NAMES: usize = 500;

/// What a DataPack holds: the kind of info, and image names (`org/repo:tag`,
/// `org/repo@digest`, or `org/repo` for its latest image).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataPackSpec {
    /// `base`: base info; `detail`: base info and details.
    #[serde(rename = "type")]
    kind: PackKind,
    /// 1 to 500 image names: `org/repo:tag`, `org/repo@digest`, or `org/repo` for its latest image.
    #[schema(min_items = 1, max_items = 500)]
    names: Vec<String>,
}

impl DataPackSpec {
    /// Checked, with the names deduplicated and sorted, so equal specs hash alike.
    fn normalised(mut self) -> Result<DataPackSpec, ApiV1Error> {
        if self.names.is_empty() || self.names.len() > MAX_NAMES {
            return Err(ApiV1Error::invalid(format!("names: 1 to {MAX_NAMES} image names")));
        }
        for name in &self.names {
            parse_image_name(name)?;
        }
        self.names.sort();
        self.names.dedup();
        Ok(self)
    }

    /// The DataPack's name: the hash of the normalised spec.
    fn name(&self) -> String {
        let json = serde_json::to_string(self).expect("specs serialise");
        format!("dp-{}", &hex::encode(sha2::Sha256::digest(json.as_bytes()))[..32])
    }
}

/// `org/repo:tag`, `org/repo@digest` or `org/repo` → repository and reference.
fn parse_image_name(name: &str) -> Result<(RepoName, Option<String>), ApiV1Error> {
    let invalid = |why: String| ApiV1Error::invalid(format!("names: {name:?} {why}"));
    let (repository, reference) = if let Some((repo, digest)) = name.split_once('@') {
        digest.parse::<Digest>().map_err(|e| invalid(e.to_string()))?;
        (repo, Some(digest.to_string()))
    } else if let Some((repo, tag)) = name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
        tag.parse::<Tag>().map_err(|e| invalid(e.to_string()))?;
        (repo, Some(tag.to_string()))
    } else {
        (name, None)
    };
    let repository: RepoName =
        repository.parse().map_err(|e: imagehub_oci::NameError| invalid(e.to_string()))?;
    Ok((repository, reference))
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
    request_body = DataPackSpec,
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
    let spec: DataPackSpec = json_body::<DataPackSpec>(request).await?.normalised()?;
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
    let spec: DataPackSpec =
        serde_json::from_value(spec).map_err(|e| ApiV1Error::invalid(format!("spec: {e}")))?;
    spec.normalised()
}

/// Stores a checked spec; returns the DataPack's name.
pub(super) async fn store(state: &ApiState, spec: &DataPackSpec) -> Result<String, ApiV1Error> {
    let name = spec.name();
    let spec_json = serde_json::to_string(spec).expect("specs serialise");
    state.registry.put_datapack(&name, &spec_json).await.map_err(super::internal)?;
    Ok(name)
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
    let stored = state.registry.datapack(&name).await.map_err(super::internal)?;
    let stored = stored
        .ok_or_else(|| ApiV1Error::new(ErrorCode::NotFound, format!("no DataPack {name:?}")))?;
    let spec: DataPackSpec = serde_json::from_str(&stored).map_err(|e| {
        tracing::error!(datapack = %name, error = %e, "a stored DataPack spec is unreadable");
        ApiV1Error::new(ErrorCode::Internal, "internal error; see the server log")
    })?;
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
    for image_name in &spec.names {
        match image_info(state, caller, image_name, spec.kind).await? {
            Some(info) => images.push(info),
            None => unknown.push(image_name.clone()),
        }
    }
    let body = DataPack {
        api_version: "imagehub.sealos.io/v1",
        kind: "DataPack",
        name: name.to_string(),
        info: spec.kind,
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
    let (repository, reference) = parse_image_name(name)?;
    let actions = state.accounts.repository_actions(caller, &repository).await?;
    if !actions.contains(Action::Pull) {
        return Ok(None);
    }
    let image = match &reference {
        Some(reference) => {
            state.registry.image(&repository, reference).await.map_err(super::internal)?
        }
        None => state.registry.latest_image(&repository).await.map_err(super::internal)?,
    };
    let Some(image) = image else { return Ok(None) };
    Ok(Some(DataPackImage::new(name, &image, kind)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_specs_have_equal_names() {
        let a = DataPackSpec {
            kind: PackKind::Base,
            names: vec!["b/x:1".into(), "a/y:2".into(), "b/x:1".into()],
        }
        .normalised()
        .unwrap();
        let b = DataPackSpec { kind: PackKind::Base, names: vec!["a/y:2".into(), "b/x:1".into()] }
            .normalised()
            .unwrap();
        assert_eq!(a.name(), b.name());
        let c =
            DataPackSpec { kind: PackKind::Detail, names: vec!["a/y:2".into(), "b/x:1".into()] }
                .normalised()
                .unwrap();
        assert_ne!(a.name(), c.name());
    }

    #[test]
    fn image_names_are_checked() {
        assert!(parse_image_name("labring/mysql:v8.0.25").is_ok());
        assert!(parse_image_name("labring/mysql").is_ok_and(|(_, r)| r.is_none()));
        assert!(parse_image_name("registry/ns/app@sha256:0000000000000000000000000000000000000000000000000000000000000000").is_ok());
        assert!(parse_image_name("Bad/Name:1").is_err());
        assert!(parse_image_name("a/b:bad tag").is_err());
        assert!(parse_image_name("a/b@sha256:nothex").is_err());
    }
}
