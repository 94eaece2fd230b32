//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`, with single `Range` requests.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use imagehub_oci::Digest;

use super::{HandlerResult, V2Request, digest_header, empty};
use crate::error::ApiError;

/// `GET` and `HEAD`: the blob's bytes (or the requested range of them).
pub async fn get_blob(request: V2Request, digest: &str, with_body: bool) -> HandlerResult {
    let digest: Digest = digest.parse()?;
    if !with_body {
        let size = request.registry.stat_blob(&request.name, &digest).await?;
        return blob_response(StatusCode::OK, &digest, size, None)
            .body(Body::empty())
            .map_err(|e| ApiError::internal(&e));
    }
    let blob = request.registry.open_blob(&request.name, &digest).await?;
    if let Some(url) = blob.redirect_url().await? {
        // The bytes come from the bucket; a Range header goes there with the client.
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(digest_header(), digest.to_string())
            .body(Body::empty())
            .map_err(|e| ApiError::internal(&e));
    }
    let (status, start, len, content_range) = match request.header(header::RANGE) {
        None => (StatusCode::OK, 0, blob.size, None),
        Some(range) => match parse_range(range, blob.size) {
            Some((start, end)) => {
                let content_range = format!("bytes {start}-{end}/{}", blob.size);
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1, Some(content_range))
            }
            None => return range_not_satisfiable(blob.size),
        },
    };
    let stream = blob.read(start, len).await?;
    blob_response(status, &digest, len, content_range)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(&e))
}

fn blob_response(
    status: StatusCode,
    digest: &Digest,
    len: u64,
    content_range: Option<String>,
) -> axum::http::response::Builder {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(digest_header(), digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    if let Some(content_range) = content_range {
        builder = builder.header(header::CONTENT_RANGE, content_range);
    }
    builder
}

fn range_not_satisfiable(size: u64) -> HandlerResult {
    Response::builder()
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::CONTENT_RANGE, format!("bytes */{size}"))
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .map_err(|e| ApiError::internal(&e))
}

/// Parses a single `bytes=` range (the unit in any case, RFC 9110 §14.1) against a blob
/// of `size` bytes into an inclusive `(start, end)`, an end past the blob clamped to its
/// last byte; `None` when it cannot be satisfied. Multiple ranges are not served.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let header = header.trim();
    let spec =
        header.get(..6).filter(|unit| unit.eq_ignore_ascii_case("bytes=")).map(|_| &header[6..])?;
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 || size == 0 {
            return None;
        }
        return Some((size.saturating_sub(n), size - 1));
    }
    let start: u64 = first.parse().ok()?;
    let end = if last.is_empty() {
        size.checked_sub(1)?
    } else {
        last.parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

/// `DELETE`: the repository stops serving the blob.
pub async fn delete_blob(request: V2Request, digest: &str) -> HandlerResult {
    let digest: Digest = digest.parse()?;
    request.registry.delete_blob(&request.name, &digest).await?;
    empty(StatusCode::ACCEPTED, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-0", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("Bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("BYTES=10-", 100), Some((10, 99)));
        assert_eq!(parse_range("bytes=0-18446744073709551615", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=-18446744073709551615", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=é-1", 100), None);
    }
}
