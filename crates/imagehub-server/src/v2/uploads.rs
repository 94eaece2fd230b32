//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic or mount) and
//! `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>`.

use axum::http::{StatusCode, header};
use imagehub_core::UploadId;
use imagehub_oci::{Digest, OciErrorCode, RepoName};

use super::{HandlerResult, V2Request, digest_header, empty};
use crate::error::{ApiError, EdgeError, range_header_value};

fn upload_uuid_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-upload-uuid")
}

/// The headers that tell a client where its session is and how much it has sent.
fn session_headers(name: &RepoName, id: UploadId, len: u64) -> Vec<(header::HeaderName, String)> {
    vec![
        (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
        (header::RANGE, range_header_value(len)),
        (upload_uuid_header(), id.to_string()),
    ]
}

/// The answer to a completed blob push.
fn created(name: &RepoName, digest: &Digest) -> HandlerResult {
    empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (digest_header(), digest.to_string()),
        ],
    )
}

fn required_digest(request: &V2Request) -> Result<Digest, ApiError> {
    match request.query("digest") {
        Some(digest) => Ok(digest.parse()?),
        None => Err(ApiError::new(OciErrorCode::DigestInvalid)
            .message("the digest query parameter is required")),
    }
}

/// `POST`: mount from another repository, push a whole blob, or open a session.
pub async fn start_blob_upload(request: V2Request) -> HandlerResult {
    if let Some(mount) = request.query("mount") {
        let digest: Digest = mount.parse()?;
        // An unusable `from` is not an error: the client gets a session and uploads.
        let from = request.query("from").and_then(|from| from.parse::<RepoName>().ok());
        // Mounting reads the source, so the caller must be allowed to pull it.
        if let Some(from) = from
            && request.requester.may_pull(&from).await
            && request.registry.mount_blob(&request.name, &digest, &from).await?
        {
            return created(&request.name, &digest);
        }
    } else if request.query.contains_key("digest") {
        let digest = required_digest(&request)?;
        let expected_len = request.content_length()?;
        let V2Request { registry, name, body, .. } = request;
        registry.push_blob(&name, &digest, body.into_data_stream(), expected_len).await?;
        return created(&name, &digest);
    }
    let owner = request.requester.actor().unwrap_or_default();
    let id = request.registry.start_upload(&request.name, owner).await?;
    empty(StatusCode::ACCEPTED, session_headers(&request.name, id, 0))
}

/// `GET`: how much of the upload the registry has.
pub async fn get_blob_upload(request: V2Request, id: &str) -> HandlerResult {
    let (id, len) = request.registry.upload_status(&request.name, id).await?;
    empty(StatusCode::NO_CONTENT, session_headers(&request.name, id, len))
}

/// `PATCH`: appends a chunk; with `Content-Range` it must start where the upload ends.
pub async fn patch_blob_upload(request: V2Request, id: &str) -> HandlerResult {
    let range = match request.header(header::CONTENT_RANGE) {
        Some(raw) => Some(
            parse_content_range(raw)
                .ok_or_else(|| EdgeError::MalformedContentRange(raw.to_string()))?,
        ),
        None => None,
    };
    let expected_len = match range {
        Some(ChunkRange { len, .. }) => Some(len),
        None => request.content_length()?,
    };
    let V2Request { registry, name, body, .. } = request;
    let start = range.map(|r| r.start);
    let (id, len) =
        registry.append_upload(&name, id, start, body.into_data_stream(), expected_len).await?;
    empty(StatusCode::ACCEPTED, session_headers(&name, id, len))
}

/// `PUT ?digest=`: the last chunk (possibly empty); verifies and stores the blob.
pub async fn put_blob_upload(request: V2Request, id: &str) -> HandlerResult {
    let digest = required_digest(&request)?;
    let expected_len = request.content_length()?;
    let V2Request { registry, name, body, .. } = request;
    registry.finish_upload(&name, id, &digest, body.into_data_stream(), expected_len).await?;
    created(&name, &digest)
}

/// `DELETE`: cancels the upload.
pub async fn cancel_blob_upload(request: V2Request, id: &str) -> HandlerResult {
    request.registry.cancel_upload(&request.name, id).await?;
    empty(StatusCode::NO_CONTENT, Vec::new())
}

/// Where a chunk goes in its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkRange {
    start: u64,
    len: u64,
}

/// Parses `<start>-<end>` (also accepting `bytes <start>-<end>/<total>`, the unit in any
/// case), inclusive; `None` when malformed, reversed, or when its length does not fit
/// in 64 bits (`0-18446744073709551615`).
fn parse_content_range(raw: &str) -> Option<ChunkRange> {
    let raw = raw.trim();
    let raw = match raw.get(..6) {
        Some(unit)
            if unit.eq_ignore_ascii_case("bytes ") || unit.eq_ignore_ascii_case("bytes=") =>
        {
            &raw[6..]
        }
        _ => raw,
    };
    let raw = raw.split('/').next()?;
    let (start, end) = raw.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let len = end.checked_sub(start)?.checked_add(1)?;
    Some(ChunkRange { start, len })
}

#[cfg(test)]
mod tests {
    use super::{ChunkRange, parse_content_range};

    #[track_caller]
    fn check(raw: &str, expected: Option<(u64, u64)>) {
        assert_eq!(
            parse_content_range(raw),
            expected.map(|(start, len)| ChunkRange { start, len }),
            "{raw:?}"
        );
    }

    #[test]
    fn content_ranges() {
        check("0-99", Some((0, 100)));
        check("bytes 100-199/1000", Some((100, 100)));
        check("Bytes=100-199", Some((100, 100)));
        check("BYTES 0-0/*", Some((0, 1)));
        check("5-5", Some((5, 1)));
        check("5-4", None);
        check("abc", None);
        check("-5", None);
        check("", None);
        check("0-18446744073709551615", None);
        check("1-18446744073709551615", Some((1, u64::MAX)));
        check("0-18446744073709551616", None);
    }
}
