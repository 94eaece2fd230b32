//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use imagehub_oci::manifest::MAX_MANIFEST_BYTES;
use imagehub_oci::{NameError, OciErrorCode, Reference};
use serde_json::json;

use super::{HandlerResult, V2Request, digest_header, empty};
use crate::error::{ApiError, EdgeError};

/// Parses a reference for reading or deleting: a malformed tag names nothing.
fn existing_reference(raw: &str) -> Result<Reference, ApiError> {
    raw.parse().map_err(|e| match e {
        NameError::InvalidTag(_) => ApiError::new(OciErrorCode::ManifestUnknown)
            .message(e.to_string())
            .detail(json!({ "reference": raw })),
        other => ApiError::from(other),
    })
}

/// `GET` and `HEAD`: the exact bytes, their media type and digest.
pub async fn get_manifest(request: V2Request, reference: &str, with_body: bool) -> HandlerResult {
    let reference = existing_reference(reference)?;
    let manifest = request.registry.get_manifest(&request.name, &reference).await?;
    if with_body {
        request.registry.record_pull(&request.name, &manifest.digest);
    }
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &manifest.media_type)
        .header(header::CONTENT_LENGTH, manifest.content.len())
        .header(digest_header(), manifest.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", manifest.digest));
    let body = if with_body { Body::from(manifest.content) } else { Body::empty() };
    builder.body(body).map_err(|e| ApiError::internal(&e))
}

/// `PUT`: validates and stores a manifest under a tag or its digest.
pub async fn put_manifest(request: V2Request, reference: &str) -> HandlerResult {
    let reference: Reference = reference.parse()?;
    let content_type = request
        .header(header::CONTENT_TYPE)
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned());
    let declared_too_large =
        request.content_length()?.is_some_and(|len| len > MAX_MANIFEST_BYTES as u64);
    let waits_for_continue =
        request.header(header::EXPECT).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if declared_too_large && waits_for_continue {
        // The client has not sent the body yet and will not once it sees the 413.
        return Err(too_large());
    }
    let content = read_manifest_body(request.body).await?;
    let pushed = request
        .registry
        .put_manifest(
            &request.name,
            &reference,
            content_type.as_deref(),
            &content,
            request.requester.actor(),
        )
        .await?;
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{}/manifests/{}", request.name, pushed.digest)),
        (digest_header(), pushed.digest.to_string()),
    ];
    if let Some(subject) = pushed.subject {
        headers.push((header::HeaderName::from_static("oci-subject"), subject.to_string()));
    }
    empty(StatusCode::CREATED, headers)
}

/// How much of an oversized body is read and discarded before answering 413: closing the
/// connection with unread bytes on it would reset it under the client before it reads
/// the answer, so bodies up to this size are drained first.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a manifest body of at most `MAX_MANIFEST_BYTES`.
async fn read_manifest_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let (mut content, mut received) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(OciErrorCode::ManifestInvalid)
                .message(format!("reading the manifest failed: {e}"))
        })?;
        received += chunk.len();
        if received <= MAX_MANIFEST_BYTES {
            content.extend_from_slice(&chunk);
        } else if received > DRAIN_LIMIT {
            break;
        }
    }
    if received > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    Ok(content)
}

fn too_large() -> ApiError {
    EdgeError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES }.into()
}

/// `DELETE`: by digest removes the manifest and its tags; by tag removes only the tag.
pub async fn delete_manifest(request: V2Request, reference: &str) -> HandlerResult {
    let reference = existing_reference(reference)?;
    request.registry.delete_manifest(&request.name, &reference).await?;
    empty(StatusCode::ACCEPTED, Vec::new())
}
